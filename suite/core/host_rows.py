"""The rows of the host-time benchmark (suite.sweep.host_time), as its CSV holds them and its report
(suite.render.host_time) reads them: one row per step, schedule, size and round, with the step's
counts of one call beside its time.

A step is one forward + backward of a layer (or of the minimal autograd.Function it is judged
against) with the kernel launches stubbed out; its counts are the same in every round and are
repeated so that each row is whole on its own.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

# How the times were taken: wall clock on the host around many calls, every kernel launch stubbed.
HOST_TIMING = "host_wallclock_stubbed"
SIZE_COLUMNS = ("seq_len", "batch", "hidden")
KEY_COLUMNS = (*SIZE_COLUMNS, "schedule", "step", "round")
COUNT_COLUMNS = (
    "launches",
    "dispatched_ops",
    "custom_ops",
    "fresh_tensors",
    "fills",
    "reductions",
    "host_to_device",
    "syncs",
)
COLUMNS = ("run_id", "preset", *KEY_COLUMNS, "calls", "us_per_call", *COUNT_COLUMNS)
INT_COLUMNS = (*SIZE_COLUMNS, "round", "calls", *COUNT_COLUMNS)


def key_of(row: dict) -> tuple:
    """A row's key, the same from a dict of strings (read back) as from one of values."""
    return tuple(int(row[c]) if c in INT_COLUMNS else str(row[c]) for c in KEY_COLUMNS)


def is_host_time_results(csv_path: str | os.PathLike) -> bool:
    """Whether csv_path holds host-time rows (its header is this module's columns): how the
    `report` command tells it from a sweep's or a converge run's file."""
    try:
        with open(Path(csv_path), newline="") as f:
            return tuple(next(csv.reader(f), [])) == COLUMNS
    except (OSError, UnicodeDecodeError):
        return False
