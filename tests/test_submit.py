"""`submit --executor local` end to end on CPU with the ci preset: shards run one after another
as local submitit jobs, a failed shard is reported with its log and its configs as missing, and
--resume runs only that shard before the merged file holds the whole plan."""

from __future__ import annotations

import argparse
import json
import sys

import pytest

from suite.commands import cli
from suite.commands.submit import ShardJob, executor_parameters, shard_command
from suite.core import paths
from suite.core.schema import key_of, missing_configs
from suite.core.store import read_meta, read_results
from suite.sweep.presets import load_preset
from suite.sweep.shards import Shard, shard_of


@pytest.mark.slow
def test_submit_local_runs_the_shards_reports_a_failure_and_resumes_only_it(tmp_path, capsys):
    pytest.importorskip("submitit")
    plan = load_preset("ci")
    shards = [tmp_path / f"ci.shard-{k}-of-2.csv" for k in (1, 2)]
    # Shard 2 finds a file that is not a results file where its results go: its `run` fails.
    shards[1].write_text("not a results file\n")
    args = ["submit", "--preset", "ci", "--shards", "2", "--executor", "local", "--out-dir", str(tmp_path)]
    args += ["--warmup", "0", "--repeats", "2", "--poll-s", "0.2"]

    assert cli.main(args) == 1
    out = capsys.readouterr().out
    state = json.loads((tmp_path / "submit.json").read_text())
    assert [job["status"] for job in state["jobs"].values()] == ["done", "failed"]
    failed_log = state["jobs"]["2/2"]["log"]
    assert "shard 2/2 failed: " in out and f"log: {failed_log}" in out
    assert "shard 2/2 failed: run_bench.py run: error: " in out and "is not a results file" in out
    merged = tmp_path / "ci-merged.csv"
    lost = shard_of(plan, Shard(2, 2))
    assert f"{len(lost)} configs of the plan were delivered by no shard" in out
    assert f"{len(lost)} of the {len(plan)} configs of the plan have no row" in merged.with_suffix(".md").read_text()

    shards[1].unlink()
    kept = shards[0].stat().st_mtime_ns
    assert cli.main([*args, "--resume"]) == 0
    assert "1 of 2 shards to run" in capsys.readouterr().out
    assert shards[0].stat().st_mtime_ns == kept  # a finished shard is not run again
    keys = {key_of(r) for r in read_results(merged).to_dict("records")}
    meta = read_meta(merged)
    assert missing_configs(plan, keys, meta["timing"]) == []
    assert len(meta["configs"]) == len(plan) and len(meta["notes"]["merged_shards"]) == 2
    assert merged.with_suffix(".md").is_file()


def test_without_submitit_submit_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    assert cli.main(["submit", "--preset", "ci", "--shards", "2", "--executor", "local"]) == 2
    assert capsys.readouterr().err.strip().endswith("pip install submitit")


def test_a_second_submit_into_the_same_folder_is_refused(tmp_path, capsys):
    (tmp_path / "submit.json").write_text("{}")
    args = ["submit", "--preset", "ci", "--shards", "2", "--executor", "local", "--out-dir", str(tmp_path)]
    assert cli.main(args) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_slurm_jobs_ask_for_one_node_the_gpus_partition_and_time_limit():
    args = argparse.Namespace(
        preset="full", shards=4, executor="slurm", gpus_per_task=1, slurm_partition="gpu", timeout_min=90
    )
    params = executor_parameters(args)
    assert params == {
        "timeout_min": 90,
        "name": "indrnn-full",
        "nodes": 1,
        "tasks_per_node": 1,
        "gpus_per_node": 1,
        "slurm_array_parallelism": 4,
        "slurm_partition": "gpu",
    }


def test_a_shard_job_is_the_run_command_with_the_flags_passed_on(tmp_path):
    args = argparse.Namespace(preset="quick", warmup="0", repeats=None, keep_denormals=True)
    command = shard_command(args, ShardJob("1/2", str(tmp_path / "s.csv")))
    assert command[1:] == [
        str(paths.REPO_ROOT / "run_bench.py"),
        *["run", "--preset", "quick", "--shard", "1/2", "--out", str(tmp_path / "s.csv")],
        *["--warmup", "0", "--keep-denormals"],
    ]
