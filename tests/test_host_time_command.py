"""The `host-time` command (suite/commands/host_time.py): its rows and metadata, --resume, the report
rebuilt from the files alone, one-line errors, and a verdict that follows the data. A tiny preset
keeps it fast; the times themselves are never asserted."""

import json
import shutil

import pytest

import suite.sweep.host_time_run as host_time_run
from suite.commands.cli import main
from suite.core.host_rows import COLUMNS, HOST_TIMING
from suite.core.rowfile import CsvAppender, read_rows
from suite.core.store import read_meta, write_record
from suite.render.claims import FAILS, HOLDS, UNSURE
from suite.render.host_time import build_host_time_report, comparisons

TINY = {
    "description": "a tiny plan for the tests",
    "target": 1.5,
    "sizes": [[4, 2, 8]],
    "schedules": ["sequential", "scan"],
    "timed_steps": ["minimal", "indrec"],
    "counted_steps": ["indrec_packed_bn"],
    "calls": 2,
    "rounds": 2,
}
# Per size: one counted row of each step and schedule (round 0), a timed row of each timed step and
# schedule in every round.
ROWS = 3 * 2 + 2 * 2 * TINY["rounds"]


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "tiny.json").write_text(json.dumps(TINY))
    monkeypatch.setattr(host_time_run, "PRESET_DIR", presets)
    return "tiny"


def _run(out, *flags):
    return main(["host-time", "--preset", "tiny", "--out", str(out), "--no-progress", *flags])


def test_rows_and_metadata_are_written(tiny_preset, tmp_path):
    out = tmp_path / "h.csv"
    assert _run(out) == 0
    header, rows = read_rows(out)
    assert tuple(header) == COLUMNS and len(rows) == ROWS
    timed = [r for r in rows if r["round"] != "0"]
    assert {r["step"] for r in timed} == {"minimal", "indrec"} and all(float(r["us_per_call"]) > 0 for r in timed)
    counted = {(r["schedule"], r["step"]): r for r in rows if r["round"] == "0"}
    assert counted["scan", "indrec"]["launches"] == "6" and counted["sequential", "indrec"]["launches"] == "2"
    meta = read_meta(out)
    assert meta["timing"] == HOST_TIMING and meta["preset"] == "tiny"
    assert meta["notes"]["plan"]["rounds"] == 2 and meta["notes"]["auto_schedule"] == {"4x2x8": "sequential"}
    assert {"load_start", "load_end"} <= meta["machine"].keys()
    assert out.with_suffix(".md").is_file()


def test_resume_measures_only_the_missing_rows(tiny_preset, tmp_path, monkeypatch):
    out = tmp_path / "h.csv"
    assert _run(out) == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-3]) + lines[-3][:10])  # the last rows lost, one cut mid-line
    timed = []
    real = host_time_run.timed_call
    monkeypatch.setattr(host_time_run, "timed_call", lambda step, calls: timed.append(calls) or real(step, calls))
    assert _run(out, "--resume") == 0
    assert len(timed) == 3
    _, rows = read_rows(out)
    assert len(rows) == ROWS and out.read_text().startswith("".join(lines[:-3]))
    assert len(read_meta(out)["notes"]["resumed"]) == 1


def test_the_report_is_rebuilt_from_the_files_alone(tiny_preset, tmp_path, monkeypatch):
    out = tmp_path / "h.csv"
    assert _run(out) == 0
    moved = tmp_path / "elsewhere" / "run.csv"
    moved.parent.mkdir()
    for suffix in (".csv", ".meta.json"):
        shutil.copy(out.with_name("h" + suffix), moved.with_name("run" + suffix))
    monkeypatch.setattr(host_time_run, "measure_host_time", None)  # nothing may be measured again
    again = tmp_path / "again.md"
    assert main(["report", str(moved), "--out", str(again)]) == 0
    assert again.read_text() == out.with_suffix(".md").read_text()
    assert "within **1.5x**" in again.read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rounds", "0"], "--rounds must be a positive integer, got 0"),
        (["--calls", "-3"], "--calls must be a positive integer, got -3"),
        (["--preset", "nope"], "unknown host-time preset 'nope'"),
        (["--resume", "--out", "missing.csv"], "--resume: results file missing.csv does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(flags, message, tiny_preset, capsys):
    assert main(["host-time", "--preset", "tiny", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_an_existing_file_is_not_overwritten(tiny_preset, tmp_path, capsys):
    out = tmp_path / "h.csv"
    out.write_text("rows\n")
    assert _run(out) == 2
    assert "pass --resume" in capsys.readouterr().err and out.read_text() == "rows\n"


def _synthetic(tmp_path, layer_us: list[float], minimal_us: list[float]):
    """A host-time run's files with the given per-round times of the layer and its minimal Function."""
    out = tmp_path / "synthetic.csv"
    with CsvAppender(out, COLUMNS) as rows:
        for r, (layer, minimal) in enumerate(zip(layer_us, minimal_us, strict=True), start=1):
            for step, us in (("minimal", minimal), ("indrec", layer)):
                rows.append(
                    {"run_id": "x", "preset": "tiny", "seq_len": 4, "batch": 2, "hidden": 8, "schedule": "scan",
                     "step": step, "round": r, "calls": 10, "us_per_call": us}
                )  # fmt: skip
    write_record(out.with_suffix(".meta.json"), {"preset": "tiny", "timing": HOST_TIMING, "notes": {"plan": TINY}})
    return out


@pytest.mark.parametrize(
    ("layer_us", "verdict"),
    [
        ([12.0, 12.5, 13.0, 12.2, 12.8], HOLDS),  # 1.2-1.3x the minimal one, spreads apart from 1.5
        ([20.0, 21.0, 19.5, 20.5, 20.2], FAILS),  # about 2x
        ([10.0, 20.0, 12.0, 18.0, 15.0], UNSURE),  # a spread across 1.5
    ],
)
def test_the_verdict_follows_the_data(layer_us, verdict, tmp_path):
    csv = _synthetic(tmp_path, layer_us, [10.0, 9.9, 10.1, 10.0, 10.05])
    [found] = comparisons(read_rows(csv)[1], 1.5)
    assert found.verdict == verdict
    assert f"Verdict over every size and schedule measured: **{verdict}**" in build_host_time_report(csv)
