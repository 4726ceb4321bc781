"""The report of a host-time run (suite.sweep.host_time_run), rebuilt from its CSV and metadata alone:
for each size and schedule, the layer's host time per forward + backward against its schedule's
minimal Function, the target's verdict from the spread across rounds, and every step's counts.

The verdict is the suite's one rule (suite.render.claims) applied to the claim "the layer costs
more than `target` x the minimal Function": the target holds where that claim does not, and the
other way round. The evidence is the p20-p80 spread of both steps' per-round times: the range of
layer time / minimal time runs from layer p20 / minimal p80 to layer p80 / minimal p20.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite.core.host_rows import COUNT_COLUMNS, SIZE_COLUMNS
from suite.core.machine import summary as machine_summary
from suite.core.rowfile import read_rows
from suite.core.store import read_meta
from suite.render.claims import FAILS, HOLDS, UNSURE, against_each, judge
from suite.render.markdown import fmt_num, markdown_table, provenance_fields, write_beside

QUANTILES = (0.2, 0.5, 0.8)
# The claim the rule judges is "the layer costs more than target x": the target's verdict is its negation.
TARGET_VERDICT = {HOLDS: FAILS, FAILS: HOLDS, UNSURE: UNSURE}


@dataclass(frozen=True)
class Comparison:
    """The layer against its schedule's minimal Function at one size: per-round times in microseconds."""

    size: tuple[int, int, int]
    schedule: str
    layer: tuple[float, float, float]  # p20, p50, p80 over rounds
    minimal: tuple[float, float, float]
    paired: tuple[float, float, float]  # p20, p50, p80 of the rounds' own IndRec / minimal: shown, not judged
    rounds: int
    target: float

    @property
    def ratio(self) -> float:
        return self.layer[1] / self.minimal[1]

    @property
    def low(self) -> float:
        return self.layer[0] / self.minimal[2]

    @property
    def high(self) -> float:
        return self.layer[2] / self.minimal[0]

    @property
    def verdict(self) -> str:
        return TARGET_VERDICT[judge(self.low, self.high, self.target)]


def _size(row: dict) -> tuple[int, int, int]:
    return tuple(int(row[c]) for c in SIZE_COLUMNS)


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    return tuple(float(q) for q in np.quantile(values, QUANTILES))


def comparisons(rows: list[dict], target: float) -> list[Comparison]:
    """One comparison per size and schedule with timed rows of both steps, in the order the rows came."""
    times: dict[tuple, dict[int, float]] = {}
    for row in rows:
        if int(row["round"]) > 0:
            times.setdefault((_size(row), row["schedule"], row["step"]), {})[int(row["round"])] = float(
                row["us_per_call"]
            )
    found = []
    for size, schedule in dict.fromkeys((size, schedule) for size, schedule, _ in times):
        layer, minimal = times.get((size, schedule, "indrec")), times.get((size, schedule, "minimal"))
        if not layer or not minimal:
            continue
        paired = [layer[r] / minimal[r] for r in layer.keys() & minimal.keys()]
        found.append(
            Comparison(
                size,
                schedule,
                _quantiles(list(layer.values())),
                _quantiles(list(minimal.values())),
                _quantiles(paired) if paired else (float("nan"),) * 3,
                min(len(layer), len(minimal)),
                target,
            )
        )
    return found


def _size_label(size: tuple[int, int, int]) -> str:
    return "T={} B={} H={}".format(*size)


def _us(q: tuple[float, float, float]) -> str:
    return f"{fmt_num(q[1])} ({fmt_num(q[0])}-{fmt_num(q[2])})"


def _comparison_table(found: list[Comparison], auto: dict[str, str]) -> str:
    rows = [
        [
            _size_label(c.size),
            c.schedule + (" (auto)" if auto.get("x".join(map(str, c.size))) == c.schedule else ""),
            _us(c.minimal),
            _us(c.layer),
            f"{c.ratio:.2f}x",
            f"{c.low:.2f}-{c.high:.2f}",
            "{1:.2f}x ({0:.2f}-{2:.2f})".format(*c.paired),
            c.rounds,
            f"**{c.verdict}**",
        ]
        for c in found
    ]
    headers = [
        "size",
        "schedule",
        "minimal us p50 (p20-p80)",
        "IndRec us p50 (p20-p80)",
        "IndRec / minimal",
        "range",
        "round by round p50 (p20-p80)",
        "rounds",
        "target",
    ]
    return markdown_table(rows, headers)


