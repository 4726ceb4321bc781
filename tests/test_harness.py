"""The benchmark harness on CPU: the ci preset end to end, row and metadata schema, resume
after an interruption, the correctness gate, failed/oom/skipped rows, presets and timers."""

from __future__ import annotations

import dataclasses
import json
import time

import pandas as pd
import pytest
import torch
from torch import nn

from suite import bench, presets
from suite.errors import PresetError, UsageError
from suite.gate import GateError, check_recurrence
from suite.presets import SweepConfig, load_preset
from suite.providers import PROVIDERS, Built, Provider, attention_heads, param_count
from suite.schema import COLUMNS, KEY_COLUMNS, STATUSES, RunMeta
from suite.store import read_meta, read_results
from suite.timing import copy_bandwidth_gbps, time_cpu

FAST = dict(progress=False, warmup=0, repeats=2)  # tiny shapes; the figures are not the point here


def cfg(provider: str = "indrnn_torch", mode: str = "train", **axes) -> SweepConfig:
    values = dict(seq_len=8, depth=1, batch=2, hidden=8, dtype="float32", input_size=8) | axes
    return SweepConfig(provider, mode, **values)


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci") / "ci.csv"
    configs = load_preset("ci")
    bench.run_sweep(configs, out, preset="ci", **FAST)
    return configs, out, read_results(out), read_meta(out)


# ---------------------------------------------------------------------------- ci end to end


def test_ci_preset_writes_one_row_per_config_and_phase(ci_run):
    configs, out, df, meta = ci_run
    assert len(df) == sum(len(bench.PHASES_OF_MODE[c.mode]) for c in configs)
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
    real_measure = bench.measure
    calls = []

    def interrupted(c, *args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(c)
        return real_measure(c, *args)

    monkeypatch.setattr(bench, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.run_sweep(configs, out, preset="test", **FAST)
    first = read_results(out)
    assert len(first) == 3  # every finished config is on disk

    calls.clear()
    monkeypatch.setattr(bench, "measure", lambda c, *args: calls.append(c) or real_measure(c, *args))
    bench.run_sweep(configs, out, preset="test", resume=True, **FAST)
    assert calls == configs[3:]  # only what was missing is measured
    df = read_results(out)
    assert len(df) == 4 + 2 and not df.duplicated(list(KEY_COLUMNS)).any()
    pd.testing.assert_frame_equal(df.iloc[:3], first)  # earlier rows untouched
    assert df["run_id"].nunique() == 1
    assert len(read_meta(out)["notes"]["resumed"]) == 1


def test_resume_completes_a_partly_written_config(tmp_path):
    out = tmp_path / "run.csv"
    rec = cfg("indrnn_torch", "recurrence")
    bench.run_sweep([rec], out, preset="test", **FAST)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]))  # the bwd row was never written
    bench.run_sweep([rec], out, preset="test", resume=True, **FAST)
    df = read_results(out)
    assert sorted(df["phase"]) == ["bwd", "fwd"]


# ---------------------------------------------------------------------------- gate and error rows


def _indrnn_build(forward_of):
    """A provider whose forward is forward_of(model, x) and whose reference is the model."""

    def build(c: SweepConfig, device: torch.device) -> Built:
        built = PROVIDERS["indrnn_torch"].build(c, device)
        model = built.model
        return Built(model, lambda x: forward_of(model, x), built.output_size, reference=lambda x: model(x)[0])

    return build


def _register(monkeypatch, name: str, build, unavailable=lambda c, d: None) -> None:
    monkeypatch.setitem(PROVIDERS, name, Provider(name, "test provider", build, unavailable))


def _rows(tmp_path, configs) -> pd.DataFrame:
    out = tmp_path / "run.csv"
    bench.run_sweep(configs, out, preset="test", **FAST)
    return read_results(out)


