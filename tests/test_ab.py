"""ab: two commits measured alternately, each with its own code. End to end (slow): in a throwaway
repository made from this tree, a commit that makes the torch recurrence 1.5x slower is caught and
a commit that changes no code passes. Fast: the order of the turns, how rounds are pooled, a cut A/B
continued by --resume, mixed rounds refused, and checkouts removed even on Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from suite.commands.cli import main
from suite.core import paths
from suite.core.errors import UsageError
from suite.core.store import SamplesWriter, read_results, read_samples
from suite.sweep import ab as ab_module
from suite.sweep import commits
from suite.sweep.ab import interleaving, measure_ab, new_record, pool_rounds, save_ab
from suite.sweep.presets import PRESET_DIR
from tests.synthetic_results import row, write

ROOT = Path(__file__).resolve().parents[1]
# A preset of seconds per run: the bare recurrence, and an inference step whose time is mostly the
# forward recurrence, beside an LSTM's that no change of the recurrence touches.
TINY = {
    "description": "A/B test preset: the torch recurrence and an inference step",
    "defaults": {"batch": [4], "hidden": [32], "depth": [1], "dtype": ["float32"]},
    "grids": [
        {"provider": ["indrnn_torch"], "mode": ["recurrence"], "seq_len": [256]},
        {"provider": ["indrnn_torch", "lstm"], "mode": ["infer"], "seq_len": [128]},
    ],
}
# Appended to kernels/loop.py: every call of the torch backend also walks half its steps again,
# 1.5x the work. Work, not sleep: a process that sleeps gets the CPU back first on a loaded machine,
# which would hide part of a slowdown made of sleeping.
SLOWDOWN = """

_unslowed_recurrence_loop = recurrence_loop


def recurrence_loop(x, *args, **kwargs):
    _unslowed_recurrence_loop(x[: (x.shape[0] + 1) // 2].detach(), *args, **kwargs)
    return _unslowed_recurrence_loop(x, *args, **kwargs)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def throwaway_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """This tree (without its committed results) as a new repository: a base commit, one that
    changes no code, and one that slows the recurrence down. Returns the repo and the commits."""
    repo = tmp_path / "repo"
    tracked = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for name in tracked:
        if name.split("/")[0] in ("results", "plots") or not (ROOT / name).is_file():
            continue
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / PRESET_DIR.relative_to(ROOT) / "tiny.json").write_text(json.dumps(TINY))
    git(repo, "init", "--quiet")
    git(repo, "config", "user.email", "ab@example.invalid")
    git(repo, "config", "user.name", "ab test")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "base")
    made = {"base": git(repo, "rev-parse", "HEAD")}
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA line that changes no code.\n")
    git(repo, "commit", "--quiet", "-am", "no code changed")
    made["same"] = git(repo, "rev-parse", "HEAD")
    loop = repo / "kernels" / "loop.py"
    assert "def recurrence_loop" in loop.read_text(), "the torch backend's walk moved: update SLOWDOWN"
    loop.write_text(loop.read_text() + SLOWDOWN)
    git(repo, "commit", "--quiet", "-am", "the forward recurrence 1.5x slower")
    made["slow"] = git(repo, "rev-parse", "HEAD")
    return repo, made


