"""The correctness gate: wrong outputs and gradients fail before anything is timed; the real
kernels pass it."""

from __future__ import annotations

import pytest
import torch
from harness_helpers import cfg, indrnn_build, register, sweep_rows
from torch import nn

from suite.sweep import measure
from suite.sweep.gate import GateError, check_recurrence
from suite.sweep.providers import Built


def test_gate_rejects_wrong_output_and_wrong_gradient(tmp_path, monkeypatch):
    register(monkeypatch, "wrong_output", indrnn_build(lambda m, x: m(x)[0] * 1.05))

    def halved_grad(m, x):  # right values, half the gradient
        out = m(x)[0]
        return out * 0.5 + (out * 0.5).detach()

    register(monkeypatch, "wrong_grad", indrnn_build(halved_grad))
    configs = [cfg("wrong_output"), cfg("wrong_grad"), cfg("wrong_output", "infer")]
    df = sweep_rows(tmp_path, configs + [cfg("wrong_grad", dtype="bfloat16")])
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

    register(monkeypatch, "nan_lstm", build)
    df = sweep_rows(tmp_path, [cfg("nan_lstm", "infer")])
    assert df["status"][0] == "failed" and df["reason"][0] == "gate: output is not finite"


def test_gate_accepts_the_reference_recurrence_and_rejects_a_wrong_one(monkeypatch):
    x, u, bias = torch.randn(6, 2, 5), torch.rand(5), torch.randn(5)
    check_recurrence("torch", x, u, bias, "float32")
    import suite.sweep.gate as gate

    real = gate.indrnn_recurrence

    def recurrence(x, u, bias, backend):  # a "wrong" backend with a 10% error in u; others as they are
        if backend == "wrong":
            return real(x, u * 0.9, bias=bias, backend="torch")
        return real(x, u, bias=bias, backend=backend)

    monkeypatch.setattr(gate, "indrnn_recurrence", recurrence)
    with pytest.raises(GateError, match="gate: h differs"):
        check_recurrence("wrong", x, u, bias, "float32")


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
@pytest.mark.triton
def test_gate_passes_the_triton_backend(architecture, mode, dtype, depth, device):
    """The gate's tolerances accept the real kernels (the interpreter without CUDA) against
    the torch loop, so a failed row means a real difference. bf16 gradients are checked on one
    layer only: at these tiny shapes a ReLU flipped by rounding in a deeper bf16 net can
    dominate a gradient (a few percent of runs), which this test must not turn into flakes."""
    from suite.sweep.gate import check_model
    from suite.sweep.providers import _indrnn_builder

    c = cfg(mode=mode, dtype=dtype, seq_len=7, batch=3, hidden=12, input_size=5, depth=depth)
    built = _indrnn_builder(architecture, "triton")(c, torch.device(device))
    built.model.train(mode == "train")
    x = measure.random_input(c, torch.device(device), built.batch_first)
    check_model(built.forward, built.reference, built.model, x, dtype, mode == "train")
