"""Compare two results files: which configs got slower for real, and which only moved in the noise.

A config counts as changed only when its median moved by more than the threshold AND the two
runs' p20-p80 intervals do not overlap: a shift inside the spread of either run is noise, not
evidence. Two metrics:

- time: NEW/BASE of each config's median, for runs on the same device (nightly GPU runs).
- speedup: the IndRNN-vs-baseline speedups of each run (baseline p50 / IndRNN p50, measured
  in the same run) compared between the runs. A machine that got uniformly faster or slower
  moves both sides of each ratio alike, so this survives runs made on different days on a
  shared machine. Its spread is the pessimistic-to-optimistic ratio of the p20/p80 ends.

A config that was ok in BASE and failed or ran out of memory in NEW is a regression in either
metric: a broken kernel must not pass because it has no time. Configs in only one file are
listed, never fatal (presets grow and shrink); but two runs with nothing in common to compare
are an error, not a pass, and so is a file without rows.

Where both runs kept a config's raw timing samples (the `<stem>.samples.jsonl` sidecar), the
time metric also asks the statistics of suite.render.stats: a Mann-Whitney test and a bootstrap
interval of the change in median. Then a change is real only when the threshold, the
non-overlap and the statistics agree; a change the statistics do not back is noise. Configs
without samples in both runs (older files, CUDA-graph rows) are judged as before.

`compare_runs` is the API on two files (`validate`, `ab` and CI call it), `compare_results` on two
loaded runs (`history` judges each run against the one before with it); `run_bench.py compare`
prints the markdown table, slowest first, and exits 1 on a real regression.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from suite.core.errors import ResultsError, UsageError
from suite.core.schema import CONFIG_COLUMNS, KEY_COLUMNS, Lineup, key_of
from suite.core.store import read_samples
from suite.render.analysis import Results, load, speedups
from suite.render.markdown import fmt_4g
from suite.render.stats import CONFIDENCE, SampleTest, assess_change

METRICS = ("time", "speedup")
FAIL_ON = ("regression", "overall", "none")
DEFAULT_THRESHOLD = 0.05
# Statuses that mean the config no longer works; "skipped" is a choice of the harness, not a break.
BROKEN = ("failed", "oom")


@dataclass(frozen=True)
class Change:
    """One matched config (time) or IndRNN-vs-baseline pair (speedup) in both runs.

    `base`/`new` are p50 ms (time) or speedups (speedup), `*_lo`/`*_hi` their p20-p80 spread;
    `ratio` is new / base. verdict: regression | improvement | noise (beyond the threshold but
    inside the spread, or not backed by the statistics of the samples) | unchanged (within the
    threshold). `test`: those statistics, where both runs have the config's samples."""

    name: str
    base: float
    base_lo: float
    base_hi: float
    new: float
    new_lo: float
    new_hi: float
    ratio: float
    verdict: str
    test: SampleTest | None = None


@dataclass(frozen=True)
class StatusChange:
    """A config whose status differs between the runs, e.g. ok -> failed."""

    name: str
    base_status: str
    new_status: str
    reason: str  # NEW's reason when it is not ok, else BASE's

    @property
    def is_regression(self) -> bool:
        return self.base_status == "ok" and self.new_status in BROKEN


@dataclass(frozen=True)
class Comparison:
    base_path: str
    new_path: str
    metric: str
    threshold: float
    base_device: str
    new_device: str
    rows: tuple[Change, ...]  # worst first
    status_changes: tuple[StatusChange, ...]
    only_in_base: tuple[str, ...]
    only_in_new: tuple[str, ...]
    notes: tuple[str, ...]
    overall: Change | None  # geometric mean over `rows`, judged like one row; None when none compared

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(r for r in self.rows if r.verdict == "regression")

    @property
    def broken(self) -> tuple[StatusChange, ...]:
        return tuple(s for s in self.status_changes if s.is_regression)

    @property
    def has_regression(self) -> bool:
        return bool(self.regressions or self.broken)

    def fails(self, fail_on: str) -> bool:
        """Whether the gate `fail_on` (one of FAIL_ON) rejects NEW. "overall" ignores single
        configs that moved (on a shared machine one config can shift 2x for seconds) and fails
        only when the geometric mean of all of them moved for real, or a config broke."""
        if fail_on == "none":
            return False
        if fail_on == "overall":
            return bool(self.broken) or (self.overall is not None and self.overall.verdict == "regression")
        return self.has_regression


