"""Damaged results files: a row cut off mid-write (a crash, a full disk) is skipped with one
warning line, never a traceback, in every command that reads results; appends after it start
on a line of their own. A folder given for a results file is resolved to its newest run."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import synthetic_results as syn

from suite.commands import cli
from suite.core.errors import ResultsError
from suite.core.paths import results_in
from suite.core.store import ResultsWriter, read_results


def cut_off(path, keep: float = 0.5):
    """Cut the last line of `path` part way through, as a crash mid-write leaves it."""
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + int((len(data) - last) * keep)])
    return path


@pytest.fixture
def damaged(tmp_path):
    rows = syn.sweep_rows()
    path = cut_off(syn.write(tmp_path / "run.csv", rows))
    return path, len(rows)


def test_a_cut_off_last_row_is_skipped_with_one_warning(damaged, capsys):
    path, n = damaged
    df = read_results(path)
    assert len(df) == n - 1  # every whole row, not the broken one
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: {path}: skipped 1 damaged line(s) (cut off or malformed); read the rest"]
    read_results(path)
    assert capsys.readouterr().err == ""  # said once per file, not once per read


def test_a_line_with_extra_fields_is_counted_and_skipped(tmp_path, capsys):
    path = syn.write(tmp_path / "run.csv", syn.sweep_rows()[:4])
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, lines[2].rstrip("\r\n") + lines[3])  # a broken row with a whole row glued on
    path.write_text("".join(lines))
    assert len(read_results(path)) == 4
    assert "skipped 1 damaged line(s)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["report", "plot", "compare"])
def test_commands_read_a_damaged_file_without_a_traceback(damaged, tmp_path, capsys, command):
    path, _ = damaged
    argv = {
        "report": ["report", str(path), "--out", str(tmp_path / "r.md")],
        "plot": ["plot", str(path), "--out-dir", str(tmp_path / "plots")],
        "compare": ["compare", str(path), str(path)],
    }[command]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"warning: {path}: skipped 1 damaged line(s)" in err


def test_appending_after_a_cut_off_row_starts_a_new_line(damaged):
    path, n = damaged
    extra = syn.row("gru", 1.0, seq_len=77)
    with ResultsWriter(path) as writer:  # the partial row is dropped, not glued onto
        writer.append(extra)
    df = read_results(path)
    assert len(df) == n and df.iloc[-1]["seq_len"] == 77 and df.iloc[-1]["provider"] == "gru"
    assert path.read_bytes().endswith(b"\n")


def test_a_folder_means_its_newest_results_file(tmp_path, capsys):
    old = syn.write(tmp_path / "old.csv", syn.sweep_rows()[:2])
    new = syn.write(tmp_path / "new.csv", syn.sweep_rows()[:2])
    os.utime(old, (1, 1))
    (tmp_path / "notes.csv").write_text("not,results\n")  # no metadata beside it: not a run
    assert results_in(tmp_path) == new
    assert str(new) in capsys.readouterr().err
    assert results_in(new) == new


def test_a_folder_without_results_says_what_to_pass(tmp_path, capsys):
    with pytest.raises(ResultsError, match="no results CSV"):
        results_in(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass a results CSV" in err[0]


def test_a_file_written_before_rows_recorded_their_schedule_loads_and_reports(tmp_path):
    """An older results file has no schedule column: it reads with the column empty, and its
    report has no scan section (the committed runs are such files: tests/test_committed_reports.py)."""
    new = syn.write(tmp_path / "new.csv", syn.sweep_rows())
    old = tmp_path / "old.csv"
    pd.read_csv(new, keep_default_na=False).drop(columns="schedule").to_csv(old, index=False)
    old.with_suffix(".meta.json").write_text(new.with_suffix(".meta.json").read_text())
    rows = read_results(old)
    assert (rows["schedule"] == "").all() and len(rows) == len(read_results(new))
    text = syn.build_report(old)
    assert "## Where the chunked scan wins" not in text and "## Recurrence kernel alone" in text
    assert "## Where the chunked scan wins" in syn.build_report(new)
