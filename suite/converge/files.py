"""A converge run's records and the files that hold them: the curves CSV (one CurvePoint per
evaluation), `<stem>.summary.csv` (one row per finished RunKey: its Outcome and the Settings it
ran with) and `<stem>.meta.json` (as the sweep's), all appended row by row through
suite.core.rowfile; and what a resumed run reads back from them (which runs finished, and
dropping the curve rows of the ones that did not). Light on purpose: the report and the figures
read these files without importing any model.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields
from pathlib import Path

from suite.core import paths, rowfile
from suite.core.errors import ResultsError


@dataclass(frozen=True)
class Settings:
    """How every run of a converge sweep is trained, scored and stopped."""

    target: float  # test MSE that counts as solved
    max_steps: int
    max_seconds: float  # training seconds, evaluation excluded
    eval_every: int  # steps between evaluations of the held-out set
    batch: int
    test_size: int  # held-out sequences per T


@dataclass(frozen=True)
class RunKey:
    """One model x T x seed: the unit that is trained, summarised and resumed."""

    model: str
    seq_len: int
    seed: int

    def label(self) -> str:
        return f"{self.model} T={self.seq_len} seed={self.seed}"


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of the held-out set during a run."""

    step: int
    train_s: float  # training seconds so far
    train_loss: float | None  # mean training loss since the previous evaluation (None at step 0)
    test_mse: float


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the summary row's measured fields."""

    reached: bool
    stopped_by: str  # target | max_steps | max_seconds | diverged (training.STOP_REASONS)
    steps_to_target: int | None
    seconds_to_target: float | None
    best_mse: float
    final_mse: float
    steps: int
    train_s: float
    eval_s: float
    params: int
    details: str


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
