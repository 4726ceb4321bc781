"""Results files: a long-format CSV (one ResultRow per line) with a JSON metadata record beside it.

Rows are appended and flushed to disk as they are measured, so an interrupted sweep loses
nothing; `existing_keys` lets a resumed sweep skip what is already there.

Sidecars beside `<stem>.csv`, optional (a results file is whole without them):
- `<stem>.samples.jsonl`: every timed call of each row, for compare's statistics. One JSON
  object per line, written and flushed with its row: {"key": {key column: value}, "samples_ms":
  [ms, ...]} with the key columns of suite.core.schema.KEY_COLUMNS. A key written twice (a resumed
  run measuring a failed config again) counts by its last line; a damaged line is skipped.
- `<stem>.profile.csv`: `run --profile`'s breakdown of the Fig. 2 training steps (suite.sweep.profiling).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from pathlib import Path

import pandas as pd

from suite.core.errors import ResultsError
from suite.core.paths import meta_path, samples_path
from suite.core.rowfile import Appender, CsvAppender, warn_damaged, whole_lines
from suite.core.schema import COLUMNS, KEY_COLUMNS, Lineup, ResultRow, RunMeta, key_of


def write_record(path: str | os.PathLike, record: dict, sort_keys: bool = False) -> Path:
    """A JSON record written whole or not at all (a temporary file, then renamed): metadata, and
    the records `history --measure` and `ab` rewrite after every step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=sort_keys) + "\n")
    os.replace(tmp, path)  # never a half-written record
    return path


def read_record(path: str | os.PathLike) -> dict:
    """A JSON record; ResultsError when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from e


def write_meta(csv_path: str | os.PathLike, meta: RunMeta) -> Path:
    return write_record(meta_path(csv_path), dataclasses.asdict(meta), sort_keys=True)


def read_meta(csv_path: str | os.PathLike) -> dict:
    path = meta_path(csv_path)
    if not path.exists():
        raise ResultsError(f"no metadata file {path} beside {csv_path}")
    return read_record(path)


class ResultsWriter(CsvAppender):
    """Appends ResultRows to a results CSV, each flushed to disk (suite.core.rowfile)."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path, COLUMNS)

    def append(self, row: ResultRow) -> None:
        super().append({c: getattr(row, c) for c in COLUMNS})


def result_row(record: dict) -> ResultRow:
    """A row read back by pandas as the ResultRow it was written from (NaN -> None, 12.0 -> 12)."""
    values = {}
    for f in dataclasses.fields(ResultRow):
        value = record.get(f.name)
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            value = "" if f.type == "str" else None
        elif f.type.startswith("int"):
            value = int(value)
        elif f.type.startswith("float"):
            value = float(value)
        else:
            value = str(value)
        values[f.name] = value
    return ResultRow(**values)


def read_results(path: str | os.PathLike, lineup: Lineup | None = None) -> pd.DataFrame:
    """Load a results CSV as a DataFrame with this suite's columns; ResultsError if it is not one.
    With a lineup, a file written before rows carried their provider's role gets the lineup's.

    Damaged lines (a last row cut off mid-write, a line with extra fields) are skipped with a
    one-line warning on stderr: the whole rows still count."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    bad_lines: list[list[str]] = []
    try:
        text, cut = whole_lines(path)
        df = pd.read_csv(
            io.StringIO(text),
            keep_default_na=False,
            na_values=[""],
            dtype={c: str for c in ("reason", "extra", "l2_flush", "launch", "cudnn_algo", "schedule")},
            engine="python",  # the engine that hands bad lines to a callback, so they can be counted
            on_bad_lines=lambda fields: bad_lines.append(fields),
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise ResultsError(f"cannot read results {path}: {e}") from e
    if cut or bad_lines:
        warn_damaged(path, cut + len(bad_lines))
    if "input_size" not in df.columns:
        df["input_size"] = pd.NA
    if "hidden" in df.columns:  # input_size defaults to hidden, as in the presets
        df["input_size"] = df["input_size"].fillna(df["hidden"]).astype("int64")
    missing = [c for c in KEY_COLUMNS + ("status",) if c not in df.columns]
    if missing:
        raise ResultsError(f"{path} is not a results file of this suite: missing columns {missing}")
    if "schedule" not in df.columns:  # written before rows recorded the schedule that ran
        df["schedule"] = ""
    text_columns = ("reason", "extra", "device", "timing", "preset", "run_id", "l2_flush", "launch", "cudnn_algo")
    for c in text_columns + ("schedule",):
        if c in df.columns:
            df[c] = df[c].fillna("")
    if lineup is not None and "role" not in df.columns:
        df.insert(1, "role", df["provider"].map(lineup.role_of))
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


class SamplesWriter(Appender):
    """Appends one line per row key with that row's timing samples, flushed like the rows."""

    def __init__(self, csv_path: str | os.PathLike) -> None:
        super().__init__(samples_path(csv_path))

    def append(self, row: ResultRow, samples_ms: list[float]) -> None:
        key = {c: getattr(row, c) for c in KEY_COLUMNS}
        self.write(json.dumps({"key": key, "samples_ms": list(samples_ms)}) + "\n")


def read_samples(csv_path: str | os.PathLike) -> dict[tuple, list[float]]:
    """Samples by row key ({} without a sidecar); the last line of a key wins."""
    path = samples_path(csv_path)
    if not path.is_file():
        return {}
    samples = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            samples[key_of(record["key"])] = [float(v) for v in record["samples_ms"]]
        except (ValueError, KeyError, TypeError):
            continue  # an empty, cut-off or foreign line: its config has no samples
    return samples
