"""Files of rows, one per line, that a crash cannot damage: every file the suite appends to (a
sweep's rows and samples, a converge run's curves and summary, the profiled breakdown) is written
through `Appender`.

Each line is flushed to disk (fsync) before the next is written, so an interrupted run keeps every
whole row. A crash mid-write (or a full disk) can leave one line cut off at the end: readers take a
file up to its last whole line (`whole_lines`; `complete_text` also names the cut line on
stderr), and an appender drops the cut line before it
appends, so a new row never lands glued onto a broken one (the config or run it belonged to has
no row, and is measured again).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from suite.core.errors import ResultsError


def whole_lines(path: str | os.PathLike) -> tuple[str, int]:
    """The file's text up to its last complete line, and how many cut-off lines were left out (0 or 1)."""
    data = Path(path).read_bytes()
    if not data or data.endswith(b"\n"):
        return data.decode(), 0
    return data[: data.rfind(b"\n") + 1].decode(), 1


def drop_partial_last_line(path: str | os.PathLike) -> None:
    """Truncate a line cut off mid-write, so that the next line appended starts on a line of its own."""
    path = Path(path)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


_warned: set[tuple[str, int]] = set()  # (path, size): say once per damaged file, not once per read


def warn_damaged(path: str | os.PathLike, lines: int) -> None:
    """One line on stderr, once per damaged state of a file: how many lines its reader left out."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_size)
    if key not in _warned:
        _warned.add(key)
        print(
            f"warning: {path}: skipped {lines} damaged line(s) (cut off or malformed); read the rest", file=sys.stderr
        )


def complete_text(path: str | os.PathLike) -> str:
    """The file's text up to its last whole line; a cut-off last line is named on stderr."""
    text, cut = whole_lines(path)
    if cut:
        warn_damaged(path, cut)
    return text


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows as dicts of strings) of a CSV up to its last whole line (`complete_text`);
    ResultsError when a whole line does not have the header's fields."""
    try:
        reader = csv.reader(io.StringIO(complete_text(path)))
        header = next(reader, [])
        return header, [dict(zip(header, r, strict=True)) for r in reader]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from e


def cell(value) -> str:
    """A value as a CSV cell: floats at full precision (repr), missing values empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class Appender:
    """A text file opened to append whole lines, each flushed to disk before `write` returns; a
    line cut off by an earlier crash is dropped first. `fresh`: the file was missing or empty."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            drop_partial_last_line(self.path)
        self.fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")

    def write(self, text: str) -> None:
        """Append whole lines (text ending in a newline) and flush them to disk."""
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CsvAppender(Appender):
    """Rows of fixed columns appended to a CSV: the header once, into a fresh file; a file that
    already has other columns is refused (ResultsError), never appended to."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...]) -> None:
        super().__init__(path)
        self.columns = columns
        if self.fresh:
            self._write_row(columns)
            return
        with open(self.path, newline="") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != columns:
            self.close()
            raise ResultsError(f"{self.path} has other columns than this suite writes; use a new file")

    def _write_row(self, cells) -> None:
        line = io.StringIO()
        csv.writer(line).writerow(cells)  # the csv module's quoting and line ending
        self.write(line.getvalue())

    def append(self, row: Mapping) -> None:
        """One row; a column the row lacks is an empty cell."""
        self._write_row([cell(row.get(c)) for c in self.columns])
