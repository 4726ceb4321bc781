"""A performance history: the runs of one preset on one device, ordered by the time of their
commits, with what changed between each run and the one before.

Per run: the geometric-mean speedup of the IndRNN over each baseline per mode (min-max over
configs), and per config its median time with the p20-p80 band. Between consecutive runs a
change is flagged by compare's rule (suite.render.compare: the threshold, the non-overlap of the
p20-p80 ranges and, where both runs kept their samples, the rank test and the bootstrap interval):
drift inside the noise is not flagged. Everything comes from the results files, their metadata and
the sidecars beside them; the only fact taken from elsewhere is the commit time of a file made
before runs recorded it, which the caller looks up in git and passes in (the report says so).

Runs of different devices, presets or timing methods are refused unless allowed
(suite.core.mixing). The newest run's speedups can be written for github-action-benchmark, one
series per baseline and mode ("customBiggerIsBetter" entries).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from suite.core.errors import ResultsError, UsageError
from suite.core.method import TAKEN
from suite.core.mixing import refuse_mixed
from suite.core.schema import Lineup
from suite.core.store import read_record, read_samples
from suite.render import analysis
from suite.render.compare import DEFAULT_THRESHOLD, Comparison, check_settings, compare_results, config_name
from suite.render.markdown import fmt_ms, fmt_num, fmt_speedup, fmt_x, markdown_table

# Where a run's commit time came from, as the report names it.
FROM_METADATA, FROM_GIT, FROM_RUN = "metadata", "git log", "run timestamp"
VERDICTS = ("regression", "improvement")  # compare's verdicts that a history flags


@dataclass(frozen=True)
class Run:
    """One results file in a history."""

    res: analysis.Results
    samples: dict  # row key -> timing samples (suite.core.store.read_samples)
    commit: str
    commit_time: str  # ISO 8601
    commit_time_from: str  # FROM_METADATA | FROM_GIT | FROM_RUN
    dirty: bool

    @property
    def label(self) -> str:
        return self.commit[:8] + ("+" if self.dirty else "")

    @property
    def timestamp(self) -> str:
        return str(self.res.meta.get("timestamp", ""))

    def field(self, name: str) -> str:
        """The run's device, preset or timing: its metadata's, else what its rows say."""
        if name == "device":
            return self.res.device
        value = self.res.meta.get(name)
        if value:
            return str(value)
        column = self.res.rows.get(name)
        return str(column.mode().iloc[0]) if column is not None and len(column) else ""


@dataclass(frozen=True)
class Step:
    """A run judged against the one before it; `comparison` is None when the two had nothing in
    common to compare (`why` says what)."""

    before: int
    after: int
    comparison: Comparison | None
    why: str = ""

    @property
    def flagged(self) -> list[tuple[str, str, str]]:
        """(verdict, config, detail) of every change compare's rule calls real, and every config
        that broke (ok -> failed or oom)."""
        if self.comparison is None:
            return []
        out = [(c.verdict, c.name, _ratio_text(c)) for c in self.comparison.rows if c.verdict in VERDICTS]
        out += [("broke", s.name, f"{s.base_status} -> {s.new_status} ({s.reason})") for s in self.comparison.broken]
        return out


def _ratio_text(change) -> str:
    text = f"x{change.ratio:.3f} ({fmt_num(change.base, 4)} -> {fmt_num(change.new, 4)})"
    if change.test is not None:
        text += f", p={change.test.p_value:.2g}, {change.test.ratio_lo:.3f}-{change.test.ratio_hi:.3f} CI"
    return text


@dataclass(frozen=True)
class History:
    runs: tuple[Run, ...]  # in commit order
    steps: tuple[Step, ...]  # runs[i] against runs[i - 1]
    metric: str
    threshold: float
    notes: tuple[str, ...]
    skipped: tuple[str, ...]  # files left out, with why
    failed_commits: tuple[dict, ...]  # commits `history --measure` could not run the preset at

    def overall(self) -> pd.DataFrame:
        """Per run (column `run`, its index) the geometric-mean speedup per baseline and mode."""
        parts = [analysis.overall_speedups(analysis.speedups(run.res)).assign(run=i) for i, run in enumerate(self.runs)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def configs(self) -> pd.DataFrame:
        """Per run and ok config: its name, provider, mode, p20/p50/p80 ms, flagged verdict ("")."""
        flags = {(step.after, name): verdict for step in self.steps for verdict, name, _ in step.flagged}
        records = []
        for i, run in enumerate(self.runs):
            for rec in run.res.ok.to_dict("records"):
                name = config_name(rec)
                records.append(
                    {
                        "run": i,
                        "name": name,
                        "provider": rec["provider"],
                        "mode": rec["mode"],
                        **{q: rec[q] for q in ("p20_ms", "p50_ms", "p80_ms")},
                        "flag": flags.get((i, name), ""),
                    }
                )
        return pd.DataFrame(records, columns=["run", "name", "provider", "mode", "p20_ms", "p50_ms", "p80_ms", "flag"])


def _instant(iso: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def load_run(path: str | os.PathLike, lineup: Lineup, commit_times: Mapping[str, str]) -> Run:
    """A results file as a run of a history; `commit_times`: commit -> ISO time for files whose
    metadata does not record it (looked up in git by the caller)."""
    res = analysis.load(path, lineup)
    commit = str(res.meta.get("git_commit") or "unknown")
    if res.meta.get("git_commit_time"):
        when, source = str(res.meta["git_commit_time"]), FROM_METADATA
    elif commit in commit_times:
        when, source = commit_times[commit], FROM_GIT
    elif res.meta.get("timestamp"):
        when, source = str(res.meta["timestamp"]), FROM_RUN
    else:
        raise ResultsError(f"{path}: neither its commit's time nor its own is known; it cannot be placed in a history")
    return Run(res, read_samples(path), commit, when, source, bool(res.meta.get("git_dirty")))


def build_history(
    paths: Sequence[str | os.PathLike],
    lineup: Lineup,
    *,
    commit_times: Mapping[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = "time",
    allow: Collection[str] = (),
    measured_record: str | os.PathLike | None = None,
) -> History:
    """The history of the runs in `paths`: ordered by commit time (then by when each run was made),
    each judged against the one before. `allow`: fields of suite.core.mixing.MIXABLE that may differ.
    `measured_record`: the record `history --measure` keeps, whose failed commits the report lists.
    UsageError for runs that mix what is not allowed, or for fewer than one run with rows."""
    check_settings(threshold, metric)
    runs, skipped = [], []
    for path in paths:
        run = load_run(path, lineup, commit_times or {})
        if run.res.rows.empty:
            skipped.append(f"{Path(path).name}: no rows")
            continue
        runs.append(run)
    if not runs:
        raise UsageError("no run with rows to make a history of")
    runs.sort(key=lambda r: (_instant(r.commit_time), _instant(r.timestamp or r.commit_time)))
    notes = refuse_mixed(
        [(run.res.path.name, {f: run.field(f) for f in ("device", "preset", "timing")}) for run in runs], allow
    )
    sources = {source: sum(r.commit_time_from == source for r in runs) for source in (FROM_GIT, FROM_RUN)}
    if sources[FROM_GIT]:
        notes.append(f"the commit time of {sources[FROM_GIT]} run(s) comes from `git log`: their metadata predates it")
    if sources[FROM_RUN]:
        notes.append(
            f"{sources[FROM_RUN]} run(s) are placed by the time they were made: git does not know their commit"
        )
    steps = []
    for i in range(1, len(runs)):
        before, after = runs[i - 1], runs[i]
        try:
            comparison = compare_results(
                before.res,
                after.res,
                (before.samples, after.samples),
                threshold=threshold,
                metric=metric,
                allow_device_mismatch=True,  # mixing was judged above, for the whole history
            )
            steps.append(Step(i - 1, i, comparison))
        except UsageError as e:
            steps.append(Step(i - 1, i, None, str(e)))
    failed = ()
    if measured_record is not None and Path(measured_record).is_file():
        record = read_record(measured_record)
        failed = tuple(c for c in record.get("commits", []) if c.get("status") == "failed")
    return History(tuple(runs), tuple(steps), metric, threshold, tuple(notes), tuple(skipped), failed)


# ---------------------------------------------------------------------------- markdown


def _header(h: History) -> list[str]:
    first, last = h.runs[0], h.runs[-1]
    timing = first.field("timing")
    how = f" ({TAKEN[timing].describe()})" if timing in TAKEN else ""
    threads = sorted({str(r.res.meta.get("threads", "?")) for r in h.runs})
    what = "median time" if h.metric == "time" else "IndRNN-vs-baseline speedup"
    lines = [
        f"# Performance history: `{first.field('preset')}` on {first.field('device')}",
        "",
        f"{len(h.runs)} runs ordered by the time of their commits, from `{first.label}` ({first.commit_time}) to "
        f"`{last.label}` ({last.commit_time}); timing `{timing}`{how}; {', '.join(threads)} thread(s).",
        "",
        f"A change between two consecutive runs is flagged by compare's rule on the {what}: it moved by more "
        f"than {h.threshold:.0%}, the runs' p20-p80 ranges do not overlap and, where both runs kept their timing "
        "samples, a rank test and a bootstrap interval of the change agree. A `+` after a commit: the run was made "
        "with uncommitted changes.",
    ]
    lines += [f"- Note: {note}." for note in h.notes]
    busy = [run for run in h.runs if analysis.noise(run.res).busy]
    if busy:
        lines.append(
            f"- Note: {len(busy)} of {len(h.runs)} runs were made on a busy machine (1-minute load above its cores, "
            "or the copy bandwidth far off, at their start or end): a change flagged next to them may be the "
            "machine's, not the code's. `ab` measures two commits interleaved, so that such drift hits both alike."
        )
    lines += [f"- Left out: {s}." for s in h.skipped]
    lines += [
        f"- Commit `{c['commit'][:8]}` could not run the preset (exit {c.get('exit_code')}; log `{c.get('log', '')}`)."
        for c in h.failed_commits
    ]
    return lines


def _runs_table(h: History) -> list[str]:
    rows = []
    for i, run in enumerate(h.runs):
        machine = run.res.meta.get("machine") or {}
        loads = " / ".join(fmt_num(machine.get(k), 2) for k in ("load_start", "load_end"))
        rows.append(
            [
                i + 1,
                f"`{run.label}`",
                f"{run.commit_time} ({run.commit_time_from})",
                run.timestamp or "-",
                run.res.meta.get("threads", "-"),
                loads + (" (busy)" if analysis.noise(run.res).busy else ""),
                run.res.indrnn or "-",
                f"`{run.res.path.name}`",
            ]
        )
    headers = ["#", "commit", "committed", "measured", "threads", "load start / end", "IndRNN", "file"]
    return ["## Runs", "", markdown_table(rows, headers)]


def _changes_section(h: History) -> list[str]:
    lines = ["## Changes flagged", ""]
    flagged = [(step, f) for step in h.steps for f in step.flagged]
    for step in h.steps:
        before, after = h.runs[step.before], h.runs[step.after]
        head = f"- #{step.before + 1} `{before.label}` -> #{step.after + 1} `{after.label}`: "
        if step.comparison is None:
            lines.append(head + f"not compared ({step.why})")
            continue
        counts = {v: sum(c.verdict == v for c in step.comparison.rows) for v in (*VERDICTS, "noise", "unchanged")}
        tally = ", ".join(f"{n} {v}" for v, n in counts.items())
        overall = step.comparison.overall
        mean = f"; geometric mean x{overall.ratio:.3f}: {overall.verdict}" if overall else ""
        lines.append(
            head + f"{len(step.comparison.rows)} compared: {tally}; {len(step.comparison.broken)} broken{mean}"
        )
        lines += [f"  - **{verdict}** {name}: {detail}" for verdict, name, detail in step.flagged]
    lines += [
        "",
        f"{len(flagged)} change(s) flagged." if flagged else "No change flagged between any two consecutive runs.",
    ]
    return lines


def _speedups_section(h: History) -> list[str]:
    overall = h.overall()
    if overall.empty:
        return [
            "## Speedup over each baseline",
            "",
            "No run has a config measured ok for both the IndRNN and a baseline.",
        ]
    series = list(dict.fromkeys(zip(overall["mode"], overall["baseline"], strict=True)))
    rows = []
    for i, run in enumerate(h.runs):
        mine = overall[overall["run"] == i].set_index(["mode", "baseline"])
        cells = [
            fmt_speedup(*(mine.loc[s, c] for c in ("geomean", "min", "max"))) if s in mine.index else "-"
            for s in series
        ]
        rows.append([i + 1, f"`{run.label}`", *cells])
    return [
        "## Speedup over each baseline",
        "",
        "The IndRNN's geometric-mean speedup over each baseline per mode, min-max over configs in brackets, "
        "per run (each a ratio of medians measured in that run).",
        "",
        markdown_table(rows, ["#", "commit", *(f"{b} ({m})" for m, b in series)]),
    ]


def _configs_section(h: History) -> list[str]:
    table = h.configs()
    if table.empty:
        return []
    names = list(dict.fromkeys(table.sort_values(["provider", "mode", "name"])["name"]))
    cells = {(r.name, r.run): r for r in table.itertuples()}
    rows = []
    for name in names:
        row = [name]
        for i in range(len(h.runs)):
            r = cells.get((name, i))
            if r is None:
                row.append("-")
                continue
            text = f"{fmt_ms(r.p50_ms)} ({fmt_ms(r.p20_ms)}-{fmt_ms(r.p80_ms)})"
            row.append(f"**{text} {r.flag}**" if r.flag else text)
        rows.append(row)
    return [
        "## Median time per config",
        "",
        "Milliseconds, p50 (p20-p80), per run; in bold with its verdict where a change against the run before was flagged.",
        "",
        markdown_table(rows, ["config", *(f"#{i + 1} `{run.label}`" for i, run in enumerate(h.runs))]),
    ]


def to_markdown(h: History) -> str:
    sections = [_header(h), _runs_table(h), _changes_section(h), _speedups_section(h), _configs_section(h)]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def benchmark_json(h: History) -> list[dict]:
    """github-action-benchmark "customBiggerIsBetter" entries of the newest run: its geometric-mean
    speedup over each baseline per mode, one series each, the min-max over configs as the range."""
    newest = len(h.runs) - 1
    run = h.runs[newest]
    overall = h.overall()
    entries = []
    for r in overall[overall["run"] == newest].itertuples() if not overall.empty else ():
        entries.append(
            {
                "name": f"{run.res.indrnn} speedup over {r.baseline} ({r.mode})",
                "unit": f"x (geometric mean of {r.configs} configs)",
                "value": float(r.geomean),
                "range": f"{fmt_x(r.min)}-{fmt_x(r.max)} (min-max over configs)",
                "extra": f"commit {run.commit[:12]} ({run.commit_time}); preset {run.field('preset')}",
            }
        )
    return entries
