"""`profile`: categories from call chains, the files it writes, the breakdown of real steps on
CPU (GPU: the Triton recurrence kernels), and bad flags as one-line errors."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pytest
import torch
from harness_helpers import cfg

from suite.commands.cli import main
from suite.sweep import profiling
from suite.sweep.profiling import CATEGORIES, categorise, is_fig2_config, profile_config

TINY = ["--seq-len", "8", "--batch", "2", "--hidden", "8", "--depth", "2", "--steps", "2", "--warmup", "1"]


@pytest.mark.parametrize(
    ("chain", "phase", "expected"),
    [
        (["aten::linear", "aten::matmul", "aten::mm"], "forward", "input projection GEMM"),
        (["aten::lstm", "aten::linear", "aten::addmm"], "forward", "recurrence forward"),  # the LSTM's own GEMMs
        (["_RecurrenceFunction", "recurrence_fwd_kernel"], "forward", "recurrence forward"),
        (["autograd::engine::evaluate_function: _LoopFunctionBackward", "aten::mul"], None, "recurrence backward"),
        (["recurrence_bwd_kernel"], None, "recurrence backward"),
        (["autograd::engine::evaluate_function: AddmmBackward0", "aten::mm"], "backward", "input projection GEMM"),
        (["aten::batch_norm", "aten::native_batch_norm"], "forward", "normalisation"),
        (["aten::linear", "aten::addmm"], "loss", "loss"),  # the head belongs to the loss
        (
            ["autograd::engine::evaluate_function: torch::autograd::AccumulateGrad"],
            "backward",
            "optimiser or autograd glue",
        ),
        (["aten::select"], "backward", "optimiser or autograd glue"),
        (["aten::select"], "forward", "other"),
        (["aten::empty"], None, "other"),
    ],
)
def test_categorise(chain, phase, expected):
    assert categorise(chain, phase) == expected


def test_union_of_device_intervals():
    assert profiling._union_us([(0, 10), (5, 12), (20, 25), (21, 22)]) == 17
    assert profiling._union_us([]) == 0


@pytest.mark.parametrize(("provider", "depth"), [("indrnn_torch", 2), ("lstm", 1)])
def test_breakdown_of_a_training_step_on_cpu(provider, depth):
    c = cfg(provider, "train", depth=depth, input_size=2)
    result = profile_config(c, torch.device("cpu"), steps=2, warmup=1)
    cats = {r["category"]: r for r in result.by_category()}
    assert list(cats) == list(CATEGORIES)
    assert sum(r["share"] for r in cats.values()) == pytest.approx(1.0)
    # Every part of the step shows up where it belongs.
    assert cats["recurrence forward"]["ms"] > 0 and cats["recurrence backward"]["ms"] > 0
    assert cats["loss"]["ms"] > 0
    if provider == "indrnn_torch":
        assert cats["input projection GEMM"]["ms"] > 0
    assert 0 < result.busy_ms <= result.wall_ms
    top = result.top(5)
    assert len(top) == 5 and top[0]["ms"] >= top[-1]["ms"]


def test_recurrence_mode_has_forward_and_backward():
    result = profile_config(cfg("indrnn_torch", "recurrence"), torch.device("cpu"), steps=1, warmup=0)
    cats = {r["category"]: r["ms"] for r in result.by_category()}
    assert cats["recurrence forward"] > 0 and cats["recurrence backward"] > 0


def test_command_writes_trace_breakdown_and_metadata(tmp_path, capsys):
    assert main(["profile", "--provider", "indrnn_torch", *TINY, "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ncu --nvtx --nvtx-include profiled_steps" in out and "recurrence_(fwd|bwd)_kernel" in out
    assert "--nvtx-only" in out
    (trace,) = tmp_path.glob("profile-indrnn_torch-train-T8-L2-B2-H8-I2-float32-*Z.json")
    assert json.loads(trace.read_text())["traceEvents"]
    md = trace.with_suffix(".md").read_text()
    assert "## Where the time goes" in md and "## Launch overhead" in md and "## Top ops by time" in md
    assert all(c in md for c in CATEGORIES)
    meta = json.loads(trace.with_name(trace.stem + ".meta.json").read_text())
    assert meta["preset"] == "profile" and meta["configs"][0]["seq_len"] == 8
    assert {"start", "end"} <= set(meta["machine"])


def test_nvtx_only_runs_without_writing(tmp_path, capsys):
    assert main(["profile", "--provider", "indrnn_torch", *TINY, "--out-dir", str(tmp_path), "--nvtx-only"]) == 0
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--provider", "nope"], "unknown provider"),
        (["--seq-len", "0"], "--seq-len"),
        (["--provider", "lstm", "--mode", "recurrence"], "no recurrence mode"),
        (["--mode", "recurrence", "--depth", "2"], "--depth 1"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["profile", "--out-dir", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_fig2_configs():
    fig2 = dict(seq_len=512, batch=32, hidden=128, input_size=2)
    assert is_fig2_config(cfg("indrnn_triton", "train", depth=2, **fig2))
    assert is_fig2_config(cfg("lstm", "train", depth=1, **fig2))
    assert not is_fig2_config(cfg("lstm", "train", depth=2, **fig2))
    assert not is_fig2_config(cfg("gru", "train", depth=1, **fig2))
    assert not is_fig2_config(cfg("indrnn_torch", "train", depth=1, **{**fig2, "seq_len": 100}))
    assert not is_fig2_config(cfg("indrnn_torch", "infer", depth=1, **fig2))


@pytest.mark.gpu
def test_triton_step_on_gpu_counts_recurrence_kernels():
    c = cfg("indrnn_triton", "train", seq_len=256, batch=32, hidden=128, input_size=2)
    result = profile_config(c, torch.device("cuda"), steps=3, warmup=2)
    cats = {r["category"]: r for r in result.by_category()}
    assert result.unit == "kernels"
    assert cats["recurrence forward"]["launches"] >= 1 and cats["recurrence backward"]["launches"] >= 1
    assert cats["input projection GEMM"]["launches"] >= 1
    assert 0 < result.busy_ms <= result.wall_ms
    kernels = {p.name: p.category for p in result.pieces}
    assert kernels["recurrence_fwd_kernel"] == "recurrence forward"
    assert kernels["recurrence_bwd_kernel"] == "recurrence backward"


@pytest.mark.parametrize(("provider", "scans"), [("indrnn_torch_scan", True), ("indrnn_torch_seq", False)])
def test_a_pinned_provider_is_profiled_on_its_schedule(monkeypatch, provider, scans):
    """At T=8 auto would walk: the pinned scan must still profile the chunked form."""
    import kernels.recurrence

    calls, real = [], kernels.recurrence.recurrence_chunked
    monkeypatch.setattr(kernels.recurrence, "recurrence_chunked", lambda *a, **k: calls.append(1) or real(*a, **k))
    step = profiling.build_step(cfg(provider, "recurrence", seq_len=8), torch.device("cpu"), lambda name: nullcontext())
    step()
    assert bool(calls) == scans
