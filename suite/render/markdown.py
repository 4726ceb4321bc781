"""Markdown for every report of the suite: numbers formatted one way, tables, the provenance of a
run from its metadata, and the file a report is written to.

A missing value (None or NaN) reads "-" in every formatter.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tabulate import tabulate

from suite.core.denormals import FLUSHED, KEPT


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_ms(value) -> str:
    if is_missing(value):
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def fmt_x(value) -> str:
    if is_missing(value):
        return "-"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def fmt_speedup(ratio, lo, hi) -> str:
    """'4.31x (3.90-4.70)': the ratio of medians with its p20-p80 spread."""
    if is_missing(ratio):
        return "-"
    spread = "" if is_missing(lo) or is_missing(hi) else f" ({lo:.2f}-{hi:.2f})"
    return fmt_x(ratio) + spread


def fmt_num(value, digits: int = 3) -> str:
    if is_missing(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_4g(value) -> str:
    """Four significant digits: figures of any size side by side (compare's and profile's tables)."""
    return "-" if is_missing(value) else f"{value:.4g}"


def markdown_table(rows: list[list], headers: list[str]) -> str:
    """A GitHub-flavoured markdown table; cells are shown as given (no number parsing)."""
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _denormals(meta: dict) -> str:
    """How a CPU run treated denormal floats while it timed its work, in words."""
    recorded = meta.get("denormals") or ""
    if recorded == FLUSHED:
        return "flushed to zero on every thread while timing (`--keep-denormals` keeps them)"
    if recorded == KEPT:
        return "kept (`--keep-denormals`): a slow denormal path shows in the times"
    return recorded or "not recorded: the run predates flushing them, so they were kept"


def provenance_fields(meta: dict) -> list[tuple[str, str]]:
    """What produced a run, from its metadata: the first rows of every report's environment table."""
    commit = meta.get("git_commit") or "unknown"
    if meta.get("git_dirty"):
        commit += " (dirty: uncommitted changes)"
    cpu_run = meta.get("device_kind") == "cpu"
    return [
        ("device", f"{meta.get('device', '')} ({meta.get('device_kind', '')})"),
        ("CPU", f"{meta.get('cpu', '')}, {meta.get('threads', '')} threads"),
        *([("denormal floats", _denormals(meta))] if cpu_run else []),
        ("python / torch / triton", f"{meta.get('python', '')} / {meta.get('torch', '')} / {meta.get('triton', '')}"),
        ("CUDA / driver", f"{meta.get('cuda') or '-'} / {meta.get('driver') or '-'}"),
        ("commit", commit),
        ("timestamp (UTC)", meta.get("timestamp", "")),
        ("preset", meta.get("preset", "")),
    ]


def write_beside(text: str, csv_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Write a report's markdown to out_path, by default beside its results as `<stem>.md`."""
    out = Path(out_path) if out_path else Path(csv_path).with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
