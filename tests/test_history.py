"""history on a synthetic history: runs of one preset at five commits with noise everywhere and one
real regression. It must flag the regression and nothing else, order runs by commit time (not by
when they were made), give per baseline the geometric-mean speedup, write github-action-benchmark
JSON, and refuse to mix devices, presets or timing methods unless told."""

import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from suite.commands.cli import main
from suite.core.errors import UsageError
from suite.core.store import SamplesWriter
from suite.render.history import FROM_GIT, FROM_METADATA, FROM_RUN, benchmark_json, build_history, to_markdown
from suite.sweep import commits
from suite.sweep.providers import lineup
from tests.synthetic_results import indrnn_ms, lstm_ms, row, write
from tests.test_ab import git, throwaway_repo

ROOT = Path(__file__).resolve().parents[1]
COMMITS = [f"{c}" * 40 for c in "abcde"]
# Committed a day apart; the runs were made in another order (a rerun of an old commit comes last).
COMMIT_TIMES = [f"2026-01-0{i + 1}T12:00:00+00:00" for i in range(5)]
RUN_TIMES = ["2026-02-05T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-02-03T00:00:00+00:00"]
RUN_TIMES += ["2026-02-02T00:00:00+00:00", "2026-02-04T00:00:00+00:00"]
CONFIGS = [(p, mode, t) for p in ("indrnn_torch", "lstm") for mode in ("train", "infer") for t in (64, 256)]
REGRESSION = ("indrnn_torch", "train", 256)  # 1.5x slower from the 4th commit on
NOISY = ("lstm", "infer", 64)  # at the 3rd commit: moved 12%, but its samples spread far wider


# 20 samples' deviations from their centre: quantiles of a normal distribution, in a random order.
SPREAD = np.array([NormalDist().inv_cdf((i + 0.5) / 20) for i in range(20)])


def base_ms(provider: str, mode: str, t: int) -> float:
    ms = indrnn_ms(t) if provider == "indrnn_torch" else lstm_ms(t)
    return ms * (0.5 if mode == "infer" else 1.0)


def write_run(path, index: int, rng: np.random.Generator, *, regress: bool = True, **meta):
    rows, samples = [], []
    for config in CONFIGS:
        provider, mode, t = config
        centre = base_ms(*config) * rng.uniform(0.98, 1.02)  # drift of the machine between runs
        if regress and config == REGRESSION and index >= 3:
            centre *= 1.5
        taken = centre * (1 + 0.04 * rng.permutation(SPREAD))  # p20-p80 about +-3.4% around the centre
        if config == NOISY and index == 2:  # its median 12% up, its samples spread +-60% around it
            taken = centre * 1.12 * (1 + np.linspace(-0.6, 0.6, 20))
        p20, p50, p80 = (float(q) for q in np.quantile(taken, [0.2, 0.5, 0.8]))
        r = row(provider, p50, mode=mode, seq_len=t, input_size=128, p20_ms=p20, p80_ms=p80, timing="cpu_wallclock")
        rows.append(r)
        samples.append((r, list(taken)))
    fields = dict(
        device_kind="cpu",
        timing="cpu_wallclock",
        preset="ci",
        git_commit=COMMITS[index],
        git_commit_time=COMMIT_TIMES[index],
        timestamp=RUN_TIMES[index],
        threads=1,
    )
    write(path, rows, **(fields | meta))
    with SamplesWriter(path) as writer:
        for r, taken in samples:
            writer.append(r, taken)
    return path


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(7)
    folder = tmp_path / "history"
    folder.mkdir()
    return [write_run(folder / f"run-{i}.csv", i, rng) for i in range(5)]


def test_the_regression_is_flagged_and_nothing_else(runs):
    h = build_history(runs, lineup())
    assert [r.commit for r in h.runs] == COMMITS  # commit order, not the order the runs were made
    assert all(r.commit_time_from == FROM_METADATA for r in h.runs)
    flagged = [(step.after, verdict, name) for step in h.steps for verdict, name, _ in step.flagged]
    assert flagged == [(3, "regression", "indrnn_torch train fwd+bwd T=256 depth=1 B=32 H=128 float32 cpu_wallclock")]
    noisy = [c for c in h.steps[1].comparison.rows if c.name.startswith("lstm infer fwd T=64")]
    assert noisy[0].verdict == "noise" and noisy[0].ratio > 1.05  # beyond the threshold, inside the spread
    text = to_markdown(h)
    assert "1 change(s) flagged." in text
    assert "**regression** indrnn_torch train fwd+bwd T=256" in text


