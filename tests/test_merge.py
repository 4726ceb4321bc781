"""`merge`: shards of the ci sweep joined back into the unsharded run's rows, refusals of shards
that are not parts of one sweep, duplicates, and the configs no shard delivered.

The sweeps here measure instantly (a stub in place of suite.sweep.measure): what is tested is which rows
land where, not their times; test_submit runs the real ci sweep through shards end to end."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from synthetic_results import build_report

from suite.commands import cli
from suite.core.errors import ResultsError, UsageError
from suite.core.paths import meta_path
from suite.core.schema import PHASES_OF_MODE, key_of, plan_hash
from suite.core.store import read_meta, read_results, read_samples
from suite.render.plots import plot_all
from suite.sweep import sweep
from suite.sweep.merge import merge
from suite.sweep.presets import load_preset
from suite.sweep.providers import lineup
from suite.sweep.shards import Shard, shard_of

FAST = ["--warmup", "0", "--repeats", "2", "--device", "cpu", "--no-progress"]


def instant(status: str):
    def measure(cfg, device, timer, copy_gbps) -> list[dict]:
        ok = dict(p20_ms=0.9, p50_ms=1.0, p80_ms=1.1, n_samples=3, samples_ms=[0.9, 1.0, 1.1])
        times = ok if status == "ok" else dict(reason="stub")
        return [dict(phase=p, status=status, **times) for p in PHASES_OF_MODE[cfg.mode]]

    return measure


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    """The ci sweep unsharded, and split in 2 and 3 shards, through `run --shard K/N`."""
    folder = tmp_path_factory.mktemp("ci")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "measure", instant("ok"))
        assert cli.main(["run", "--preset", "ci", "--out", str(folder / "whole.csv"), *FAST]) == 0
        shards = {}
        for count in (2, 3):
            shards[count] = [folder / f"s{k}of{count}.csv" for k in range(1, count + 1)]
            for k, out in enumerate(shards[count], 1):
                assert cli.main(["run", "--preset", "ci", "--shard", f"{k}/{count}", "--out", str(out), *FAST]) == 0
    return folder, shards


def keys(path) -> set[tuple]:
    return {key_of(r) for r in read_results(path).to_dict("records")}


@pytest.mark.parametrize("count", [2, 3])
def test_shards_merged_hold_the_unsharded_runs_rows(ci, count, tmp_path):
    folder, shards = ci
    merged = merge(shards[count], tmp_path / "merged.csv")
    assert (merged.duplicates, merged.missing) == (0, [])
    assert keys(merged.out) == keys(folder / "whole.csv")
    assert len(read_results(merged.out)) == len(read_results(folder / "whole.csv"))
    assert read_samples(merged.out) == read_samples(folder / "whole.csv")  # compare's statistics come along
    meta = read_meta(merged.out)
    plan = load_preset("ci")
    assert meta["configs"] == [asdict(c) for c in plan] and meta["plan_hash"] == plan_hash(plan)
    assert (meta["shard"], meta["plan"]) == ("", [])
    assert [s["shard"] for s in meta["notes"]["merged_shards"]] == [f"{k}/{count}" for k in range(1, count + 1)]


def test_report_plots_and_compare_accept_a_merged_file(ci, tmp_path, capsys):
    folder, shards = ci
    out = merge(shards[3], tmp_path / "merged.csv").out
    assert "Configs of the plan with no results" not in build_report(out)
    assert plot_all(out, lineup(), tmp_path / "plots").written
    assert cli.main(["compare", str(folder / "whole.csv"), str(out)]) == 0


def test_configs_no_shard_delivered_are_listed_in_the_merge_and_the_report(ci, tmp_path, capsys):
    _, shards = ci
    out = tmp_path / "merged.csv"
    assert cli.main(["merge", str(shards[3][0]), str(shards[3][2]), "-o", str(out)]) == 0
    lost = shard_of(load_preset("ci"), Shard(2, 3))
    printed = capsys.readouterr().out
    assert f"{len(lost)} configs of the plan were delivered by no shard" in printed
    assert all(c.label() in printed for c in lost)
    report = build_report(out)
    assert f"{len(lost)} of the 22 configs of the plan have no row" in report


def test_duplicates_are_dropped_keeping_an_ok_row_over_a_failed_one(ci, tmp_path, monkeypatch):
    _, shards = ci
    first = shards[2][0]
    failed = tmp_path / "failed.csv"
    monkeypatch.setattr(sweep, "measure", instant("failed"))
    assert cli.main(["run", "--preset", "ci", "--shard", "1/2", "--out", str(failed), *FAST]) == 0
    n = len(read_results(first))
    for order in ([first, failed], [failed, first]):
        merged = merge([*order, shards[2][1]], tmp_path / "merged.csv")
        assert merged.duplicates == n
        rows = read_results(merged.out)
        assert set(rows["status"]) == {"ok"} and len(rows) == len(keys(merged.out))


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("plan_hash", "0123456789abcdef", "plan"),
        ("git_commit", "f" * 40, "commit"),
        ("device", "Another GPU", "device"),
        ("timing", "do_bench", "timing method"),
        ("denormals", "kept", "denormal floats"),
    ],
)
def test_shards_of_different_sweeps_are_refused_naming_the_file_and_what_differs(
    ci, tmp_path, capsys, field, value, named
):
    _, shards = ci
    odd = tmp_path / "odd.csv"
    odd.write_bytes(shards[2][1].read_bytes())
    meta = read_meta(shards[2][1]) | {field: value}
    meta_path(odd).write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match=f"{odd} is not of the same sweep as .*: {named} "):
        merge([shards[2][0], odd], tmp_path / "merged.csv")
    assert cli.main(["merge", str(shards[2][0]), str(odd), "-o", str(tmp_path / "m.csv")]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()


def test_the_merged_file_may_not_be_a_shard(ci):
    _, shards = ci
    with pytest.raises(UsageError, match="is one of the shards"):
        merge(shards[2], shards[2][1])