def judge(ratio: float, base: tuple[float, float], new: tuple[float, float], threshold: float, worse_up: bool) -> str:
    """Verdict on one ratio new/base given each run's (lo, hi) spread. `worse_up`: a larger new
    value is worse (times); otherwise a smaller one is (speedups)."""
    up, down = ratio > 1 + threshold, ratio < 1 - threshold
    if not (up or down):
        return "unchanged"
    apart = new[0] > base[1] or new[1] < base[0]
    if not apart:
        return "noise"
    return "regression" if up == worse_up else "improvement"


def config_name(rec) -> str:
    """A readable label of one config key (a row or any record with the key columns)."""
    provider = f"{rec['provider']} " if "provider" in rec else ""
    timing = f" {rec['timing']}" if rec["timing"] else ""
    return (
        f"{provider}{rec['mode']} {rec['phase']} T={rec['seq_len']} depth={rec['depth']} "
        f"B={rec['batch']} H={rec['hidden']} {rec['dtype']}{timing}"
    )


def _keyed(rows: pd.DataFrame, columns: tuple[str, ...]) -> dict[tuple, dict]:
    """Records by key; the last row wins where a (resumed) file repeats a key."""
    return {key_of(rec, columns): rec for rec in rows.to_dict("records")}


def _spread(rec: dict, mid: str, lo: str, hi: str) -> tuple[float, float, float]:
    """(mid, lo, hi), a missing spread read as none (the point itself)."""
    value = float(rec[mid])
    ends = [float(rec[c]) for c in (lo, hi)]
    return value, *(value if math.isnan(e) else e for e in ends)


def with_statistics(verdict: str, test: SampleTest, ratio: float) -> str:
    """The verdict once the samples' statistics are heard: a regression or improvement they do
    not back is noise. Statistics too weak to ever decide (few samples) leave it as it is."""
    if verdict in ("regression", "improvement") and test.decisive and not test.supports(up=ratio > 1):
        return "noise"
    return verdict


def _changes(
    base: dict[tuple, dict],
    new: dict[tuple, dict],
    cols: tuple[str, str, str],
    threshold: float,
    worse_up: bool,
    samples: tuple[dict, dict] = ({}, {}),
) -> list[Change]:
    """Changes of the keys in both runs; each record carries its display name under "name".
    `samples`: BASE's and NEW's raw samples by key, where kept."""
    out = []
    for key in base.keys() & new.keys():
        b, b_lo, b_hi = _spread(base[key], *cols)
        n, n_lo, n_hi = _spread(new[key], *cols)
        ratio = n / b
        verdict = judge(ratio, (b_lo, b_hi), (n_lo, n_hi), threshold, worse_up)
        test = None
        if key in samples[0] and key in samples[1]:
            test = assess_change(samples[0][key], samples[1][key])
            verdict = with_statistics(verdict, test, ratio)
        out.append(Change(new[key]["name"], b, b_lo, b_hi, n, n_lo, n_hi, ratio, verdict, test))
    # Worst first: the largest slowdown (time) or the largest fall in speedup.
    return sorted(out, key=lambda c: (-c.ratio if worse_up else c.ratio, c.name))


def _overall(rows: list[Change], threshold: float, worse_up: bool) -> Change | None:
    """The geometric mean of every figure over the rows, judged like a single row: a change
    that moves every config alike (a slower kernel) shows here even when each row is noisy."""
    if not rows:
        return None
    numeric = ("base", "base_lo", "base_hi", "new", "new_lo", "new_hi", "ratio")
    figures = {f: math.exp(sum(math.log(getattr(r, f)) for r in rows) / len(rows)) for f in numeric}
    verdict = judge(
        figures["ratio"],
        (figures["base_lo"], figures["base_hi"]),
        (figures["new_lo"], figures["new_hi"]),
        threshold,
        worse_up,
    )
    return Change(name=f"geometric mean of {len(rows)}", verdict=verdict, **figures)


def _named(records: dict[tuple, dict], name) -> dict[tuple, dict]:
    return {k: {**rec, "name": name(rec)} for k, rec in records.items()}


def _configs(res: Results, ok_only: bool) -> dict[tuple, dict]:
    return _named(_keyed(res.ok if ok_only else res.rows, KEY_COLUMNS), config_name)


# A speedup pair is a config of the IndRNN and one baseline: the key without the provider.
PAIR_KEY = ("baseline", *CONFIG_COLUMNS)


def _pairs(res: Results) -> dict[tuple, dict]:
    return _named(
        _keyed(speedups(res), PAIR_KEY),
        lambda rec: f"{res.indrnn} vs " + config_name({**rec, "provider": rec["baseline"]}),
    )


