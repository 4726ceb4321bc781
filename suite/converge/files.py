"""A converge run's files: the curves CSV (one row per evaluation), `<stem>.summary.csv` (one row
per finished model x T x seed) and `<stem>.meta.json` (as the sweep's), all appended row by row
through suite.core.rowfile; and what a resumed run reads back from them (which runs finished, and
dropping the curve rows of the ones that did not).
"""

from __future__ import annotations

import csv
import os
from dataclasses import fields
from pathlib import Path

from suite.converge.presets import RunKey, Settings
from suite.converge.training import Outcome
from suite.core import paths, rowfile
from suite.core.errors import ResultsError

CURVE_COLUMNS = ("run_id", "model", "seq_len", "seed", "step", "train_s", "train_loss", "test_mse")
SUMMARY_COLUMNS = (
    "run_id",
    "preset",
    "device",
    "model",
    "seq_len",
    "seed",
    *(f.name for f in fields(Outcome) if f.name not in ("params", "details")),
    *(f.name for f in fields(Settings)),
    "optimizer",
    "lr",
    "grad_clip",
    "params",
    "details",
)


def is_converge_results(csv_path: str | os.PathLike) -> bool:
    """Whether csv_path is a converge run's curves file (its summary lies beside it): how the
    `report` and `plot` commands can tell it from a sweep's results."""
    return paths.summary_path(csv_path).is_file()


def read_rows(path: Path, columns: tuple[str, ...]) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings) of a converge CSV, up to its last whole line (a row cut off
    by a crash is left out); ResultsError if it is not one."""
    header, rows = rowfile.read_rows(path)
    if missing := [c for c in columns if c not in header]:
        raise ResultsError(f"{path} is not a converge file: missing columns {missing}")
    return header, rows


def _key_of(row: dict) -> RunKey:
    return RunKey(row["model"], int(row["seq_len"]), int(row["seed"]))


def finished_runs(csv_path: Path) -> set[RunKey]:
    """The runs whose summary row is written: they are complete and not run again."""
    path = paths.summary_path(csv_path)
    if not path.exists() or path.stat().st_size == 0:
        return set()
    return {_key_of(r) for r in read_rows(path, SUMMARY_COLUMNS)[1]}


def drop_unfinished_curves(csv_path: Path, finished: set[RunKey]) -> int:
    """Remove the curve rows of runs that never finished (they restart from scratch); returns how
    many rows went. The file is replaced atomically: a crash here loses nothing finished."""
    if not csv_path.exists() or csv_path.stat().st_size == 0:
        return 0
    header, rows = read_rows(csv_path, CURVE_COLUMNS)
    kept = [r for r in rows if _key_of(r) in finished]
    if len(kept) == len(rows):
        return 0
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, csv_path)
    return len(rows) - len(kept)
