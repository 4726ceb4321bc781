"""Appending rows so that a crash cannot damage a file: a cut-off last line is left out by readers
and dropped by the next appender, a file of other columns is refused, every kind of file the suite
appends to goes through it."""

import pytest
import torch
from harness_helpers import FAST, cfg

from suite.converge.files import CURVE_COLUMNS, RunKey, Settings, finished_runs
from suite.converge.presets import Preset
from suite.converge.runs import run_converge
from suite.core.errors import ResultsError
from suite.core.paths import profile_path, samples_path, summary_path
from suite.core.rowfile import CsvAppender, read_rows, whole_lines
from suite.core.store import read_samples
from suite.sweep import profiling, sweep

CPU = torch.device("cpu")


def cut(path, characters: int = 5) -> None:
    """A crash mid-write: the last line loses its end, newline included."""
    data = path.read_bytes()
    path.write_bytes(data[:-characters])


def test_a_cut_line_is_left_out_then_dropped_before_appending(tmp_path):
    path = tmp_path / "rows.csv"
    with CsvAppender(path, ("a", "b")) as rows:
        rows.append({"a": 1, "b": 2.5})
        rows.append({"a": 3, "b": None})
    cut(path, 2)
    assert whole_lines(path)[1] == 1 and read_rows(path) == (["a", "b"], [{"a": "1", "b": "2.5"}])
    with CsvAppender(path, ("a", "b")) as rows:
        rows.append({"a": 4})
    assert read_rows(path)[1] == [{"a": "1", "b": "2.5"}, {"a": "4", "b": ""}]
    assert path.read_bytes().endswith(b"\n")


def test_a_file_of_other_columns_is_refused(tmp_path):
    path = tmp_path / "rows.csv"
    CsvAppender(path, ("a", "b")).close()
    with pytest.raises(ResultsError, match="other columns"):
        CsvAppender(path, ("a", "c"))
    assert path.read_text().splitlines() == ["a,b"]


def test_a_converge_run_resumes_after_a_crash_mid_row(tmp_path):
    out = tmp_path / "run.csv"
    settings = Settings(target=1e-9, max_steps=10, max_seconds=60.0, eval_every=5, batch=4, test_size=20)
    preset = Preset("tiny", "", settings, (RunKey("gru", 4, 0), RunKey("lstm", 4, 0)))
    run_converge(preset, out, device=CPU, progress=False)
    cut(summary_path(out))  # the lstm run's summary row cut off: that run did not finish
    cut(out)  # and its last curve row
    assert finished_runs(out) == {RunKey("gru", 4, 0)}
    run_converge(preset, out, device=CPU, resume=True, progress=False)
    assert finished_runs(out) == {RunKey("gru", 4, 0), RunKey("lstm", 4, 0)}
    curves = read_rows(out)[1]
    assert [(r["model"], r["step"]) for r in curves] == [(m, s) for m in ("gru", "lstm") for s in ("0", "5", "10")]
    assert tuple(read_rows(out)[0]) == CURVE_COLUMNS


def test_samples_and_profile_sidecars_are_appended_the_same_way(tmp_path, monkeypatch):
    out = tmp_path / "run.csv"
    monkeypatch.setattr(profiling, "is_fig2_config", lambda c: c.provider == "indrnn_torch")
    configs = [cfg("indrnn_torch", "train", seq_len=6), cfg("indrnn_torch", "train", seq_len=8)]
    sweep.run_sweep(configs[:1], out, preset="test", **FAST)
    profiling.profile_fig2(configs, out, CPU, steps=1)
    cut(samples_path(out))
    cut(profile_path(out))
    sweep.run_sweep(configs, out, preset="test", resume=True, **FAST)
    profiling.profile_fig2(configs, out, CPU, steps=1)
    assert len(read_samples(out)) == 1  # the cut line is gone, the new config's line is whole
    assert all(line.startswith("{") for line in samples_path(out).read_text().splitlines())
    # Every line whole (read_rows refuses a line of other fields); the new config's rows all there.
    breakdown = read_rows(profile_path(out))[1]
    assert [r["category"] for r in breakdown if r["seq_len"] == "8"] == list(profiling.CATEGORIES)
    assert len(breakdown) == 2 * len(profiling.CATEGORIES) - 1  # config 6 lost its cut-off last row
