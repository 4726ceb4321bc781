"""The "Time to solve the adding problem" report of a `converge` run, rebuilt from its files alone
(curves CSV, summary CSV, metadata JSON), and the numbers its plots share.

Medians over seeds treat a seed that never reached the target as slower than any that did, so
a median is a time only when most seeds reached the target; the range runs from the fastest
seed to the slowest, or to "not reached".
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from suite.converge.adding import BASELINE_MSE
from suite.converge.files import CURVE_COLUMNS, SUMMARY_COLUMNS
from suite.core.errors import ResultsError
from suite.core.paths import meta_path, summary_path
from suite.core.rowfile import complete_text
from suite.core.store import read_meta
from suite.render import claims
from suite.render.markdown import fmt_x, markdown_table, provenance_fields, write_beside

INDRNN_PREFIX = "indrnn"  # models whose name starts so are IndRNNs; every other model is a baseline
PRIMARY_INDRNN = "indrnn"  # the IndRNN the verdict is about, when the run has it
NEITHER = "neither solved"
CLAIM = "IndRNN solves the adding problem in less training time than LSTM, GRU and a Transformer"
CLAIM_BASELINES = ("lstm", "gru", "transformer")  # the models the claim names
CLAIM_FACTOR = 1.0  # "less training time": more than 1x faster


@dataclass(frozen=True)
class ConvergeRun:
    """One converge run's files: curves (one row per evaluation), summary (one row per model x T
    x seed) and metadata ({} when the file has none)."""

    path: Path
    curves: pd.DataFrame
    summary: pd.DataFrame
    meta: dict

    @property
    def models(self) -> list[str]:
        """Models in the order the table of models lists them: IndRNNs first, then the baselines."""
        names = list(dict.fromkeys(self.summary["model"]))
        return [m for m in names if is_indrnn(m)] + [m for m in names if not is_indrnn(m)]

    @property
    def seq_lens(self) -> list[int]:
        return sorted(int(t) for t in self.summary["seq_len"].unique())


def is_indrnn(model: str) -> bool:
    return model.startswith(INDRNN_PREFIX)


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise ResultsError(f"converge file {path} does not exist")
    try:
        df = pd.read_csv(io.StringIO(complete_text(path)))  # a row cut off by a crash is left out
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from e
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ResultsError(f"{path} is not a converge file of this suite: missing columns {missing}")
    return df


def load_converge(csv_path: str | os.PathLike) -> ConvergeRun:
    """The files of a converge run; ResultsError if they cannot be read as one."""
    path = Path(csv_path)
    curves = _read_csv(path, CURVE_COLUMNS)
    summary = _read_csv(summary_path(path), SUMMARY_COLUMNS)
    if summary.empty:
        raise ResultsError(f"{summary_path(path)} holds no finished run")
    summary["reached"] = summary["reached"].astype(str).str.lower() == "true"
    meta = read_meta(path) if meta_path(path).exists() else {}
    return ConvergeRun(path, curves, summary, meta)


# ---------------------------------------------------------------------------- numbers


def censored_seconds(rows: pd.DataFrame) -> pd.Series:
    """Per seed: seconds to the target, or infinity for a seed that did not reach it."""
    return rows["seconds_to_target"].where(rows["reached"], math.inf).astype(float)


def censored_steps(rows: pd.DataFrame) -> pd.Series:
    return rows["steps_to_target"].where(rows["reached"], math.inf).astype(float)


def seed_bounds(rows: pd.DataFrame) -> tuple[claims.Seed, ...]:
    """Per seed: the bounds of its seconds to the target, (t, t) when it reached the target and
    (seconds trained, infinity) when it stopped before."""
    return tuple(
        (float(t), float(t)) if reached else (float(spent), math.inf)
        for t, spent, reached in zip(rows["seconds_to_target"], rows["train_s"], rows["reached"], strict=True)
    )


@dataclass(frozen=True)
class Cell:
    """One model at one T, over its seeds."""

    model: str
    seq_len: int
    seeds: int
    reached: int
    seconds: tuple[float, float, float]  # median, min, max (infinite: not reached)
    steps: tuple[float, float, float]
    best_mse: tuple[float, float, float]
    spent_seconds: float  # median training seconds of the run, reached or not: a floor when unsolved
    max_steps: int
    max_seconds: float
    stopped_by: dict[str, int]  # why the seeds that did not reach the target stopped
    bounds: tuple[claims.Seed, ...]  # per seed, the bounds of its seconds to the target (seed_bounds)

    @property
    def solved(self) -> bool:
        return math.isfinite(self.seconds[0])


def _spread(values: pd.Series) -> tuple[float, float, float]:
    # The lower median of an even count, so that a median is always one seed's value.
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2], ordered[0], ordered[-1]


def cells(run: ConvergeRun) -> dict[tuple[str, int], Cell]:
    """Every model x T of the run, keyed (model, T)."""
    out = {}
    for (model, seq_len), rows in run.summary.groupby(["model", "seq_len"], sort=False):
        unsolved = rows[~rows["reached"]]
        out[(model, int(seq_len))] = Cell(
            model=model,
            seq_len=int(seq_len),
            seeds=len(rows),
            reached=int(rows["reached"].sum()),
            seconds=_spread(censored_seconds(rows)),
            steps=_spread(censored_steps(rows)),
            best_mse=_spread(rows["best_mse"].astype(float)),
            spent_seconds=_spread(rows["train_s"].astype(float))[0],
            max_steps=int(rows["max_steps"].max()),
            max_seconds=float(rows["max_seconds"].max()),
            stopped_by=unsolved["stopped_by"].value_counts().to_dict(),
            bounds=seed_bounds(rows),
        )
    return out


@dataclass(frozen=True)
class Speedup:
    """IndRNN's time to the target against one baseline's, at one T, and the rule's judgement of
    "less training time" from their seeds."""

    indrnn: str
    baseline: str
    seq_len: int
    ratio: float | None  # baseline median seconds / IndRNN median seconds
    at_least: bool  # the baseline did not reach the target: ratio is a floor from its spent time
    text: str
    judgement: claims.Judgement


def speedup(indrnn: Cell, baseline: Cell) -> Speedup:
    judgement = claims.judge_seeds(indrnn.bounds, baseline.bounds, CLAIM_FACTOR)

    def make(ratio: float | None, at_least: bool, text: str) -> Speedup:
        return Speedup(indrnn.model, baseline.model, indrnn.seq_len, ratio, at_least, text, judgement)

    if indrnn.solved and baseline.solved:
        ratio = baseline.seconds[0] / indrnn.seconds[0]
        return make(ratio, False, fmt_x(ratio))
    if indrnn.solved:
        # The baseline trained this long without reaching the target: its time to it is longer.
        ratio = baseline.spent_seconds / indrnn.seconds[0]
        return make(ratio, True, f">= {fmt_x(ratio)} ({baseline.model} not solved)")
    if baseline.solved:
        return make(None, False, f"IndRNN not solved, {baseline.model} solved")
    return make(None, False, NEITHER)


def speedups(run: ConvergeRun) -> list[Speedup]:
    table = cells(run)
    out = []
    for seq_len in run.seq_lens:
        for model in run.models:
            if not is_indrnn(model) or (model, seq_len) not in table:
                continue
            for baseline in run.models:
                if not is_indrnn(baseline) and (baseline, seq_len) in table:
                    out.append(speedup(table[(model, seq_len)], table[(baseline, seq_len)]))
    return out


def subject(run: ConvergeRun) -> str | None:
    """The IndRNN the verdict is about."""
    indrnns = [m for m in run.models if is_indrnn(m)]
    return PRIMARY_INDRNN if PRIMARY_INDRNN in indrnns else next(iter(indrnns), None)


def per_seq_len(run: ConvergeRun) -> dict[int, list[Speedup]]:
    """Per T, the subject's comparisons with the baselines the claim names."""
    about = subject(run)
    out: dict[int, list[Speedup]] = {}
    for s in speedups(run):
        if s.indrnn == about and s.baseline in CLAIM_BASELINES:
            out.setdefault(s.seq_len, []).append(s)
    return out


