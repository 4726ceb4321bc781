"""Sharding a plan (suite.sweep.shards): every config in exactly one part, comparisons never split, the
same parts every time, and `run --shard K/N` recording its part and the whole plan."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from harness_helpers import cfg

from suite.commands import cli
from suite.core.errors import UsageError
from suite.core.schema import AXES, missing_configs, plan_hash
from suite.core.store import read_meta
from suite.sweep.cost import prior_s
from suite.sweep.presets import PRESETS, load_preset
from suite.sweep.shards import Shard, comparison_of, partition, shard_of

COUNTS = (1, 2, 3, 4, 5, 6, 7, 500)  # 500: more parts than any preset has comparisons


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("count", COUNTS)
def test_every_config_lands_in_exactly_one_part_in_plan_order(preset, count):
    plan = load_preset(preset)
    parts = partition(plan, count)
    assert len(parts) == count
    flat = [c for part in parts for c in part]
    assert sorted(flat, key=plan.index) == plan and len(flat) == len(plan)
    for part in parts:
        assert part == sorted(part, key=plan.index)


def _same_part(parts: list[list], key) -> bool:
    """Whether configs that agree on key(config) always share a part."""
    part_of: dict = {}
    for k, part in enumerate(parts):
        for c in part:
            if part_of.setdefault(key(c), k) != k:
                return False
    return True


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("count", COUNTS)
def test_configs_the_analysis_compares_share_a_part(preset, count):
    parts = partition(load_preset(preset), count)
    # A speedup pair: the same config but for the provider.
    assert _same_part(parts, lambda c: tuple(getattr(c, a) for a in AXES if a != "provider"))
    # A Fig. 2 cell: the 1- and 2-layer IndRNN against the 1-layer LSTM, eager and graph-timed.
    assert _same_part(parts, lambda c: (c.mode, c.seq_len, c.batch, c.hidden, c.dtype))


def test_parts_are_balanced_by_estimated_time_and_the_same_every_time():
    plan = load_preset("full")
    costliest = max(sum(prior_s(d, "cuda") for d in plan if comparison_of(d) == comparison_of(c)) for c in plan)
    for count in range(1, 8):
        parts = partition(plan, count)
        assert parts == partition(list(plan), count)
        loads = [sum(prior_s(c, "cuda") for c in p) for p in parts]
        assert max(loads) - min(loads) <= costliest
    assert all(partition(plan, 7))  # enough comparisons: no part is left empty


def test_parts_hold_equal_estimated_time_where_comparisons_allow():
    big = [cfg(p) for p in ("indrnn_torch", "lstm", "gru", "transformer")]  # one comparison of four
    small = [cfg("lstm", seq_len=t) for t in (16, 32, 64, 128)]  # four comparisons of one
    parts = partition(small[:2] + big + small[2:], 2)
    assert parts == [big, small]


def test_a_long_eager_loop_weighs_more_than_many_quick_configs():
    slow = [cfg("indrnn_torch", seq_len=16384)]  # the eager loop launches kernels per step
    quick = [cfg(p, seq_len=t) for t in (16, 32, 64, 128) for p in ("lstm", "gru")]
    assert partition(quick + slow, 2) == [slow, quick]


def test_more_parts_than_comparisons_leaves_the_extra_parts_empty():
    plan = [cfg("lstm"), cfg("indrnn_torch"), cfg("lstm", seq_len=16)]
    parts = partition(plan, 5)
    assert parts[:2] == [[plan[0], plan[1]], [plan[2]]]
    assert parts[2:] == [[], [], []]


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "1/2/3"])
def test_bad_shard_specs_are_usage_errors(text):
    with pytest.raises(UsageError):
        Shard.parse(text)


def test_shard_parse_and_names():
    shard = Shard.parse("2/3")
    assert (shard.index, shard.count, str(shard), shard.suffix) == (2, 3, "2/3", "shard-2-of-3")


def test_missing_configs_are_those_without_every_phase_row():
    train, rec = cfg("indrnn_torch"), cfg("indrnn_torch", "recurrence")
    keys = {
        ("indrnn_torch", "train", "fwd+bwd", 8, 1, 2, 8, "float32", 8, "cpu_wallclock"),
        ("indrnn_torch", "recurrence", "fwd", 8, 1, 2, 8, "float32", 8, "cpu_wallclock"),
    }
    assert missing_configs([train, rec], keys, "cpu_wallclock") == [rec]  # its bwd row is missing
    assert missing_configs([train, rec], keys, "do_bench") == [train, rec]


def test_run_shard_records_its_part_and_the_whole_plan(tmp_path, capsys):
    plan = load_preset("ci", {"seq_len": [8, 16]})  # the ci grids at short T: the same parts, sooner
    out = tmp_path / "s.csv"
    args = ["run", "--preset", "ci", "--seq-len", "8", "16", "--shard", "3/3", "--out", str(out), "--device", "cpu"]
    args.append("--no-progress")
    assert cli.main([*args, "--dry-run"]) == 0
    assert f"{len(shard_of(plan, Shard(3, 3)))} configs" in capsys.readouterr().out
    assert cli.main([*args, "--warmup", "0", "--repeats", "2"]) == 0
    meta = read_meta(out)
    assert meta["shard"] == "3/3" and meta["plan_hash"] == plan_hash(plan)
    assert meta["configs"] == [asdict(c) for c in shard_of(plan, Shard(3, 3))]
    assert meta["plan"] == [asdict(c) for c in plan]
    assert not out.with_suffix(".md").exists()  # a shard's report would be a partial one
    # --resume continues the shard's own grid; another shard's number is refused.
    assert cli.main(["run", "--resume", "--out", str(out), "--shard", "3/3", "--no-progress"]) == 0
    assert read_meta(out)["configs"] == meta["configs"]
    assert cli.main(["run", "--resume", "--out", str(out), "--shard", "2/3", "--no-progress"]) == 2
    assert "holds shard 3/3, not 2/3" in capsys.readouterr().err
