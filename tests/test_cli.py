"""`python run_bench.py run ...` as a user types it: listings, the dry-run grid, and bad input
answered with one line and exit status 2, never a traceback. Each starts a process (seconds of
imports): all but the help are marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import synthetic_results as syn
import torch
from harness_helpers import cfg

from suite.commands import run as run_command
from suite.core import paths

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run_bench.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_list_shows_presets_and_providers():
    done = run_bench("run", "--list")
    assert done.returncode == 0, done.stderr
    for name in ("ci", "quick", "paper", "full", "indrnn_triton", "indrnn_compile", "lstm", "transformer", "sru"):
        assert name in done.stdout


@pytest.mark.slow
def test_dry_run_lists_the_grid_with_overrides():
    done = run_bench(
        "--preset", "ci", "--provider", "lstm", "gru", "--seq-len", "8", "32", "--mode", "infer", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("4 configs")
    assert "gru" in done.stdout and "32" in done.stdout and "train" not in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "nope", "--dry-run"], "unknown preset 'nope'"),
        (["--preset", "ci", "--provider", "lsmt", "--dry-run"], "unknown provider 'lsmt'"),
        (["--preset", "ci", "--seq-len", "0", "--dry-run"], "seq_len must be a positive integer"),
        (["--preset", "ci", "--batch", "two", "--dry-run"], "--batch needs positive integers"),
        (["--preset", "ci", "--resume", "--out", "no/such/results.csv"], "does not exist"),
        (["--preset", "ci", "--resume", "--out", "{garbage}"], "not a results file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this is,not\na results file\n")
    done = run_bench(*[a.replace("{garbage}", str(garbage)) for a in args])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.slow
def test_a_custom_sweep_is_named_so_and_resumes_its_own_grid(tmp_path):
    out = tmp_path / "custom.csv"
    axes = ["--provider", "lstm", "--mode", "infer", "--seq-len", "4", "--batch", "2", "--hidden", "8"]
    done = run_bench("--preset", "ci", *axes, "--out", str(out), "--no-progress", "--repeats", "2")
    assert done.returncode == 0, done.stderr
    meta = json.loads(out.with_name("custom.meta.json").read_text())
    assert meta["preset"] == "custom" and meta["notes"]["base_preset"] == "ci"
    assert len(meta["configs"]) == 1
    # Resuming with no axis flags continues the recorded grid (nothing left to do), not a preset.
    done = run_bench("--resume", "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"resuming {out} (1 configs in its grid)" in done.stdout
    assert len(out.read_text().splitlines()) == 2
    # Asking for another grid into that file is refused, saying why.
    done = run_bench("--resume", "--out", str(out), "--preset", "ci", "--dry-run")
    assert done.returncode == 0  # a dry run only prints the grid
    done = run_bench("--resume", "--out", str(out), "--preset", "ci", "--no-progress")
    assert done.returncode == 2 and "is not the one asked for" in done.stderr


@pytest.mark.slow
def test_retry_failed_needs_resume():
    done = run_bench("--preset", "ci", "--retry-failed", "--no-progress")
    assert done.returncode == 2 and "pass it with --resume" in done.stderr


@pytest.mark.slow
def test_dry_run_says_the_preset_device_and_an_estimated_duration():
    done = run_bench("--preset", "ci", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("preset: ci (given); device: ")
    assert lines[1].startswith("estimated duration: about ") and "(an estimate: " in lines[1]
    chosen = run_bench("--dry-run").stdout.splitlines()[0]
    assert chosen.startswith("preset: quick (the default on cpu)") or chosen.startswith("preset: paper (the default")


def test_the_estimate_comes_from_earlier_rows_of_this_device_kind(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    device = torch.device("cpu")
    configs = [cfg("lstm", "infer", input_size=8), cfg("gru", "infer")]
    assert "flat guess of 2 s per config" in run_command.estimate_duration(configs, device)
    assert "about 4 s" in run_command.estimate_duration(configs, device)
    # lstm infer: (20 timed + 3) calls of 100 ms, plus 4 s compiling = 6.3 s; gru is not in the file: the mean.
    lstm = syn.row("lstm", 100.0, mode="infer", seq_len=8, batch=2, hidden=8, input_size=8, compile_s=4.0)
    syn.write(tmp_path / "cpu-run.csv", [lstm], device_kind="cpu")
    syn.write(tmp_path / "gpu-run.csv", [syn.row("gru", 1e6, mode="infer", seq_len=8, batch=2, hidden=8)])
    text = run_command.estimate_duration(configs, device)
    assert "about 13 s" in text and "1 of 2 configs timed as in cpu-run.csv" in text and "no wall time" in text
    (tmp_path / "cpu-run.csv").unlink()  # the writer appends: write the file anew, with its wall time
    syn.write(tmp_path / "cpu-run.csv", [lstm], device_kind="cpu", wall_s=63.0)  # 10x the rows' own seconds
    text = run_command.estimate_duration(configs, device)
    assert "about 2 min" in text and "no wall time" not in text  # 63 s for lstm, the same for gru


@pytest.mark.slow
def test_top_level_help_shows_the_run_options():
    done = run_bench("--help")
    assert done.returncode == 0, done.stderr
    for option in ("`run` is the default command", "--preset NAME", "--dry-run", "--resume", "--seq-len"):
        assert option in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the point is planning without a GPU")
def test_a_dry_run_plans_a_gpu_preset_on_a_machine_without_one(tmp_path, monkeypatch, capsys):
    from suite.commands import cli
    from suite.sweep.cost import CostModel
    from suite.sweep.presets import load_preset

    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)  # no earlier GPU run: the prior
    assert cli.main(["run", "--preset", "long", "--device", "cuda", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "preset: long (given); device: cuda (none on this machine: planned only)"
    minutes = CostModel.from_results("cuda").total(load_preset("long")) / 60
    assert lines[1].startswith(f"estimated duration: about {minutes:.0f} min (an estimate: a coarse guess per config")
    assert cli.main(["run", "--preset", "long", "--device", "cuda"]) == 2  # measuring still needs the GPU
    assert "no CUDA device is available" in capsys.readouterr().err