def test_gate_rejects_wrong_output_and_wrong_gradient(tmp_path, monkeypatch):
    _register(monkeypatch, "wrong_output", _indrnn_build(lambda m, x: m(x)[0] * 1.05))

    def halved_grad(m, x):  # right values, half the gradient
        out = m(x)[0]
        return out * 0.5 + (out * 0.5).detach()

    _register(monkeypatch, "wrong_grad", _indrnn_build(halved_grad))
    configs = [cfg("wrong_output"), cfg("wrong_grad"), cfg("wrong_output", "infer")]
    df = _rows(tmp_path, configs + [cfg("wrong_grad", dtype="bfloat16")])
    assert list(df["status"]) == ["failed"] * 4
    assert df["p50_ms"].isna().all()  # never timed
    assert df["reason"][0].startswith("gate: output differs")
    assert df["reason"][1].startswith("gate: grad ")
    assert "differs from the torch backend" in df["reason"][2]
    assert "from the fp32 reference" in df["reason"][3]  # half precision: judged against fp32


def test_gate_rejects_non_finite_baseline(tmp_path, monkeypatch):
    def build(c, device):
        model = nn.LSTM(c.input_size, c.hidden)
        return Built(model, lambda x: model(x)[0] * float("nan"), c.hidden)

    _register(monkeypatch, "nan_lstm", build)
    df = _rows(tmp_path, [cfg("nan_lstm", "infer")])
    assert df["status"][0] == "failed" and df["reason"][0] == "gate: output is not finite"


def test_gate_accepts_the_reference_recurrence_and_rejects_a_wrong_one(monkeypatch):
    x, u, bias = torch.randn(6, 2, 5), torch.rand(5), torch.randn(5)
    check_recurrence("torch", x, u, bias, "float32")
    import suite.gate as gate

    real = gate.indrnn_recurrence

    def recurrence(x, u, bias, backend):  # a "wrong" backend with a 10% error in u; others as they are
        if backend == "wrong":
            return real(x, u * 0.9, bias=bias, backend="torch")
        return real(x, u, bias=bias, backend=backend)

    monkeypatch.setattr(gate, "indrnn_recurrence", recurrence)
    with pytest.raises(GateError, match="gate: h differs"):
        check_recurrence("wrong", x, u, bias, "float32")


