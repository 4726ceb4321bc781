"""The report of an A/B run (suite.sweep.ab), rebuilt from its folder alone: compare's verdict on
the two sides' pooled files (with the settings the run recorded), the interleaving as it ran, and
the drift of the machine turn by turn, as a table and a figure.

Drift: each turn's median time per config against the pooled median of the base side, as a
geometric mean over the configs. Turns of one side that differ show the machine drifting; both
sides drift alike when interleaved, and the gap between them is the change.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from suite.core.method import TAKEN  # noqa: E402
from suite.core.paths import AB_RECORD  # noqa: E402
from suite.core.schema import Lineup, key_of  # noqa: E402
from suite.core.store import read_meta, read_record, read_results  # noqa: E402
from suite.render.compare import Comparison, compare_runs, to_markdown  # noqa: E402
from suite.render.markdown import fmt_num, markdown_table  # noqa: E402
from suite.render.plots import save_figure  # noqa: E402

SIDE_COLOURS = {"base": "tab:blue", "head": "tab:orange"}


@dataclass(frozen=True)
class AB:
    folder: Path
    record: dict
    comparison: Comparison
    drift: pd.DataFrame  # per finished turn: turn, round, side, ratio (geometric mean vs pooled base), configs


def _ok_medians(path: Path) -> dict[tuple, float]:
    rows = read_results(path)
    return {key_of(rec): float(rec["p50_ms"]) for rec in rows[rows["status"] == "ok"].to_dict("records")}


def _drift(folder: Path, record: dict) -> pd.DataFrame:
    base = _ok_medians(folder / "base.csv")
    records = []
    for turn, entry in enumerate(record["order"], start=1):
        if entry["status"] != "done":
            continue
        mine = _ok_medians(folder / entry["file"])
        common = base.keys() & mine.keys()
        ratio = math.exp(sum(math.log(mine[k] / base[k]) for k in common) / len(common)) if common else math.nan
        records.append(
            {"turn": turn, "round": entry["round"], "side": entry["side"], "ratio": ratio, "configs": len(common)}
        )
    return pd.DataFrame(records, columns=["turn", "round", "side", "ratio", "configs"])


def build_ab(folder: str | os.PathLike, lineup: Lineup) -> AB:
    """The A/B run in `folder`, judged with the settings it recorded."""
    folder = Path(folder)
    record = read_record(folder / AB_RECORD)
    settings = record["settings"]
    comparison = compare_runs(
        folder / "base.csv",
        folder / "head.csv",
        lineup,
        threshold=settings["threshold"],
        metric=settings["metric"],
        allow_device_mismatch="device" in settings.get("allow", []),
    )
    return AB(folder, record, comparison, _drift(folder, record))


def _commit_line(record: dict, side: str) -> str:
    c = record[side]
    return f"- {side}: `{c['ref']}` = `{c['commit'][:12]}` (committed {c['commit_time'] or 'at an unknown time'}): {c['subject']}"


def to_markdown_ab(ab: AB) -> str:
    record, settings = ab.record, ab.record["settings"]
    meta = read_meta(ab.folder / "base.csv")
    timing = meta.get("timing", "")
    how = f" ({TAKEN[timing].describe()})" if timing in TAKEN else ""
    order = " | ".join(
        ", ".join(e["side"] for e in record["order"] if e["round"] == r) for r in range(1, record["rounds"] + 1)
    )
    lines = [
        f"# A/B: `{record['head']['ref']}` against `{record['base']['ref']}`, preset `{record['preset']}` on {meta.get('device', '?')}",
        "",
        _commit_line(record, "base"),
        _commit_line(record, "head"),
        f"- Interleaving: {record['rounds']} round(s), each side a process of its own with its own code: {order}. "
        "A burst of load from another job lands on both sides alike, one turn each. Each side's rounds are "
        "pooled: every timed call of every round (the rounds' medians where a commit kept no samples).",
        f"- Timing `{timing}`{how}; {meta.get('threads', '?')} thread(s); OMP_NUM_THREADS={record.get('omp_num_threads') or 'unset'}.",
        *(f"- Note: {note}." for note in record.get("notes", [])),
        "",
        to_markdown(ab.comparison, settings["fail_on"]),
        "## Interleaving and drift",
        "",
        "Each turn's median time per config against the pooled median of the base side (geometric mean over the "
        "configs both have): turns of one side that differ show the machine drifting; the gap between the sides is "
        "the change.",
        "",
        "",
    ]
    drift = ab.drift.set_index("turn")
    rows = []
    for turn, e in enumerate(record["order"], start=1):
        loads = " / ".join(fmt_num(e.get(k), 2) for k in ("load_start", "load_end"))
        ratio = f"{drift.loc[turn, 'ratio']:.3f}" if turn in drift.index else "-"
        commit = record[e["side"]]["commit"][:8]
        rows.append(
            [turn, e["round"], e["side"], f"`{commit}`", e.get("started", "-"), fmt_num(e.get("seconds")), loads, ratio]
        )
    headers = ["turn", "round", "side", "commit", "started", "seconds", "load start / end", "time / base median"]
    return "\n".join(lines) + markdown_table(rows, headers) + "\n"


def plot_drift(ab: AB, out_dir: str | os.PathLike) -> Path:
    """drift.png: each turn's geometric-mean time against the pooled base median, by side."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for side, part in ab.drift.groupby("side", sort=False):
        ax.plot(part["turn"], part["ratio"], "o", color=SIDE_COLOURS.get(side), label=side, markersize=8)
    ax.axhline(1, ls=":", color="0.4", lw=1, label="pooled base median")
    ax.set_xticks(list(ab.drift["turn"]))
    ax.set_xlabel("turn (in the order they ran)")
    ax.set_ylabel("time / pooled base median (geometric mean over configs)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    record = ab.record
    fig.suptitle(
        f"A/B drift: {record['head']['commit'][:8]} against {record['base']['commit'][:8]} ({record['preset']})",
        fontsize=11,
    )
    return save_figure(fig, out_dir, "drift")