def ab_in(repo: Path, base: str, head: str, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    argv = ["ab", base, head, "--preset", "tiny", "--rounds", "3", "--threshold", "0.25", "--out-dir", str(out)]
    return subprocess.run(
        [sys.executable, "run_bench.py", *argv, "--no-progress"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_ab_catches_a_slower_recurrence_and_passes_unchanged_code(tmp_path):
    repo, made = throwaway_repo(tmp_path)
    same = ab_in(repo, made["base"], made["same"], tmp_path / "same")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "**PASS**" in same.stdout
    slow = ab_in(repo, made["same"], made["slow"], tmp_path / "slow")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    regressions = {
        cells[1].strip().split(" T=")[0]
        for cells in (line.split("|") for line in slow.stdout.splitlines())
        if len(cells) > 6 and cells[5].strip() == "regression"
    }
    # Found where the forward walk runs, and only there: on a shared CPU one of the two may sit in
    # the noise, the other does not.
    assert regressions and regressions <= {"indrnn_torch recurrence fwd", "indrnn_torch infer fwd"}, slow.stdout
    record = json.loads((tmp_path / "slow" / "ab.meta.json").read_text())
    assert [(e["side"], e["status"]) for e in record["order"]] == [("base", "done"), ("head", "done")] * 3
    assert git(repo, "worktree", "list").count("\n") == 0  # the checkouts are gone


def test_turns_alternate_base_and_head():
    assert interleaving(3) == [(1, "base"), (1, "head"), (2, "base"), (2, "head"), (3, "base"), (3, "head")]


def _round(path: Path, ms: float, samples: list[float] | None, status: str = "ok", device: str = "Synthetic CPU"):
    """A round's results: the recurrence forward at `ms` (its samples kept when given), one lstm row."""
    ours = row(
        "indrnn_torch",
        ms if status == "ok" else None,
        mode="recurrence",
        phase="fwd",
        input_size=32,
        hidden=32,
        status=status,
        reason="" if status == "ok" else "boom",
        timing="cpu_wallclock",
    )
    lstm = row("lstm", 2.0, mode="infer", input_size=32, hidden=32, timing="cpu_wallclock")
    write(path, [ours, lstm], device=device, device_kind="cpu", timing="cpu_wallclock", preset="tiny")
    with SamplesWriter(path) as writer:
        if samples is not None:
            writer.append(ours, samples)


def _record(folder: Path, rounds: int = 2) -> dict:
    record = {
        "preset": "tiny",
        "rounds": rounds,
        "base": {"ref": "b", "commit": "b" * 40, "commit_time": "", "subject": "base"},
        "head": {"ref": "h", "commit": "h" * 40, "commit_time": "", "subject": "head"},
        "settings": {"threshold": 0.05, "metric": "time", "fail_on": "regression", "allow": []},
        "argv": ["run_bench.py", "ab"],
        "order": [
            {"round": r, "side": s, "file": f"rounds/{s}-{r}.csv", "log": f"rounds/{s}-{r}.log", "status": "done"}
            for r, s in interleaving(rounds)
        ],
    }
    (folder / "rounds").mkdir(parents=True, exist_ok=True)
    return record


def test_rounds_pool_every_timed_call_or_the_medians_where_none_were_kept(tmp_path):
    record = _record(tmp_path)
    _round(tmp_path / "rounds/base-1.csv", 1.0, [0.9, 1.0, 1.1])
    _round(tmp_path / "rounds/base-2.csv", 2.0, [1.9, 2.0, 2.1, 2.2])
    _round(tmp_path / "rounds/head-1.csv", 1.0, None)
    _round(tmp_path / "rounds/head-2.csv", 3.0, None)
    rows = read_results(pool_rounds(tmp_path, record, "base")).set_index("provider")
    assert rows.loc["indrnn_torch", "p50_ms"] == pytest.approx(float(np.median([0.9, 1.0, 1.1, 1.9, 2.0, 2.1, 2.2])))
    assert rows.loc["indrnn_torch", "n_samples"] == 7
    assert len(next(iter(read_samples(tmp_path / "base.csv").values()))) == 7
    head = read_results(pool_rounds(tmp_path, record, "head")).set_index("provider")
    assert head.loc["indrnn_torch", "p50_ms"] == pytest.approx(2.0) and head.loc["indrnn_torch", "n_samples"] == 2
    assert read_samples(tmp_path / "head.csv") == {}  # round medians are not timed calls: no samples claimed


def test_a_config_that_failed_in_one_round_stays_failed(tmp_path):
    record = _record(tmp_path)
    _round(tmp_path / "rounds/base-1.csv", 1.0, [1.0])
    _round(tmp_path / "rounds/base-2.csv", 1.0, None, status="failed")
    rows = read_results(pool_rounds(tmp_path, record, "base")).set_index("provider")
    assert rows.loc["indrnn_torch", "status"] == "failed" and rows.loc["indrnn_torch", "reason"] == "boom"


class FakeTrees:
    """Worktrees without git: the tests below measure nothing real."""

    def __enter__(self):
        return self

    def checkout(self, commit, out_dir):
        return Path(commit)

    def __exit__(self, *exc):
        return None


def test_a_cut_ab_continues_where_it_stopped(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(tree, out_dir, out_name, preset, resume, log):
        calls.append((out_name, resume))
        if len(calls) == 3 and not resume:
            _round(out_dir / out_name, 1.0, [1.0])  # a row written, then Ctrl-C
            raise KeyboardInterrupt
        _round(out_dir / out_name, 1.0 if "base" in out_name else 1.02, list(np.linspace(0.95, 1.05, 10)))
        return 0

    monkeypatch.setattr(ab_module, "run_preset", fake_run)
    monkeypatch.setattr(ab_module, "Worktrees", FakeTrees)
    monkeypatch.setattr(ab_module, "describe_commit", lambda c: {"commit": c, "commit_time": "", "subject": c})
    monkeypatch.setattr("suite.commands.ab.resolve", lambda ref: ref * 40 if len(ref) == 1 else ref)
    out = tmp_path / "ab"
    assert main(["ab", "b", "h", "--preset", "ci", "--rounds", "2", "--out-dir", str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert f"python run_bench.py ab --resume --out-dir {out}" in err
    statuses = [e["status"] for e in json.loads((out / "ab.meta.json").read_text())["order"]]
    assert statuses == ["done", "done", "cut", "pending"]
    assert main(["ab", "--resume", "--out-dir", str(out), "--no-progress"]) == 0
    assert calls == [
        ("rounds/base-1.csv", False),
        ("rounds/head-1.csv", False),
        ("rounds/base-2.csv", False),
        ("rounds/base-2.csv", True),  # the cut turn continues its own file
        ("rounds/head-2.csv", False),
    ]
    assert "**PASS**" in (out / "ab.md").read_text()


def test_rounds_on_another_device_are_refused_unless_allowed(tmp_path, monkeypatch):
    def fake_run(tree, out_dir, out_name, preset, resume, log):
        _round(out_dir / out_name, 1.0, [1.0], device="CPU B" if "head" in out_name else "CPU A")
        return 0

    monkeypatch.setattr(ab_module, "run_preset", fake_run)
    monkeypatch.setattr(ab_module, "Worktrees", FakeTrees)
    record = _record(tmp_path, rounds=1)
    for entry in record["order"]:
        entry["status"] = "pending"
    save_ab(tmp_path, record)
    with pytest.raises(UsageError, match="the runs differ in device.*--allow-device-mismatch"):
        measure_ab(tmp_path, record, progress=False, allow=set())
    for entry in record["order"]:
        entry["status"] = "pending"
    measure_ab(tmp_path, record, progress=False, allow={"device"})
    assert "set side by side anyway" in record["notes"][0]


def test_checkouts_are_removed_even_on_ctrl_c(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet")
    (repo / "f.txt").write_text("x\n")
    git(repo, "add", "f.txt")
    git(repo, "-c", "user.email=a@b.invalid", "-c", "user.name=t", "commit", "--quiet", "-m", "one")
    monkeypatch.setattr(paths, "REPO_ROOT", repo)
    commit = commits.resolve("HEAD")
    with pytest.raises(KeyboardInterrupt):
        with commits.Worktrees() as trees:
            tree = trees.checkout(commit, tmp_path)
            assert (tree / "f.txt").is_file() and (tree / commits.LINK).resolve() == tmp_path.resolve()
            raise KeyboardInterrupt
    assert not tree.exists() and not trees.folder.exists()
    assert git(repo, "worktree", "list").count("\n") == 0


def test_unknown_refs_and_missing_base_are_one_line_errors(capsys):
    assert main(["ab", "--preset", "ci"]) == 2
    assert "ab needs BASE_REF" in capsys.readouterr().err
    assert main(["ab", "no-such-ref-anywhere", "--preset", "ci", "--out-dir", "unused"]) == 2
    assert "'no-such-ref-anywhere' names no commit" in capsys.readouterr().err


def test_new_record_lists_the_turns_to_run(monkeypatch):
    monkeypatch.setattr(ab_module, "describe_commit", lambda c: {"commit": c, "commit_time": "", "subject": ""})
    record = new_record("b" * 40, "h" * 40, ("main", "HEAD"), "ci", 2, {}, [])
    assert [e["file"] for e in record["order"]] == [
        "rounds/base-1.csv",
        "rounds/head-1.csv",
        "rounds/base-2.csv",
        "rounds/head-2.csv",
    ]
    assert {e["status"] for e in record["order"]} == {"pending"}


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_turns_removes_the_checkouts_and_resume_finishes(tmp_path):
    repo, made = throwaway_repo(tmp_path)
    out = tmp_path / "cut"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "run_bench.py", "ab", made["base"], made["same"], "--preset", "tiny", "--rounds", "2"]
    # A session of its own: the Ctrl-C of a terminal reaches every process of its group.
    child = subprocess.Popen(
        [*argv, "--out-dir", str(out), "--no-progress"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    record = out / "ab.meta.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        statuses = [e["status"] for e in json.loads(record.read_text())["order"]] if record.is_file() else []
        if statuses[:2] == ["done", "running"]:
            break
        time.sleep(0.2)
    time.sleep(2)  # into the head's run
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert f"continue with `python run_bench.py ab --resume --out-dir {out}`" in err
    assert [e["status"] for e in json.loads(record.read_text())["order"]] == ["done", "cut", "pending", "pending"]
    assert git(repo, "worktree", "list").count("\n") == 0
    again = subprocess.run(
        [*argv[:3], "--resume", "--out-dir", str(out), "--no-progress"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert {e["status"] for e in json.loads(record.read_text())["order"]} == {"done"}