def test_runs_made_on_a_busy_machine_are_named(runs):
    write_run(runs[3], 3, np.random.default_rng(5), machine={"cores": 2, "load_start": 4.5, "load_end": 3.9})
    text = to_markdown(build_history(runs, lineup()))
    assert "1 of 5 runs were made on a busy machine" in text
    assert "4.5 / 3.9 (busy)" in text
    assert "geometric mean x" in text  # each step's overall change, the robust summary on a noisy machine


def test_identical_code_flags_nothing(tmp_path):
    rng = np.random.default_rng(11)
    paths = [write_run(tmp_path / f"run-{i}.csv", i, rng, regress=False) for i in range(5)]
    h = build_history(paths, lineup())
    assert [f for step in h.steps for f in step.flagged] == []
    assert "No change flagged between any two consecutive runs." in to_markdown(h)


def test_speedups_per_baseline_and_the_json_series(runs, tmp_path):
    h = build_history(runs, lineup())
    overall = h.overall()
    assert set(overall["baseline"]) == {"lstm"} and set(overall["mode"]) == {"train", "infer"}
    train = overall[overall["mode"] == "train"].sort_values("run")
    # The regression makes the IndRNN slower at one of two train configs: the geometric mean falls.
    assert train["geomean"].iloc[3] < train["geomean"].iloc[2] / 1.15
    assert (train["min"] <= train["geomean"]).all() and (train["geomean"] <= train["max"]).all()
    entries = benchmark_json(h)
    assert {e["name"] for e in entries} == {
        "indrnn_torch speedup over lstm (train)",
        "indrnn_torch speedup over lstm (infer)",
    }
    for e in entries:
        assert set(e) >= {"name", "unit", "value", "range"} and isinstance(e["value"], float)
    newest = overall[overall["run"] == 4].set_index("mode")["geomean"]
    assert {e["name"].split("(")[-1][:-1]: e["value"] for e in entries} == pytest.approx(newest.to_dict())


def test_the_command_writes_report_figures_and_json(runs, tmp_path, capsys):
    out = tmp_path / "history" / "history-ci.md"
    assert main(["history", str(tmp_path / "history"), "--json-out", str(tmp_path / "bench.json")]) == 0
    assert "1 change(s) flagged between consecutive runs" in capsys.readouterr().out
    assert out.is_file() and "# Performance history: `ci`" in out.read_text()
    figures = sorted(p.name for p in (tmp_path / "history" / "history-ci-plots").glob("*.png"))
    assert figures == ["speedup_infer.png", "speedup_train.png", "times_indrnn_torch.png", "times_lstm.png"]
    assert len(json.loads((tmp_path / "bench.json").read_text())) == 2