def test_exception_and_oom_become_rows_and_the_sweep_goes_on(tmp_path, monkeypatch):
    def boom(c, device):
        raise RuntimeError("boom\nsecond line")

    def oom(c, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    _register(monkeypatch, "boom", boom)
    _register(monkeypatch, "oom", oom)
    df = _rows(tmp_path, [cfg("boom"), cfg("oom"), cfg("lstm")])
    assert list(df["status"]) == ["failed", "oom", "ok"]
    assert df["reason"][0] == "RuntimeError: boom"
    assert df["reason"][1].startswith("OutOfMemoryError: CUDA out of memory")


def test_unavailable_providers_are_skipped_rows_with_reason(tmp_path):
    df = _rows(tmp_path, [cfg("indrnn_residual", depth=2), cfg("indrnn_compile", seq_len=100_000)])
    assert list(df["status"]) == ["skipped", "skipped"]
    assert "odd depth" in df["reason"][0]
    assert df["reason"][1].startswith("compile prohibitive")
    missing = PROVIDERS["sru"].unavailable(cfg("sru"), torch.device("cpu"))
    import importlib.util

    assert (missing is None) == (importlib.util.find_spec("sru") is not None)


# ---------------------------------------------------------------------------- providers and steps


@pytest.mark.parametrize("name", ["indrnn_torch", "indrnn_residual", "indrnn_dense", "lstm", "gru", "transformer"])
def test_providers_share_the_config_and_run_a_train_step(name):
    c = cfg(name, hidden=16, input_size=3, depth=3 if name == "indrnn_residual" else 1)
    built = PROVIDERS[name].build(c, torch.device("cpu"))
    assert param_count(built.model) > 0
    x = bench._random_input(c, torch.device("cpu"), built.batch_first)
    out = built.forward(x)
    time_axis = 1 if built.batch_first else 0
    assert out.shape[time_axis] == c.seq_len and out.shape[-1] == built.output_size
    if name in ("indrnn_torch", "indrnn_residual", "lstm", "gru", "transformer"):
        assert built.output_size == c.hidden


def test_train_step_zeroes_gradients_between_iterations():
    built = PROVIDERS["lstm"].build(cfg("lstm"), torch.device("cpu"))
    step = bench.model_step(built, cfg("lstm"), torch.device("cpu"))
    step()
    first = [p.grad.clone() for p in built.model.parameters()]
    step()  # same input and weights: the same gradients, not twice them
    for g, p in zip(first, built.model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g)


def test_attention_heads_divide_hidden():
    for hidden in (8, 16, 48, 128, 200, 2048):
        assert hidden % attention_heads(hidden) == 0


# ---------------------------------------------------------------------------- presets


def test_every_preset_loads_valid_configs():
    assert set(presets.PRESETS) >= {"quick", "paper", "full", "ci"}
    for name in presets.PRESETS:
        configs = load_preset(name)
        assert configs and len(set(configs)) == len(configs)
        for c in configs:
            assert c.mode in PROVIDERS[c.provider].modes
        json.loads((presets.PRESET_DIR / f"{name}.json").read_text())  # presets are data


def test_paper_preset_pairs_two_layer_indrnn_with_one_layer_lstm():
    configs = load_preset("paper")
    assert {(c.hidden, c.input_size, c.dtype, c.mode) for c in configs} == {(128, 2, "float32", "train")}
    at_batch_32 = {(c.provider, c.depth, c.seq_len) for c in configs if c.batch == 32}
    for T in (256, 512, 1024):
        assert {("indrnn_triton", 1, T), ("indrnn_triton", 2, T), ("lstm", 1, T)} <= at_batch_32
    assert ("lstm", 2, 256) not in at_batch_32
    assert {c.batch for c in configs if c.provider == "lstm" and c.seq_len == 1024} >= {8, 32, 512}


def test_quick_preset_pairs_indrnn_with_every_baseline():
    configs = load_preset("quick")
    indrnn = {(c.mode, c.seq_len, c.depth, c.batch, c.hidden) for c in configs if c.provider == "indrnn_torch"}
    for c in configs:
        if c.provider in ("lstm", "gru", "transformer"):
            assert (c.mode, c.seq_len, c.depth, c.batch, c.hidden) in indrnn, c
    assert {c.provider for c in configs} >= {"indrnn_torch", "lstm", "gru", "transformer"}


def test_full_preset_reaches_the_required_extremes():
    configs = load_preset("full")
    assert max(c.seq_len for c in configs) == 16384 and max(c.depth for c in configs) == 21
    assert {c.batch for c in configs} >= {1, 512} and {c.dtype for c in configs} == {"float32", "bfloat16"}
    rec = {(c.seq_len, c.batch, c.hidden) for c in configs if c.mode == "recurrence"}
    assert rec == {(1024, 256, 2048), (1024, 32, 128)}


def test_overrides_replace_axes_and_recurrence_is_normalised():
    configs = load_preset("ci", {"seq_len": [4], "provider": ["lstm", "indrnn_torch"], "mode": ["infer", "recurrence"]})
    assert {c.seq_len for c in configs} == {4}
    assert {(c.provider, c.mode) for c in configs} == {
        ("lstm", "infer"),
        ("indrnn_torch", "infer"),
        ("indrnn_torch", "recurrence"),
    }
    configs = load_preset("quick", {"mode": ["recurrence"], "depth": [3]})
    assert {(c.depth, c.input_size == c.hidden) for c in configs} == {(1, True)}
    assert presets.default_preset("cuda") == "paper" and presets.default_preset("cpu") == "quick"


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("nope", None, "unknown preset"),
        ("ci", {"provider": ["lsmt"]}, "unknown provider 'lsmt'"),
        ("ci", {"batch": [0]}, "batch must be a positive integer"),
        ("ci", {"dtype": ["float64"]}, "unknown dtype"),
        ("ci", {"seq_len": []}, "non-empty"),
    ],
)
def test_bad_presets_and_overrides_raise(name, overrides, message):
    with pytest.raises(PresetError, match=message):
        load_preset(name, overrides)


# ---------------------------------------------------------------------------- timers