def _status_changes(base: Results, new: Results) -> list[StatusChange]:
    b, n = _configs(base, ok_only=False), _configs(new, ok_only=False)
    out = []
    for key in sorted(b.keys() & n.keys()):
        bs, ns = b[key]["status"], n[key]["status"]
        if bs != ns:
            reason = n[key]["reason"] if ns != "ok" else b[key]["reason"]
            out.append(StatusChange(n[key]["name"], bs, ns, reason))
    return sorted(out, key=lambda s: not s.is_regression)


def _device_check(base: Results, new: Results, metric: str, allow: bool) -> list[str]:
    if base.device == new.device:
        return []
    why = (
        f"BASE ran on {base.device!r} and NEW on {new.device!r}: "
        + ("times from different devices measure the devices, not the change" if metric == "time" else "")
        + ("speedups shift with the device's balance of compute and bandwidth" if metric == "speedup" else "")
    )
    if not allow:
        raise UsageError(why + "; pass --allow-device-mismatch to compare anyway")
    return [why + " (compared anyway: --allow-device-mismatch)"]


def compare_runs(
    base_csv: str | os.PathLike,
    new_csv: str | os.PathLike,
    lineup: Lineup,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = "time",
    allow_device_mismatch: bool = False,
) -> Comparison:
    """Compare two results files (each with its metadata beside it, if any), read with `lineup`:
    `compare_results` on what they hold, their timing samples included.

    Raises UsageError for a bad threshold or metric, or runs from different devices unless
    `allow_device_mismatch`, or when the runs have nothing in common to compare; ResultsError
    for files that are not results of this suite or have no rows."""
    check_settings(threshold, metric)
    return compare_results(
        load(base_csv, lineup),
        load(new_csv, lineup),
        (read_samples(base_csv), read_samples(new_csv)),
        threshold=threshold,
        metric=metric,
        allow_device_mismatch=allow_device_mismatch,
    )


def check_settings(threshold: float, metric: str) -> None:
    """UsageError for a metric compare does not know or a threshold outside [0, 1)."""
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    if not 0 <= threshold < 1:
        raise UsageError(f"threshold must be a fraction in [0, 1), got {threshold}")


def compare_results(
    base: Results,
    new: Results,
    samples: tuple[dict, dict] = ({}, {}),
    *,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = "time",
    allow_device_mismatch: bool = False,
) -> Comparison:
    """Compare two loaded runs; `samples`: BASE's and NEW's raw timing samples by row key
    (suite.core.store.read_samples), where kept. Raises as `compare_runs` does."""
    check_settings(threshold, metric)
    for name, res in (("BASE", base), ("NEW", new)):
        if res.rows.empty:  # before the device check, which would name an 'unknown device'
            raise ResultsError(f"{name} has no rows: {res.path}")
    notes = _device_check(base, new, metric, allow_device_mismatch)
    threads = base.meta.get("threads"), new.meta.get("threads")
    if threads[0] != threads[1]:
        notes.append(f"BASE ran with {threads[0]} threads, NEW with {threads[1]}: CPU times depend on it")
    if metric == "time":
        b, n = _configs(base, ok_only=True), _configs(new, ok_only=True)
        worse_up = True
        rows = _changes(b, n, ("p50_ms", "p20_ms", "p80_ms"), threshold, worse_up, samples)
        # In one file only; a config in both but not ok in one is a status change instead.
        b, n = _configs(base, ok_only=False), _configs(new, ok_only=False)
    else:
        if base.indrnn != new.indrnn:
            notes.append(f"the IndRNN measured differs: {base.indrnn} in BASE, {new.indrnn} in NEW")
        b, n = _pairs(base), _pairs(new)
        worse_up = False
        rows = _changes(b, n, ("speedup", "speedup_lo", "speedup_hi"), threshold, worse_up)
    status_changes = _status_changes(base, new)
    if not rows and not status_changes:
        # Nothing was compared: passing would let a wrong BASE (another preset, another
        # IndRNN) wave every NEW through.
        what = "config measured ok" if metric == "time" else "IndRNN-vs-baseline pair measured ok"
        raise UsageError(f"BASE {base.path} and NEW {new.path} have no {what} in both: nothing to compare")
    return Comparison(
        base_path=str(base.path),
        new_path=str(new.path),
        metric=metric,
        threshold=threshold,
        base_device=base.device,
        new_device=new.device,
        rows=tuple(rows),
        status_changes=tuple(status_changes),
        only_in_base=tuple(sorted(b[k]["name"] for k in b.keys() - n.keys())),
        only_in_new=tuple(sorted(n[k]["name"] for k in n.keys() - b.keys())),
        notes=tuple(notes),
        overall=_overall(rows, threshold, worse_up),
    )