@pytest.mark.parametrize(
    "meta, flag, message",
    [
        ({"device": "Another CPU"}, "--allow-device-mismatch", "the runs differ in device"),
        ({"preset": "quick"}, "--allow-preset-mismatch", "the runs differ in preset"),
        ({"timing": "do_bench"}, "--allow-timing-mismatch", "the runs differ in timing"),
    ],
)
def test_mixed_runs_are_refused_in_one_line_unless_allowed(runs, tmp_path, capsys, meta, flag, message):
    write_run(runs[2], 2, np.random.default_rng(1), **meta)
    assert main(["history", *map(str, runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and flag in err
    assert main(["history", *map(str, runs), flag, "--out", str(tmp_path / "mixed.md")]) == 0
    assert f"set side by side anyway: {flag}" in (tmp_path / "mixed.md").read_text()


def test_files_without_their_commit_time_are_placed_by_git_or_by_when_they_ran(runs, tmp_path):
    """Files from before runs recorded the commit time: git gives it for a commit it knows; a commit
    it does not know is placed by the time its run was made. The report says which is which."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if head.returncode != 0:
        pytest.skip("not in a git repository")
    head_time = subprocess.run(["git", "show", "-s", "--format=%cI", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    rng = np.random.default_rng(3)
    write_run(runs[0], 0, rng, git_commit=head.stdout.strip(), git_commit_time="")  # later than every synthetic commit
    write_run(runs[1], 1, rng, git_commit="f" * 40, git_commit_time="", timestamp="2026-01-03T18:00:00+00:00")
    out = tmp_path / "old.md"
    assert main(["history", *map(str, runs), "--out", str(out)]) == 0
    text = out.read_text()
    assert f"{head_time.stdout.strip()} ({FROM_GIT})" in text
    assert f"2026-01-03T18:00:00+00:00 ({FROM_RUN})" in text
    table = text.split("## Runs")[1].split("\n## ")[0]
    order = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert order == ["`cccccccc`", "`ffffffff`", "`dddddddd`", "`eeeeeeee`", f"`{head.stdout.strip()[:8]}`"]
    assert "the commit time of 1 run(s) comes from `git log`" in text
    assert "1 run(s) are placed by the time they were made" in text


class FakeTrees:
    """Worktrees without git: the bookkeeping of --measure, measuring nothing real."""

    def __enter__(self):
        return self

    def checkout(self, commit, out_dir):
        return Path(commit)

    def __exit__(self, *exc):
        return None


def test_measure_keeps_what_ran_and_continues_a_cut_commit_only_with_resume(tmp_path, monkeypatch):
    calls = []

    def fake_run(tree, out_dir, out_name, preset, resume, log):
        calls.append((str(tree)[0], resume))
        index = "abc".index(str(tree)[0])
        write_run(out_dir / out_name, index, np.random.default_rng(index), git_commit=str(tree))
        if len(calls) == 2 and not resume:
            raise KeyboardInterrupt
        return 2 if str(tree)[0] == "c" else 0

    monkeypatch.setattr(commits, "run_preset", fake_run)
    monkeypatch.setattr(commits, "Worktrees", FakeTrees)
    monkeypatch.setattr(commits, "describe_commit", lambda c: {"commit": c, "commit_time": "", "subject": c[0]})
    folder = tmp_path / "measured"
    three = [c * 40 for c in "abc"]
    with pytest.raises(KeyboardInterrupt):
        commits.measure_commits(three, folder, "ci", resume=False, progress=False, argv=[])
    assert [c["status"] for c in commits.read_measured(folder)["commits"]] == ["measured", "cut"]
    with pytest.raises(UsageError, match="was cut; pass --resume"):
        commits.measure_commits(three, folder, "ci", resume=False, progress=False, argv=[])
    record = commits.measure_commits(three, folder, "ci", resume=True, progress=False, argv=[])
    assert [(c["commit"][0], c["status"]) for c in record["commits"]] == [
        ("a", "measured"),
        ("b", "measured"),
        ("c", "failed"),
    ]
    assert calls == [("a", False), ("b", False), ("b", True), ("c", False)]
    commits.measure_commits(three, folder, "ci", resume=False, progress=False, argv=[])
    assert len(calls) == 4  # measured and failed commits are not run again
    assert main(["history", str(folder)]) == 0
    assert (
        "Commit `cccccccc` could not run the preset (exit 2; log `ci-cccccccccccc.log`)"
        in (folder / "history-ci.md").read_text()
    )
    with pytest.raises(UsageError, match="holds a history of preset 'ci'"):
        commits.measure_commits(three, folder, "quick", resume=False, progress=False, argv=[])


@pytest.mark.slow
def test_measure_runs_each_commit_with_its_own_code_and_renders_the_history(tmp_path):
    repo, made = throwaway_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    argv = [
        "history",
        "measured",
        "--preset",
        "tiny",
        "--measure",
        f"{made['base']}..{made['slow']}",
        "--threshold",
        "0.25",
    ]
    done = subprocess.run(
        [sys.executable, "run_bench.py", *argv, "--no-progress"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((repo / "measured" / "history.meta.json").read_text())
    assert [c["commit"] for c in record["commits"]] == [made["same"], made["slow"]]
    for entry in record["commits"]:  # each run was made in a clean checkout of its own commit
        meta = json.loads((repo / "measured" / entry["file"]).with_suffix(".meta.json").read_text())
        assert (meta["git_commit"], meta["git_dirty"], entry["status"]) == (entry["commit"], False, "measured")
        assert meta["argv"][3:5] == ["--out", f".bench-out/{entry['file']}"]  # no temporary path in the record
    text = (repo / "measured" / "history-tiny.md").read_text()
    assert f"2 runs ordered by the time of their commits, from `{made['same'][:8]}`" in text
    assert git(repo, "worktree", "list").count("\n") == 0