def test_time_cpu_quantiles_and_budget():
    t = time_cpu(lambda: sum(range(1000)), warmup=1, repeats=7)
    assert t.n_samples == 7 and t.p20_ms <= t.p50_ms <= t.p80_ms and t.method == "cpu_wallclock"
    t = time_cpu(lambda: time.sleep(0.02), warmup=0, repeats=50, max_s=0.01)
    assert t.n_samples == 3  # stops once the budget is spent, keeping three samples
    with pytest.raises(ValueError):
        time_cpu(lambda: None, warmup=0, repeats=0)


def test_copy_bandwidth_is_positive():
    assert copy_bandwidth_gbps("cpu", nbytes=4 * 2**20) > 0


# ---------------------------------------------------------------------------- the real kernel


@pytest.mark.parametrize(
    "architecture, mode, dtype, depth",
    [
        ("plain", "train", "float32", 3),
        ("residual", "train", "float32", 3),
        ("dense", "train", "float32", 3),
        ("residual", "infer", "float32", 3),
        ("plain", "train", "bfloat16", 1),
        ("plain", "infer", "bfloat16", 2),
    ],
)
def test_gate_passes_the_triton_backend(architecture, mode, dtype, depth, device):
    """The gate's tolerances accept the real kernels (the interpreter without CUDA) against
    the torch loop, so a failed row means a real difference. bf16 gradients are checked on one
    layer only: at these tiny shapes a ReLU flipped by rounding in a deeper bf16 net can
    dominate a gradient (a few percent of runs), which this test must not turn into flakes."""
    from suite.gate import check_model
    from suite.providers import _indrnn_builder

    c = cfg(mode=mode, dtype=dtype, seq_len=7, batch=3, hidden=12, input_size=5, depth=depth)
    built = _indrnn_builder(architecture, "triton")(c, torch.device(device))
    built.model.train(mode == "train")
    x = bench._random_input(c, torch.device(device), built.batch_first)
    check_model(built.forward, built.reference, built.model, x, dtype, mode == "train")


@pytest.mark.gpu
def test_ci_preset_on_gpu_times_every_provider(tmp_path):
    out = tmp_path / "ci.csv"
    bench.run_sweep(load_preset("ci"), out, preset="ci", progress=False)
    df = read_results(out)
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]["reason"].tolist()
    assert (df["timing"] == "do_bench").all() and (df["peak_mem_mb"] > 0).all()
    assert read_meta(out)["driver"]


@pytest.mark.gpu
def test_cuda_graph_timing_is_labelled(tmp_path):
    out = tmp_path / "graph.csv"
    configs = [cfg("lstm", "infer"), cfg("indrnn_triton"), cfg("indrnn_triton", "recurrence")]
    bench.run_sweep(configs, out, preset="t", timing="cuda_graph", progress=False)
    df = read_results(out)
    assert (df["timing"] == "cuda_graph").all() and read_meta(out)["timing"] == "cuda_graph"
    bwd = (df["mode"] == "recurrence") & (df["phase"] == "bwd")
    assert (df[bwd]["status"] == "skipped").all()
    assert (df[~bwd]["status"] == "ok").all(), df[~bwd][["provider", "mode", "reason"]].values.tolist()


def test_configs_differing_only_in_input_size_are_two_rows(tmp_path):
    configs = [SweepConfig("lstm", "infer", 8, 1, 2, 8, "float32", i) for i in (2, 8)]
    out = bench.run_sweep(configs, tmp_path / "inputs.csv", preset="test", progress=False, repeats=2, warmup=0)
    df = read_results(out)
    assert sorted(df["input_size"]) == [2, 8] and (df["status"] == "ok").all()


def test_resume_refuses_a_file_from_another_device(tmp_path):
    out = bench.run_sweep([cfg("lstm", "infer")], tmp_path / "r.csv", preset="t", progress=False, repeats=2, warmup=0)
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    (tmp_path / "r.meta.json").write_text(json.dumps({**meta, "device": "Another CPU"}))
    with pytest.raises(UsageError, match="measured on Another CPU"):
        bench.run_sweep([cfg("gru", "infer")], out, preset="t", resume=True, progress=False, repeats=2, warmup=0)
    assert len(read_results(out)) == 1
