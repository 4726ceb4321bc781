"""The report's account of how each number was taken (suite.core.method): per timing method,
whether the cache was flushed before each timed call and whether the step was launched eagerly or
replayed from a CUDA graph; per cuDNN baseline, the algorithm PyTorch ran; and where a speedup
curve steps because that algorithm changes along the swept axis.

Rows carry these facts in their l2_flush, launch and cudnn_algo columns. A file written before
them still says what its timing method implies (a method always flushes or never does), and
that a CPU run used no cuDNN; a GPU file without them cannot say which algorithm ran.
"""

from __future__ import annotations

from itertools import pairwise

import pandas as pd

from suite.core.method import CUDNN_ALGORITHMS, NO_CUDNN, TAKEN
from suite.core.schema import CONFIG_COLUMNS
from suite.render.analysis import AXIS_LABELS, Summary, describe
from suite.render.markdown import fmt_x, markdown_table

# What a row's l2_flush/launch columns say, as the timing method that takes numbers so.
TAKEN_BY_COLUMNS = {f"{t.l2_flush}/{t.launch}": t for t in TAKEN.values()}


def _timing_lines(ok: pd.DataFrame) -> list[str]:
    recorded = "l2_flush" in ok.columns and (ok["l2_flush"] != "").all()
    lines = []
    for method, rows in ok.groupby("timing", sort=True):
        if recorded:
            ways = {f"{r.l2_flush}/{r.launch}" for r in rows.itertuples()}
            described = "; ".join(
                TAKEN_BY_COLUMNS[w].describe() if w in TAKEN_BY_COLUMNS else f"l2_flush/launch {w}"
                for w in sorted(ways)
            )
        else:
            described = TAKEN[method].describe() if method in TAKEN else "not known for this method"
        lines.append(f"- `{method}` ({len(rows)} rows): {described}.")
    if not recorded:
        lines.append("- (This file predates the columns that record it per row: what its timing method implies.)")
    return lines


def _algorithms(s: Summary) -> dict[tuple, str]:
    """(provider, *CONFIG_COLUMNS) -> the cuDNN algorithm its row recorded, for rows that did."""
    ok = s.res.ok
    if "cudnn_algo" not in ok.columns:
        return {}
    rows = ok[ok["cudnn_algo"] != ""]
    return {(r["provider"], *(r[c] for c in CONFIG_COLUMNS)): r["cudnn_algo"] for r in rows.to_dict("records")}


def _cudnn_lines(s: Summary, algos: dict[tuple, str]) -> list[str]:
    if "cudnn_algo" not in s.res.rows.columns:  # a file from before rows recorded it
        if s.res.meta.get("device_kind") == "cpu":
            return ["cuDNN: none ran (a CPU run: recurrent baselines ran PyTorch's CPU kernels)."]
        return ["cuDNN: this file predates the record of which algorithm its recurrent baselines ran."]
    if not algos:  # no cuDNN baseline among the ok rows
        return []
    providers = s.res.lineup.order({key[0] for key in algos})
    if set(algos.values()) == {NO_CUDNN}:
        names = ", ".join(f"`{p}`" for p in providers)
        return [f"cuDNN: none ran for {names} (a CPU run, or cuDNN disabled): PyTorch's own kernels."]
    rows = []
    for provider in providers:
        mine = pd.DataFrame(
            [(*key[1:], a) for key, a in algos.items() if key[0] == provider], columns=[*CONFIG_COLUMNS, "algo"]
        )
        for algo, group in mine.groupby("algo", sort=True):
            where = group[["mode", "hidden", "dtype"]].drop_duplicates().sort_values(["mode", "hidden", "dtype"])
            at = ", ".join(f"{r.mode} H={r.hidden} {r.dtype}" for r in where.itertuples())
            rows.append([provider, algo, len(group), at])
    used = sorted({part.split()[-1] for a in algos.values() for part in a.split(", ")} - {NO_CUDNN})
    return [
        "The algorithm PyTorch picks for each cuDNN baseline at each config (its rule in RNN.cpp, as "
        "suite/sweep/cudnn.py reads it; per direction of a training step where they differ):",
        "",
        markdown_table(rows, ["provider", "cuDNN algorithm", "configs", "at"]),
        "",
        *(f"- `{a}`: {CUDNN_ALGORITHMS.get(a, 'an algorithm this suite does not describe')}." for a in used),
    ]


def _steps(s: Summary, algos: dict[tuple, str]) -> list[str]:
    """Where a baseline's algorithm changes between neighbouring values of a swept axis: a step in
    the speedup curve there is partly the baseline's."""
    notes = []
    for axis, slices in s.slices.items():
        label = AXIS_LABELS[axis]
        for sl in slices:
            for baseline, line in sl.pairs.groupby("baseline", sort=False):
                points = [
                    (r, algos.get((baseline, *(r[c] for c in CONFIG_COLUMNS)), ""))
                    for r in line.sort_values(axis).to_dict("records")
                ]
                for (before, was), (after, now) in pairwise(points):
                    if not was or not now or was == now or NO_CUDNN in (was, now):
                        continue
                    notes.append(
                        f"- Along {label} ({describe(sl.fixed)}): `{baseline}` runs {was} at {label}={before[axis]} "
                        f"and {now} at {label}={after[axis]}; the speedup over it goes {fmt_x(before['speedup'])} -> "
                        f"{fmt_x(after['speedup'])} there, partly for the baseline's reasons."
                    )
    if not notes:
        return []
    return [
        "",
        "Where a speedup curve steps because the baseline's cuDNN algorithm changes along the axis:",
        "",
        *notes,
    ]


def method_section(s: Summary) -> list[str]:
    """How every number of the report was taken; [] for a file without ok rows."""
    ok = s.res.ok
    if ok.empty:
        return []
    algos = _algorithms(s)
    return [
        "## How each number was taken",
        "",
        "A time depends on how it is taken: `do_bench` writes a 256 MiB buffer before every timed call, so "
        "each call starts with the GPU's L2 cache flushed of its inputs; CUDA-graph replays "
        "(`do_bench_cudagraph`) hide launch overhead and do not flush, so their inputs stay in L2; the CPU "
        "timer calls the step again and again with its caches warm. Compare numbers taken the same way only.",
        "",
        *_timing_lines(ok),
        "",
        *_cudnn_lines(s, algos),
        *_steps(s, algos),
    ]
