"""Results files: a long-format CSV (one ResultRow per line) with a JSON metadata record beside it.

Rows are appended and flushed to disk as they are measured, so an interrupted sweep loses
nothing; `existing_keys` lets a resumed sweep skip what is already there.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import pandas as pd

from suite.errors import ResultsError
from suite.providers import role_of
from suite.schema import COLUMNS, KEY_COLUMNS, ResultRow, RunMeta, key_of


def meta_path(csv_path: str | os.PathLike) -> Path:
    """results/run.csv -> results/run.meta.json"""
    p = Path(csv_path)
    return p.with_name(p.stem + ".meta.json")


def write_meta(csv_path: str | os.PathLike, meta: RunMeta) -> Path:
    path = meta_path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(meta), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # never a half-written metadata file
    return path


def read_meta(csv_path: str | os.PathLike) -> dict:
    path = meta_path(csv_path)
    if not path.exists():
        raise ResultsError(f"no metadata file {path} beside {csv_path}")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"cannot read metadata {path}: {e}") from e


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # repr: full float precision
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class ResultsWriter:
    """Appends rows to a CSV, writing the header once and flushing every row to disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            if tuple(header) != COLUMNS:
                raise ResultsError(f"{self.path} has other columns than this suite writes; use a new file")
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)
        if fresh:
            self._csv.writerow(COLUMNS)
            self._flush()

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, row: ResultRow) -> None:
        self._csv.writerow([_cell(getattr(row, c)) for c in COLUMNS])
        self._flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Load a results CSV as a DataFrame with this suite's columns; ResultsError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"reason": str, "extra": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ResultsError(f"cannot read results {path}: {e}") from e
    if "input_size" not in df.columns:
        df["input_size"] = pd.NA
    if "hidden" in df.columns:  # input_size defaults to hidden, as in the presets
        df["input_size"] = df["input_size"].fillna(df["hidden"]).astype("int64")
    missing = [c for c in KEY_COLUMNS + ("status",) if c not in df.columns]
    if missing:
        raise ResultsError(f"{path} is not a results file of this suite: missing columns {missing}")
    for c in ("reason", "extra", "device", "timing", "preset", "run_id"):
        if c in df.columns:
            df[c] = df[c].fillna("")
    if "role" not in df.columns:  # files written before rows carried their provider's role
        df.insert(1, "role", df["provider"].map(role_of))
    # A config measured again (resume --retry-failed) has a newer row: the last one counts.
    return df.drop_duplicates(list(KEY_COLUMNS), keep="last").reset_index(drop=True)


def existing_keys(path: str | os.PathLike, statuses: tuple[str, ...] | None = None) -> set[tuple]:
    """Keys of the rows already in a results file (empty if the file does not exist), only of
    rows whose status is in `statuses` when given."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return set()
    rows = read_results(path)
    if statuses is not None:
        rows = rows[rows["status"].isin(statuses)]
    return {key_of(rec) for rec in rows.to_dict("records")}
