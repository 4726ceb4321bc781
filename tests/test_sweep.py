"""The `run` sweep on CPU: the ci preset end to end, row and metadata schema, resume after an
interruption, failed/oom/skipped rows, and the GPU-only sweep checks."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch
from harness_helpers import FAST, cfg, indrnn_build, register, sweep_rows
from synthetic_results import build_report

from kernels.recurrence import scan_pays
from suite.commands import cli
from suite.core import denormals
from suite.core.errors import UsageError
from suite.core.paths import profile_path
from suite.core.schema import COLUMNS, KEY_COLUMNS, PHASES_OF_MODE, STATUSES, RunMeta, SweepConfig, key_of, plan_hash
from suite.core.store import read_meta, read_results, read_samples
from suite.render import analysis
from suite.sweep import profiling, sweep
from suite.sweep.presets import load_preset
from suite.sweep.profiling import CATEGORIES
from suite.sweep.providers import PROVIDERS


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci") / "ci.csv"
    # Every provider and mode of the ci preset, at short T: what is checked here does not depend
    # on T, and `.ci/run` runs the preset itself.
    configs = load_preset("ci", {"seq_len": [8, 16]})
    sweep.run_sweep(configs, out, preset="ci", **FAST)
    return configs, out, read_results(out), read_meta(out)


# ---------------------------------------------------------------------------- ci end to end


@pytest.mark.slow
def test_ci_preset_writes_one_row_per_config_and_phase(ci_run):
    configs, out, df, meta = ci_run
    assert len(df) == sum(len(PHASES_OF_MODE[c.mode]) for c in configs)
    assert not df.duplicated(list(KEY_COLUMNS)).any()
    assert set(df["provider"]) == {c.provider for c in configs}
    assert set(df["status"]) <= set(STATUSES)
    on_cpu = not torch.cuda.is_available()
    triton_rows = df[df["provider"] == "indrnn_triton"]
    if on_cpu:  # never through the interpreter in a benchmark
        assert (triton_rows["status"] == "skipped").all()
        assert (triton_rows["reason"] == "needs CUDA").all()
    measured = df[df["provider"] != "indrnn_triton"] if on_cpu else df
    assert (measured["status"] == "ok").all(), measured[measured["status"] != "ok"]["reason"].tolist()


def test_ci_rows_carry_times_throughput_and_provenance(ci_run):
    _, out, df, meta = ci_run
    assert tuple(pd.read_csv(out, nrows=0).columns) == COLUMNS
    ok = df[df["status"] == "ok"]
    assert (ok["p20_ms"] <= ok["p50_ms"]).all() and (ok["p50_ms"] <= ok["p80_ms"]).all()
    assert (ok["p50_ms"] > 0).all()
    expected_tps = ok["seq_len"] * ok["batch"] / (ok["p50_ms"] * 1e-3)
    assert ((ok["tokens_per_s"] - expected_tps).abs() <= 1e-6 * expected_tps).all()
    assert (ok["params"] > 0).all()
    assert (df["run_id"] == meta["run_id"]).all()
    assert (df["timing"] == meta["timing"]).all() and (df["preset"] == "ci").all()
    assert set(df.loc[df["mode"] == "train", "phase"]) == {"fwd+bwd"}
    assert set(df.loc[df["mode"] == "infer", "phase"]) == {"fwd"}


def test_ci_recurrence_rows_report_bandwidth(ci_run):
    _, _, df, meta = ci_run
    rec = df[(df["mode"] == "recurrence") & (df["status"] == "ok")]
    assert set(rec["phase"]) == {"fwd", "bwd"}
    for _, row in rec.iterrows():
        moved = (2 if row["phase"] == "fwd" else 3) * row["seq_len"] * row["batch"] * row["hidden"] * 4
        gbps = moved / (row["p50_ms"] * 1e-3) / 1e9
        assert row["gbytes_per_s"] == pytest.approx(gbps)
        assert row["pct_copy_bw"] == pytest.approx(100 * gbps / meta["copy_gbytes_per_s"])
        assert row["ns_per_step"] == pytest.approx(row["p50_ms"] * 1e6 / row["seq_len"])


def test_ci_metadata_record(ci_run):
    _, _, _, meta = ci_run
    assert set(meta) == {f.name for f in dataclasses.fields(RunMeta)}
    assert meta["preset"] == "ci" and meta["device_kind"] in ("cpu", "cuda")
    assert meta["copy_gbytes_per_s"] > 0
    assert meta["threads"] >= 1 and meta["torch"] == torch.__version__
    assert meta["git_commit"] and isinstance(meta["git_dirty"], bool)
    assert meta["timing"] in ("cpu_wallclock", "do_bench")


# ---------------------------------------------------------------------------- resume


def test_resume_after_interrupt_loses_and_repeats_nothing(tmp_path, monkeypatch):
    configs = [cfg(p, m) for p in ("indrnn_torch", "lstm") for m in ("train", "infer")]
    configs.append(cfg("indrnn_torch", "recurrence"))
    out = tmp_path / "run.csv"
    real_measure = sweep.measure
    calls = []

    def interrupted(c, *args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(c)
        return real_measure(c, *args)

    monkeypatch.setattr(sweep, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(configs, out, preset="test", **FAST)
    first = read_results(out)
    assert len(first) == 3  # every finished config is on disk

    calls.clear()
    monkeypatch.setattr(sweep, "measure", lambda c, *args: calls.append(c) or real_measure(c, *args))
    sweep.run_sweep(configs, out, preset="test", resume=True, **FAST)
    assert calls == configs[3:]  # only what was missing is measured
    df = read_results(out)
    assert len(df) == 4 + 2 and not df.duplicated(list(KEY_COLUMNS)).any()
    pd.testing.assert_frame_equal(df.iloc[:3], first)  # earlier rows untouched
    assert df["run_id"].nunique() == 1
    assert len(read_meta(out)["notes"]["resumed"]) == 1


def test_resume_completes_a_partly_written_config(tmp_path):
    out = tmp_path / "run.csv"
    rec = cfg("indrnn_torch", "recurrence")
    sweep.run_sweep([rec], out, preset="test", **FAST)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]))  # the bwd row was never written
    sweep.run_sweep([rec], out, preset="test", resume=True, **FAST)
    df = read_results(out)
    assert sorted(df["phase"]) == ["bwd", "fwd"]


def test_exception_and_oom_become_rows_and_the_sweep_goes_on(tmp_path, monkeypatch):
    def boom(c, device):
        raise RuntimeError("boom\nsecond line")

    def oom(c, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    register(monkeypatch, "boom", boom)
    register(monkeypatch, "oom", oom)
    df = sweep_rows(tmp_path, [cfg("boom"), cfg("oom"), cfg("lstm")])
    assert list(df["status"]) == ["failed", "oom", "ok"]
    assert df["reason"][0] == "RuntimeError: boom"
    assert df["reason"][1].startswith("OutOfMemoryError: CUDA out of memory")


def test_unavailable_providers_are_skipped_rows_with_reason(tmp_path):
    df = sweep_rows(tmp_path, [cfg("indrnn_residual", depth=2), cfg("indrnn_compile", seq_len=100_000)])
    assert list(df["status"]) == ["skipped", "skipped"]
    assert "odd depth" in df["reason"][0]
    assert df["reason"][1].startswith("compile prohibitive")
    missing = PROVIDERS["sru"].unavailable(cfg("sru"), torch.device("cpu"))
    import importlib.util

    assert (missing is None) == (importlib.util.find_spec("sru") is not None)


@pytest.mark.gpu
def test_ci_preset_on_gpu_times_every_provider(tmp_path):
    out = tmp_path / "ci.csv"
    sweep.run_sweep(load_preset("ci"), out, preset="ci", progress=False)
    df = read_results(out)
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]["reason"].tolist()
    assert (df["timing"] == "do_bench").all() and (df["peak_mem_mb"] > 0).all()
    assert read_meta(out)["driver"]


@pytest.mark.gpu
def test_cuda_graph_timing_is_labelled(tmp_path):
    out = tmp_path / "graph.csv"
    configs = [cfg("lstm", "infer"), cfg("indrnn_triton"), cfg("indrnn_triton", "recurrence")]
    sweep.run_sweep(configs, out, preset="t", timing="cuda_graph", progress=False)
    df = read_results(out)
    assert (df["timing"] == "cuda_graph").all() and read_meta(out)["timing"] == "cuda_graph"
    bwd = (df["mode"] == "recurrence") & (df["phase"] == "bwd")
    assert (df[bwd]["status"] == "skipped").all()
    assert (df[~bwd]["status"] == "ok").all(), df[~bwd][["provider", "mode", "reason"]].values.tolist()


def test_configs_differing_only_in_input_size_are_twosweep_rows(tmp_path):
    configs = [SweepConfig("lstm", "infer", 8, 1, 2, 8, "float32", i) for i in (2, 8)]
    out = sweep.run_sweep(configs, tmp_path / "inputs.csv", preset="test", progress=False, repeats=2, warmup=0)
    df = read_results(out)
    assert sorted(df["input_size"]) == [2, 8] and (df["status"] == "ok").all()


def test_resume_refuses_a_file_from_another_device(tmp_path):
    out = sweep.run_sweep([cfg("lstm", "infer")], tmp_path / "r.csv", preset="t", progress=False, repeats=2, warmup=0)
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    (tmp_path / "r.meta.json").write_text(json.dumps({**meta, "device": "Another CPU"}))
    with pytest.raises(UsageError, match="measured on Another CPU"):
        sweep.run_sweep([cfg("gru", "infer")], out, preset="t", resume=True, progress=False, repeats=2, warmup=0)
    assert len(read_results(out)) == 1


def test_resume_measures_failed_rows_again_only_when_asked(tmp_path, monkeypatch):
    flaky = {"fail": True}

    def build(c, device):
        if flaky["fail"]:
            raise RuntimeError("transient")
        return PROVIDERS["lstm"].build(c, device)

    register(monkeypatch, "flaky", build)
    out = tmp_path / "r.csv"
    sweep.run_sweep([cfg("flaky", "infer")], out, preset="t", **FAST)
    flaky["fail"] = False
    sweep.run_sweep([cfg("flaky", "infer")], out, preset="t", resume=True, **FAST)
    assert list(read_results(out)["status"]) == ["failed"]  # a failed row counts as done
    sweep.run_sweep([cfg("flaky", "infer")], out, preset="t", resume=True, retry_failed=True, **FAST)
    assert list(read_results(out)["status"]) == ["ok"]  # the newer row wins
    assert len(out.read_text().splitlines()) == 3  # header, the failed row kept on disk, the new one


def test_resume_refuses_a_file_made_by_another_commit(tmp_path):
    out = sweep.run_sweep([cfg("lstm", "infer")], tmp_path / "r.csv", preset="t", **FAST)
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    (tmp_path / "r.meta.json").write_text(json.dumps({**meta, "git_commit": "0" * 40}))
    with pytest.raises(UsageError, match="measured with commit 000000000000"):
        sweep.run_sweep([cfg("gru", "infer")], out, preset="t", resume=True, **FAST)


def test_metadata_records_the_grid_its_hash_and_the_wall_time(tmp_path):
    configs = [cfg("lstm", "infer"), cfg("gru", "infer")]
    out = sweep.run_sweep(configs, tmp_path / "r.csv", preset="t", **FAST)
    meta = read_meta(out)
    assert [SweepConfig(**c) for c in meta["configs"]] == configs
    assert meta["plan_hash"] == plan_hash(configs) != plan_hash(configs[::-1])
    assert meta["wall_s"] > 0


def test_a_config_asking_for_cuda_graph_timing_is_a_labelled_row(tmp_path):
    df = sweep_rows(tmp_path, [cfg("lstm", "infer"), cfg("lstm", "infer", timing="cuda_graph")])
    assert len(df) == 2 and set(df["timing"]) == {df["timing"][0], "cuda_graph"}
    if not torch.cuda.is_available():
        graph = df[df["timing"] == "cuda_graph"].iloc[0]
        assert graph["status"] == "skipped" and graph["reason"] == "cuda_graph timing needs CUDA"


def test_resume_after_a_row_cut_off_mid_write_measures_it_again_on_its_own_line(tmp_path):
    out = tmp_path / "run.csv"
    configs = [cfg("lstm", "infer"), cfg("gru", "infer")]
    sweep.run_sweep(configs, out, preset="t", **FAST)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 20])  # the gru row cut off: a crash mid-write
    assert list(read_results(out)["provider"]) == ["lstm"]
    sweep.run_sweep(configs, out, preset="t", resume=True, **FAST)
    df = read_results(out)
    assert list(df["provider"]) == ["lstm", "gru"] and (df["status"] == "ok").all()
    assert len(out.read_text().splitlines()) == 3  # header and two whole rows: nothing glued


def test_metadata_records_the_machine_load_and_copy_at_start_and_end(tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    sweep.run_sweep([cfg("lstm", "infer")], out, preset="t", **FAST)
    machine = read_meta(out)["machine"]
    assert machine["cores"] >= 1 and machine["load_start"] >= 0 and machine["load_end"] >= 0
    assert machine["copy_gbytes_per_s_end"] > 0
    # Other keys of the record (GPU clocks) are merged with, never replaced.
    meta = read_meta(out)
    (tmp_path / "r.meta.json").write_text(json.dumps({**meta, "machine": {**machine, "gpu": {"sm_mhz": 1980}}}))
    sweep.run_sweep([cfg("lstm", "infer"), cfg("gru", "infer")], out, preset="t", resume=True, **FAST)
    assert read_meta(out)["machine"]["gpu"] == {"sm_mhz": 1980}


def test_run_profiles_after_the_sweep_so_its_wall_time_is_the_sweeps_alone(tmp_path, monkeypatch):
    out = tmp_path / "run.csv"
    monkeypatch.setattr(profiling, "is_fig2_config", lambda c: c.provider == "indrnn_torch")
    seen = []

    def profile_config(cfg, device, steps):
        seen.append(read_meta(out))  # what the sweep had recorded when the profile began
        raise RuntimeError("not profiled here")

    monkeypatch.setattr(profiling, "profile_config", profile_config)
    tiny = ["--seq-len", "8", "--batch", "2", "--hidden", "8", "--depth", "1", "--warmup", "0", "--repeats", "2"]
    flags = ["--preset", "ci", "--provider", "indrnn_torch", "--mode", "train", *tiny, "--no-progress"]
    assert cli.main(["run", *flags, "--profile", "--out", str(out)]) == 0
    (before,) = seen
    assert before["wall_s"] is not None and "copy_gbytes_per_s_end" in before["machine"]
    assert read_meta(out)["wall_s"] == before["wall_s"]  # the profile added nothing to it


def test_samples_profile_and_machine_state_are_kept_beside_the_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(profiling, "is_fig2_config", lambda c: c.provider == "indrnn_torch" and c.mode == "train")
    out = tmp_path / "run.csv"
    configs = [cfg("indrnn_torch", "train"), cfg("lstm", "train"), cfg("indrnn_torch", "recurrence")]
    sweep.run_sweep(configs, out, preset="test", **FAST)
    profiling.profile_fig2(configs, out, torch.device("cpu"))
    rows = read_results(out).to_dict("records")
    samples = read_samples(out)
    assert set(samples) == {key_of(r) for r in rows}
    assert all(len(samples[key_of(r)]) == r["n_samples"] for r in rows)
    breakdown = pd.read_csv(profile_path(out))
    assert set(breakdown["provider"]) == {"indrnn_torch"} and list(breakdown["category"]) == list(CATEGORIES)
    assert breakdown["share"].sum() == pytest.approx(1.0)
    machine = read_meta(out)["machine"]
    assert {"start", "end", "load_start", "cores"} <= set(machine) and "cpu" in machine["end"]
    report = build_report(out)
    assert "## Where the time goes" in report and "| indrnn_torch |" in report.split("Where the time goes")[1]
    # A resumed run neither measures nor profiles its configs again.
    sweep.run_sweep(configs, out, preset="test", resume=True, **FAST)
    profiling.profile_fig2(configs, out, torch.device("cpu"))
    assert len(pd.read_csv(profile_path(out))) == len(CATEGORIES) and len(read_results(out)) == len(rows)


# ---------------------------------------------------------------------------- schedules


def test_rows_record_the_schedule_that_ran_and_read_it_back(tmp_path):
    """auto walks a short sequence and scans a long one over few columns (on a CPU: T >= 256, at most
    1024 columns); a pinned provider runs its schedule at any T; other models record none."""
    long = 256
    configs = [
        cfg(provider, mode, seq_len=t)
        for provider in ("indrnn_torch", "indrnn_torch_seq", "indrnn_torch_scan", "lstm")
        for mode in ("recurrence", "infer")
        for t in (8, long)
        if mode in PROVIDERS[provider].modes
    ]
    df = sweep_rows(tmp_path, configs)
    assert (df["status"] == "ok").all(), df["reason"].tolist()
    ran = {(r.provider, r.mode, r.seq_len): r.schedule for r in df.itertuples()}
    for mode in ("recurrence", "infer"):
        assert ran["indrnn_torch", mode, 8] == "sequential" and ran["indrnn_torch", mode, long] == "scan"
        assert {ran["indrnn_torch_seq", mode, t] for t in (8, long)} == {"sequential"}
        assert {ran["indrnn_torch_scan", mode, t] for t in (8, long)} == {"scan"}
    assert set(df.loc[df["provider"] == "lstm", "schedule"]) == {""}
    asked = {
        r.provider: analysis.notes_of(r.extra)["schedule_asked"] for r in df[df["provider"] != "lstm"].itertuples()
    }
    assert asked == {"indrnn_torch": "auto", "indrnn_torch_seq": "sequential", "indrnn_torch_scan": "scan"}
    assert tuple(pd.read_csv(tmp_path / "run.csv", nrows=0).columns) == COLUMNS and "schedule" in COLUMNS
    assert "schedule" not in KEY_COLUMNS  # the schedule is what a provider ran, not another config


def test_metadata_records_where_auto_takes_the_scan(tmp_path):
    sweep_rows(tmp_path, [cfg("lstm", "infer")])
    rule = read_meta(tmp_path / "run.csv")["notes"]["scan_rule"]
    cpu = torch.device("cpu")
    steps, columns = rule["min_steps"], rule["max_columns"]
    assert scan_pays(steps, columns, cpu) and scan_pays(10 * steps, 1, cpu)
    assert not scan_pays(steps - 1, 1, cpu) and not scan_pays(steps, columns + 1, cpu)


# ---------------------------------------------------------------------------- denormal floats


def test_a_cpu_config_is_timed_with_denormals_flushed_on_every_thread_and_not_after(tmp_path, monkeypatch):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormal floats")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a flush that reached the calling thread alone would read 0.5
    seen = []

    def probing(model, x):
        seen.append(denormals.flushed_share())
        return model(x)[0]

    register(monkeypatch, "probing", indrnn_build(probing))
    try:
        for flush, share, recorded in ((True, 1.0, "flushed"), (False, 0.0, "kept")):
            seen.clear()
            out = tmp_path / f"{recorded}.csv"
            sweep.run_sweep([cfg("probing", "infer")], out, preset="t", flush_denormals=flush, **FAST)
            assert seen == [0.0, share, share]  # the gate's call, untimed; then the two timed calls
            assert read_meta(out)["denormals"] == recorded
            assert denormals.flushed_share() == 0.0  # every thread as it was before
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(UsageError, match="denormal floats there: kept, in this run: flushed"):
        sweep.run_sweep([cfg("lstm", "infer")], tmp_path / "kept.csv", preset="t", resume=True, **FAST)
    assert len(read_results(tmp_path / "kept.csv")) == 1


def test_run_keep_denormals_is_recorded(tmp_path):
    out = tmp_path / "run.csv"
    tiny = ["--seq-len", "8", "--batch", "2", "--hidden", "8", "--depth", "1", "--warmup", "0", "--repeats", "2"]
    flags = ["--preset", "ci", "--provider", "lstm", "--mode", "infer", *tiny, "--no-progress", "--out", str(out)]
    assert cli.main(["run", *flags, "--keep-denormals"]) == 0
    assert read_meta(out)["denormals"] == "kept"


@pytest.mark.parametrize(
    ("pays", "rule"),
    [
        (lambda t, n: False, None),  # auto never scans
        (lambda t, n: t >= 100, {"min_steps": 100, "max_columns": 2**40}),  # at any width
        (lambda t, n: t >= 256 and n < 16896, {"min_steps": 256, "max_columns": 16895}),  # a GPU of 132 SMs
    ],
)
def test_the_recorded_scan_rule_is_read_off_any_monotone_rule(monkeypatch, pays, rule):
    from suite.sweep import measure

    monkeypatch.setattr(measure, "scan_pays", lambda t, n, device: pays(t, n))
    assert measure.scan_rule(torch.device("cpu")) == rule
