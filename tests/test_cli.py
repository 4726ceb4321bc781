"""`python run_bench.py run ...` as a user types it: listings, the dry-run grid, and bad input
answered with one line and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run_bench.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_list_shows_presets_and_providers():
    done = run_bench("run", "--list")
    assert done.returncode == 0, done.stderr
    for name in ("ci", "quick", "paper", "full", "indrnn_triton", "indrnn_compile", "lstm", "transformer", "sru"):
        assert name in done.stdout


def test_dry_run_lists_the_grid_with_overrides():
    done = run_bench(
        "--preset", "ci", "--provider", "lstm", "gru", "--seq-len", "8", "32", "--mode", "infer", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("4 configs")
    assert "gru" in done.stdout and "32" in done.stdout and "train" not in done.stdout


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