def _counts_table(rows: list[dict]) -> str:
    counted = [r for r in rows if int(r["round"]) == 0]
    table = [[_size_label(_size(r)), r["schedule"], r["step"], *(r[c] for c in COUNT_COLUMNS)] for r in counted]
    return markdown_table(table, ["size", "schedule", "step", *(c.replace("_", " ") for c in COUNT_COLUMNS)])


def _environment(meta: dict) -> str:
    recorded = meta.get("machine", {})
    loads = " / ".join(fmt_num(recorded.get(k), 2) for k in ("load_start", "load_end"))
    notes = meta.get("notes", {})
    fields = [f for f in provenance_fields(meta) if f[0] not in ("denormal floats", "CUDA / driver")]
    fields += [
        ("OMP_NUM_THREADS", notes.get("omp_num_threads") or "unset"),
        ("load average start / end", f"{loads} on {recorded.get('cores', '?')} cores"),
        ("wall seconds", fmt_num(meta.get("wall_s"))),
    ]
    if (state := machine_summary(recorded)) != "not recorded":  # a CPU's governor, where /sys shows it
        fields.append(("machine", state))
    return markdown_table([list(f) for f in fields], ["", ""])


def build_host_time_report(csv_path: str | os.PathLike) -> str:
    """The markdown report of the host-time run in csv_path (its .meta.json beside it)."""
    meta = read_meta(csv_path)
    rows = read_rows(csv_path)[1]
    notes = meta.get("notes", {})
    plan = notes.get("plan", {})
    target = float(plan.get("target", 1.5))
    found = comparisons(rows, target)
    overall = against_each(c.verdict for c in found)
    auto = notes.get("auto_schedule", {})
    picks = "; ".join(f"{_size_label(tuple(map(int, k.split('x'))))}: {v}" for k, v in auto.items())
    return "\n".join(
        [
            f"# Host time of one layer's forward + backward, kernel launches stubbed (preset `{meta.get('preset', '')}`)",
            "",
            f"Target: the host time of one IndRec's forward + backward (`torch.autograd.grad`) within "
            f"**{target:g}x** of a minimal autograd.Function making the same allocations and launches, for each "
            f"schedule of the recurrence. Verdict over every size and schedule measured: **{overall}**.",
            "",
            f"- What: {plan.get('description', '')}. The Triton kernels are stubbed (a launch runs nothing), and "
            f"the launchers see the GPU they would on an H100/H200 ({notes.get('gpu_sms', '?')} SMs): the "
            "scan's chunks and the schedule that `auto` picks are that GPU's. The yardstick of each schedule is "
            "its own minimal Function: the sequential walk's 2 launches, the chunked scan's 6.",
            f"- `schedule='auto'` picks: {picks or 'not recorded'} (marked (auto) below).",
            f"- How: {plan.get('rounds', '?')} rounds of {plan.get('calls', '?')} calls of each step, CPU tensors, "
            "the steps interleaved in alternating order from round to round, the garbage collector off while "
            "timing; p20 / p50 / p80 over the rounds' microseconds per call. On CPU tensors the allocations go "
            "through the CPU's allocator and the one reduction of the partial sums runs on the CPU, in both steps "
            "alike; a GPU would allocate from its caching allocator and launch the reduction.",
            f"- Verdict: the suite's rule on the range of IndRec time / minimal time that the spread across rounds "
            f"allows (IndRec p20 / minimal p80 to IndRec p80 / minimal p20): **{HOLDS}** when all of it is at or "
            f"below {target:g}, **{FAILS}** when all of it is above, **{UNSURE}** otherwise (a quieter machine, "
            "with narrower spreads, would settle it). Over several comparisons: holds when it holds at each, "
            "does not hold when it fails at any. The round-by-round column is each round's own IndRec / "
            "minimal (both timed within the round): a drift slower than a round cancels in it, so it shows where "
            "the ratio lies on a machine that drifts; it is shown, not judged.",
            "",
            _comparison_table(found, auto),
            "",
            "## Counts of one call",
            "",
            "Per forward + backward, on the meta device (a device apart from the host, as a GPU is): kernel "
            "launches, ops through the dispatcher (custom operators and their bodies), fresh tensors, fills, "
            "reductions, copies from the host to the device and waits for the device.",
            "",
            _counts_table(rows),
            "",
            "## Environment",
            "",
            _environment(meta),
            "",
        ]
    )


def write_host_time_report(csv_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Write the report; by default beside the rows as `<stem>.md`."""
    return write_beside(build_host_time_report(csv_path), csv_path, out_path)