def verdict(run: ConvergeRun) -> tuple[str, str]:
    """(verdict, what it was computed over) on the claim: at each T, the subject against every
    baseline the claim names that ran (claims.against_each), then over T (claims.where_it_holds)."""
    if subject(run) is None:
        return claims.NO_DATA, "the run has no IndRNN"
    ran = [b for b in CLAIM_BASELINES if b in run.models]
    not_run = [b for b in CLAIM_BASELINES if b not in run.models]
    at_t = per_seq_len(run)
    if not at_t:
        return claims.NO_DATA, (
            f"no T has both {subject(run)} and {claims.names(ran)}" if ran else claims.scope([], not_run)
        )
    result = claims.where_it_holds(claims.against_each(s.judgement.verdict for s in found) for found in at_t.values())
    return result, claims.scope(ran, not_run)


# ---------------------------------------------------------------------------- formatting


def fmt_seconds(value: float) -> str:
    if not math.isfinite(value):
        return "not reached"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def fmt_steps(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "not reached"


def fmt_spread(spread: tuple[float, float, float], fmt) -> str:
    median, low, high = spread
    if low == high:
        return fmt(median)
    return f"{fmt(median)} ({fmt(low)} - {fmt(high)})"


def fmt_mse(value: float) -> str:
    return f"{value:.3g}"


def budget_text(cell: Cell) -> str:
    return f"{cell.max_steps} steps or {fmt_seconds(cell.max_seconds)} s of training"


# ---------------------------------------------------------------------------- sections


def _environment(run: ConvergeRun) -> list[str]:
    meta = run.meta
    lines = [f"Results: `{run.path.name}` and `{summary_path(run.path).name}` ({len(run.summary)} finished runs)."]
    if not meta:
        return lines + ["", "No metadata file beside the results."]
    notes = meta.get("notes", {})
    fields = [
        *provenance_fields(meta),
        ("timing", f"{meta.get('timing', '')}: training steps only; evaluation excluded"),
        ("run id", meta.get("run_id", "")),
    ]
    if "load_average" in notes:
        fields.append(
            (
                "load average (1 min) at start / end",
                " / ".join("-" if v is None else f"{v:.2f}" for v in notes["load_average"]),
            )
        )
    for resumed in notes.get("resumed", []):
        fields.append(("resumed", f"{resumed.get('timestamp', '')} at {resumed.get('git_commit', '')}"))
    return lines + ["", markdown_table([[k, v] for k, v in fields], ["", ""])]


def _task(run: ConvergeRun) -> list[str]:
    first = run.summary.iloc[0]
    return [
        "## The task",
        "",
        "The adding problem: T steps of (value from U(0, 1), marker); the marker is 1 at exactly two steps, "
        "one in each half, and the target is the sum of the two marked values. Always answering 1 gives "
        f"an MSE of 1/6 = {BASELINE_MSE:.3f}: **the line to beat**. A run is solved at the first evaluation "
        f"whose MSE on a fixed held-out set of {int(first['test_size'])} sequences per T is at most "
        f"**{first['target']:g}**; evaluations every {int(first['eval_every'])} steps, batch {int(first['batch'])}. "
        f"Budget per model x T x seed: {int(first['max_steps'])} steps or {fmt_seconds(float(first['max_seconds']))} s "
        "of training (the seconds are checked at evaluations, so a run may pass them by one interval). "
        "Every model at a seed trains on the same stream of batches.",
    ]


def _models(run: ConvergeRun) -> list[str]:
    descriptions = {name: r.get("description", "") for name, r in run.meta.get("notes", {}).get("models", {}).items()}
    rows = []
    for model in run.models:
        r = run.summary[run.summary["model"] == model].iloc[0]
        clip = "-" if pd.isna(r["grad_clip"]) else f"{r['grad_clip']:g}"
        rows.append(
            [
                f"`{model}`",
                f"{int(r['params']):,}",
                r["optimizer"],
                f"{r['lr']:g}",
                clip,
                descriptions.get(model, r["details"]),
            ]
        )
    return ["## Models", "", markdown_table(rows, ["model", "params", "optimizer", "lr", "grad clip", "what"])]


def _time_to_solve(run: ConvergeRun) -> list[str]:
    table = cells(run)
    rows = []
    for seq_len in run.seq_lens:
        for model in run.models:
            c = table.get((model, seq_len))
            if c is None:
                continue
            rows.append(
                [
                    seq_len,
                    f"`{model}`",
                    f"{c.reached}/{c.seeds}",
                    fmt_spread(c.seconds, fmt_seconds),
                    fmt_spread(c.steps, fmt_steps),
                    fmt_spread(c.best_mse, fmt_mse),
                ]
            )
    lines = [
        "## Time to solve the adding problem",
        "",
        "Training seconds and steps to the target: median over seeds (range: fastest - slowest seed). "
        "A seed that did not reach the target counts as slower than any that did.",
        "",
        markdown_table(rows, ["T", "model", "seeds solved", "seconds to target", "steps to target", "best MSE"]),
    ]
    unsolved = [c for c in table.values() if c.reached < c.seeds]
    if unsolved:
        lines.append("")
        for c in sorted(unsolved, key=lambda c: (c.seq_len, run.models.index(c.model))):
            stops = ", ".join(f"{reason} x{n}" for reason, n in c.stopped_by.items())
            seeds = "any seed" if c.reached == 0 else f"{c.seeds - c.reached} of {c.seeds} seeds"
            lines.append(
                f"- `{c.model}` did not reach MSE {run.summary['target'].iloc[0]:g} at T={c.seq_len} in {seeds} "
                f"within its budget of {budget_text(c)} (stopped by {stops}; best MSE {fmt_mse(c.best_mse[1])})."
            )
    return lines


def _speedup_section(run: ConvergeRun) -> list[str]:
    lines = [
        "## Speedup in time to target",
        "",
        "Baseline median seconds / IndRNN median seconds, same run, same T. Where the baseline did not "
        "reach the target, the ratio of the training seconds it spent is a floor (>=).",
        "",
    ]
    found = speedups(run)
    if not found:
        return lines + ["No T has both an IndRNN and a baseline."]
    baselines = [m for m in run.models if not is_indrnn(m)]
    rows = []
    for (indrnn, seq_len), group in pd.DataFrame([asdict(s) for s in found]).groupby(["indrnn", "seq_len"], sort=False):
        by_base = dict(zip(group["baseline"], group["text"], strict=True))
        rows.append([seq_len, f"`{indrnn}`", *(by_base.get(b, "-") for b in baselines)])
    return lines + [markdown_table(rows, ["T", "IndRNN", *(f"vs `{b}`" for b in baselines)])]


def fmt_bound(value: float) -> str:
    # Three decimals below 10x: a range that ends at 1.002x is on the other side of 1 from 0.998x.
    return f"{value:.1f}x" if value >= 10 else f"{value:.3f}x"


def fmt_range(low: float, high: float) -> str:
    """The range of baseline time / IndRNN time that the seeds allow."""
    if math.isinf(high):
        return "unbounded" if low == 0 else f"above {fmt_bound(low)}"
    return f"below {fmt_bound(high)}" if low == 0 else f"{fmt_bound(low)} - {fmt_bound(high)}"


def _comparisons(run: ConvergeRun) -> list[str]:
    """Every IndRNN against every baseline at every T, judged by the rule."""
    rows = []
    for s in speedups(run):
        j = s.judgement
        decided = j.verdict if j.by_rank_test is None else f"{j.verdict} (rank test, p = {j.by_rank_test:.2g})"
        rows.append(
            [s.seq_len, f"`{s.indrnn}`", f"`{s.baseline}`", s.text, fmt_range(j.low, j.high), decided, j.settle or "-"]
        )
    headers = ["T", "IndRNN", "baseline", "median ratio", "range over seeds", "verdict", "would settle it"]
    return [markdown_table(rows, headers)]


COMBINED = (
    f"At one T the claim names {claims.names(CLAIM_BASELINES)} at once: there it holds when it holds against each "
    "baseline that ran, and does not hold when it fails against any. Over T the verdict holds or does not "
    "hold when every T says so, and is partly when some T hold and some do not."
)


def _verdict_section(run: ConvergeRun) -> list[str]:
    result, over = verdict(run)
    said = f"**Verdict: no data** ({over})." if result == claims.NO_DATA else f"**Verdict: {result} {over}.**"
    lines = ["## Verdict", "", f'Claim: "{CLAIM}". {said}']
    at_t = per_seq_len(run)
    if at_t:
        lines += [
            "",
            f"Per T, `{subject(run)}` against the claim's baselines there together (the verdict combines these):",
            "",
        ]
        for seq_len, found in at_t.items():
            by_outcome = {}
            for s in found:
                by_outcome.setdefault(s.judgement.verdict, []).append(s.baseline)
            detail = "; ".join(f"{outcome} against {claims.names(b)}" for outcome, b in by_outcome.items())
            lines.append(f"- T={seq_len}: {claims.against_each(s.judgement.verdict for s in found)} ({detail}).")
    if speedups(run):
        lines += ["", *_comparisons(run)]
    return lines + ["", claims.statement(CLAIM_FACTOR, claims.seeds_evidence(), COMBINED)]


def _per_seed(run: ConvergeRun) -> list[str]:
    s = run.summary.sort_values(
        ["seq_len", "model", "seed"], key=lambda c: c.map(run.models.index) if c.name == "model" else c
    )
    rows = [
        [
            r.seq_len,
            f"`{r.model}`",
            r.seed,
            r.stopped_by,
            fmt_steps(r.steps_to_target if r.reached else math.inf),
            fmt_seconds(r.seconds_to_target if r.reached else math.inf),
            fmt_mse(r.best_mse),
            int(r.steps),
            fmt_seconds(r.train_s),
            fmt_seconds(r.eval_s),
        ]
        for r in s.itertuples()
    ]
    headers = [
        "T",
        "model",
        "seed",
        "stopped by",
        "steps to target",
        "s to target",
        "best MSE",
        "steps",
        "train s",
        "eval s",
    ]
    return ["## Every run", "", markdown_table(rows, headers)]


def build_converge_report(csv_path: str | os.PathLike) -> str:
    """The markdown report of one converge run (ResultsError if its files cannot be read)."""
    run = load_converge(csv_path)
    device = run.meta.get("device") or str(run.summary["device"].iloc[0])
    sections = [
        [f"# Time to solve the adding problem: {device}", "", *_environment(run)],
        _task(run),
        _models(run),
        _time_to_solve(run),
        _speedup_section(run),
        _verdict_section(run),
        _per_seed(run),
    ]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def write_converge_report(csv_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Write the report; by default beside the curves CSV as `<stem>.md`."""
    return write_beside(build_converge_report(csv_path), csv_path, out_path)