# ---------------------------------------------------------------------------- output

UNITS = {"time": "ms", "speedup": "x"}


def _statistics_cell(test: SampleTest | None) -> str:
    if test is None:
        return "-"
    cell = f"p={test.p_value:.2g}, {test.ratio_lo:.3f}-{test.ratio_hi:.3f} (n={test.n_base}/{test.n_new})"
    return cell if test.decisive else cell + ", too few samples to decide"


def to_markdown(cmp: Comparison, fail_on: str = "regression") -> str:
    """The comparison as markdown: verdict under the gate `fail_on`, table worst first with the
    geometric mean last, status changes, configs in one file only."""
    what = "median time NEW/BASE" if cmp.metric == "time" else "IndRNN speedup NEW/BASE"
    lines = [
        f"## Compare ({cmp.metric}): {what}, threshold {cmp.threshold:.0%} and outside both runs' p20-p80",
        "",
        f"- BASE: `{cmp.base_path}` ({cmp.base_device})",
        f"- NEW: `{cmp.new_path}` ({cmp.new_device})",
    ]
    lines += [f"- Note: {note}" for note in cmp.notes]
    counts = {v: sum(r.verdict == v for r in cmp.rows) for v in ("regression", "improvement", "noise", "unchanged")}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items())
    overall = f"; geometric mean NEW/BASE {cmp.overall.ratio:.3f}: {cmp.overall.verdict}" if cmp.overall else ""
    lines += [
        "",
        f"**{'FAIL' if cmp.fails(fail_on) else 'PASS'}** (--fail-on {fail_on}): {len(cmp.broken)} config(s) broken; "
        f"of {len(cmp.rows)} compared: {tally}{overall}.",
        "",
    ]
    if cmp.rows:
        unit = UNITS[cmp.metric]
        spread = "p20-p80" if cmp.metric == "time" else "spread"
        header = ["config" if cmp.metric == "time" else "pair", f"BASE {unit} ({spread})", f"NEW {unit} ({spread})"]
        tested = any(r.test for r in cmp.rows)
        table = [
            [
                r.name,
                f"{fmt_4g(r.base)} ({fmt_4g(r.base_lo)}-{fmt_4g(r.base_hi)})",
                f"{fmt_4g(r.new)} ({fmt_4g(r.new_lo)}-{fmt_4g(r.new_hi)})",
                f"{r.ratio:.3f}",
                r.verdict,
                *([_statistics_cell(r.test)] if tested else []),
            ]
            for r in (*cmp.rows, cmp.overall)
        ]
        stats_header = [f"samples: p (rank test), {CONFIDENCE:.0%} CI of NEW/BASE median"] if tested else []
        lines += [tabulate(table, headers=[*header, "NEW/BASE", "verdict", *stats_header], tablefmt="github"), ""]
    if cmp.status_changes:
        lines += ["### Status changes", ""]
        lines += [
            f"- {s.name}: {s.base_status} -> {s.new_status}"
            + (f" ({s.reason})" if s.reason else "")
            + (" **regression**" if s.is_regression else "")
            for s in cmp.status_changes
        ]
        lines.append("")
    for title, names in (("Only in BASE", cmp.only_in_base), ("Only in NEW", cmp.only_in_new)):
        if names:
            lines += [f"### {title} ({len(names)}, not compared)", "", *(f"- {n}" for n in names), ""]
    return "\n".join(lines)


def benchmark_json(cmp: Comparison) -> list[dict]:
    """github-action-benchmark "customSmallerIsBetter" entries for the NEW run's compared figures:
    p50 ms per config (time), or IndRNN time / baseline time, the inverse speedup (speedup)."""
    entries = []
    for r in sorted(cmp.rows, key=lambda r: r.name):
        if cmp.metric == "time":
            value, lo, hi, unit = r.new, r.new_lo, r.new_hi, "ms"
        else:  # the inverse, so that smaller is better like every other entry of the chart
            value, lo, hi, unit = 1 / r.new, 1 / r.new_hi, 1 / r.new_lo, "IndRNN time / baseline time"
        entries.append(
            {
                "name": r.name,
                "unit": unit,
                "value": value,
                "range": f"{fmt_4g(lo)}-{fmt_4g(hi)} (p20-p80)",
                "extra": f"NEW/BASE {r.ratio:.3f}: {r.verdict}",
            }
        )
    return entries
