"""The correctness gate: wrong outputs and gradients fail before anything is timed; the real
kernels pass it."""

from __future__ import annotations

import pytest
import torch
from harness_helpers import cfg, indrnn_build, register, sweep_rows
from torch import nn

from suite.render import analysis
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

    def recurrence(x, u, bias, backend, schedule):  # a "wrong" backend with a 10% error in u; others as they are
        if backend == "wrong":
            return real(x, u * 0.9, bias=bias, backend="torch")
        return real(x, u, bias=bias, backend=backend, schedule=schedule)

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


# ---------------------------------------------------------------------------- both schedules


def test_both_schedules_of_the_torch_backend_pass_the_gate_against_the_loop(tmp_path):
    configs = [
        cfg(p, m, seq_len=40) for p in ("indrnn_torch_seq", "indrnn_torch_scan") for m in ("recurrence", "train")
    ]
    df = sweep_rows(tmp_path, configs)
    assert (df["status"] == "ok").all(), df["reason"].tolist()
    errors = {r.provider: analysis.notes_of(r.extra).get("gate_max_rel_err") for r in df.itertuples()}
    assert errors["indrnn_torch_seq"] is None  # the loop is the reference itself
    assert 0 <= float(errors["indrnn_torch_scan"]) < 1e-5  # compared with it, equal up to fp32 rounding


def test_a_wrong_scan_fails_the_gate_under_auto_too(tmp_path, monkeypatch):
    """The torch backend was once its own reference; its scan must not be: a chunked form that is
    off fails, whether pinned or chosen by auto, while the loop still passes."""
    import kernels.recurrence

    real = kernels.recurrence.recurrence_chunked

    def off(x, u, h0=None, bias=None, **kwargs):
        h, h_last = real(x, u, h0, bias, **kwargs)
        return h * 1.01, h_last

    monkeypatch.setattr(kernels.recurrence, "recurrence_chunked", off)
    configs = [cfg(p, m, seq_len=300) for p in ("indrnn_torch", "indrnn_torch_scan") for m in ("recurrence", "train")]
    df = sweep_rows(tmp_path, configs + [cfg("indrnn_torch_seq", "train", seq_len=300)])
    scans = df[df["provider"] != "indrnn_torch_seq"]
    assert (scans["status"] == "failed").all() and scans["reason"].str.startswith("gate: ").all()
    assert (df.loc[df["provider"] == "indrnn_torch_seq", "status"] == "ok").all()


@pytest.mark.triton
@pytest.mark.parametrize("schedule", ["sequential", "scan"])
@pytest.mark.parametrize("mode", ["train", "recurrence"])
def test_both_schedules_of_the_triton_backend_pass_the_gate(schedule, mode, device):
    """The kernels on either schedule against the loop (the interpreter without CUDA): at T=37 the
    scan runs several chunks and a tail."""
    from suite.sweep.gate import check_model
    from suite.sweep.providers import _indrnn_builder

    dev = torch.device(device)
    if mode == "recurrence":
        x, u, bias = measure.recurrence_inputs(cfg(mode=mode, seq_len=37, batch=3, hidden=12), dev)
        assert check_recurrence("triton", x, u, bias, "float32", schedule).max_rel_err < 1e-5
        return
    c = cfg(mode=mode, seq_len=37, batch=3, hidden=12, input_size=5, depth=2)
    built = _indrnn_builder("plain", "triton", schedule)(c, dev)
    assert built.schedule == schedule
    x = measure.random_input(c, dev, built.batch_first)
    assert check_model(built.forward, built.reference, built.model, x, "float32", True).max_rel_err < 1e-5


def test_a_relu_flip_within_rounding_leaves_its_column_out_of_the_gradients(monkeypatch):
    """A state within rounding of 0 may land on either side of the ReLU: the gradients of that
    column (and its neuron's du, dbias) are left out and counted; any other difference still fails."""
    import suite.sweep.gate as gate

    T, B, H = 6, 2, 8
    x, u, bias = torch.ones(T, B, H), torch.full((H,), 0.5), torch.zeros(H)
    x[3, :, :2] = -0.875 - 1e-6  # 4 columns whose states 1, 1.5, 1.75 lead to a pre-activation of -1e-6
    real = gate.indrnn_recurrence

    def recurrence(x, u, bias, backend, schedule):
        if backend == "torch":
            return real(x, u, bias=bias, backend="torch", schedule=schedule)
        nudge = torch.zeros_like(x)  # across the kink: h = 1e-6 instead of 0
        nudge[3, :, :2] = 2e-6 if backend == "many" else 0.0
        nudge[3, 0, 0] = 2e-6
        h, h_last = real(x + nudge, u, bias=bias, backend="torch", schedule="sequential")
        return (h * 1.01, h_last) if backend == "wrong" else (h, h_last)

    monkeypatch.setattr(gate, "indrnn_recurrence", recurrence)
    passed = check_recurrence("flip", x, u, bias, "float32")
    assert passed.relu_flips == 1 and passed.max_rel_err < 1e-5
    assert passed.notes() == f"gate_max_rel_err={passed.max_rel_err:.2e};gate_relu_flips=1"
    with pytest.raises(GateError, match="gate: h differs"):
        check_recurrence("wrong", x, u, bias, "float32")
    with pytest.raises(GateError, match="other side of the ReLU in 4 of 16 columns"):
        check_recurrence("many", x, u, bias, "float32")
    monkeypatch.setattr(gate, "FLIP_SHARE", 0.0)  # without leaving it out, the flipped column fails
    with pytest.raises(GateError, match="other side of the ReLU in 1 of 16 columns"):
        check_recurrence("flip", x, u, bias, "float32")


def test_the_bare_recurrence_is_gated_by_the_torch_loop_not_the_quadratic_plain_loop(monkeypatch):
    """The plain loop's autograd backward scatters each x[t]'s gradient into a zero tensor of x's
    size: O(T^2), minutes at 2^16 steps. The gate's reference is the torch loop, on every backend."""
    import suite.sweep.gate as gate

    real, calls = gate.indrnn_recurrence, []

    def recorded(x, u, bias, backend, schedule):
        calls.append((backend, schedule))
        return real(x, u, bias=bias, backend=backend, schedule=schedule)

    monkeypatch.setattr(gate, "indrnn_recurrence", recorded)
    x, u, bias = torch.randn(300, 2, 4), torch.rand(4), torch.randn(4)
    for dtype in ("float32", "bfloat16"):
        check_recurrence("torch", x.to(getattr(torch, dtype)), u, bias, dtype, "scan")
    scan, loop = ("torch", "scan"), ("torch", "sequential")
    assert calls == [scan, loop, scan, loop, loop]  # fp32: the loop; bf16: the loop in bf16 and in fp32


# ---------------------------------------------------------------------------- a wrong kernel still fails


def _scan_with_one_wrong_step(monkeypatch, factor: float = 0.9) -> None:
    """The torch backend's chunked scan with u scaled by `factor` at the middle step of every walk:
    a carry that is off where two pieces of the walk meet."""
    from kernels import scan

    real = scan._relu_scan

    def one_wrong_step(a, u, state):
        t0 = a.shape[0] // 2
        head = real(a[:t0], u, state)
        return torch.cat([head, real(a[t0:], u, factor * head[-1])])

    monkeypatch.setattr(scan, "_relu_scan", one_wrong_step)


def test_a_scan_with_one_wrong_step_fails_the_gate_in_every_mode(tmp_path, monkeypatch):
    _scan_with_one_wrong_step(monkeypatch)
    modes = ("recurrence", "train", "infer", "packed")
    df = sweep_rows(tmp_path, [cfg(p, m, seq_len=64) for p in ("indrnn_torch_scan", "indrnn_torch_seq") for m in modes])
    scan, loop = df[df["provider"] == "indrnn_torch_scan"], df[df["provider"] == "indrnn_torch_seq"]
    assert (scan["status"] == "failed").all() and scan["reason"].str.startswith("gate: ").all(), scan["reason"]
    assert (loop["status"] == "ok").all()


def test_lengths_off_by_one_fail_the_packed_gate(tmp_path, monkeypatch):
    """Each row's last step left out of the scan: its output there is 0 instead of the state."""
    import kernels.recurrence

    real = kernels.recurrence.recurrence_chunked

    def one_short(x, u, h0=None, bias=None, *, lengths=None, reverse=False):
        short = None if lengths is None else (lengths - 1).clamp(min=1)
        return real(x, u, h0, bias, lengths=short, reverse=reverse)

    monkeypatch.setattr(kernels.recurrence, "recurrence_chunked", one_short)
    df = sweep_rows(tmp_path, [cfg("indrnn_torch_scan", m, seq_len=64, batch=4) for m in ("packed", "train")])
    assert list(df["status"]) == ["failed", "ok"]  # without lengths the scan is right
    assert df["reason"][0].startswith("gate: output differs")


def _flip_and(wrong_backward):
    """A stand-in backend for check_recurrence on `_flip_input`: column (0, 0) flips at step 3, and
    `wrong_backward(x, u)` may give x and u wrong gradients without changing their values."""

    def recurrence(x, u, bias, backend, schedule):
        from kernels import indrnn_recurrence

        if backend == "torch":
            return indrnn_recurrence(x, u, bias=bias, backend="torch", schedule=schedule)
        nudge = torch.zeros_like(x)
        nudge[3, 0, 0] = 2e-6
        x, u = wrong_backward(x, u)
        return indrnn_recurrence(x + nudge, u, bias=bias, backend="torch", schedule="sequential")

    return recurrence


def _flip_input():
    T, B, H = 6, 2, 8
    x, u, bias = torch.ones(T, B, H), torch.full((H,), 0.5), torch.zeros(H)
    x[3, :, :2] = -0.875 - 1e-6  # as in the flip test: pre-activations of -1e-6 at step 3
    return x, u, bias


def _gradient_off(t: torch.Tensor, index) -> torch.Tensor:
    """t's values with its gradient 1.1x at `index`."""
    scale = torch.zeros_like(t)
    scale[index] = 0.1
    return t + (scale * t - (scale * t).detach())


@pytest.mark.parametrize(
    ("leaf", "index"),
    [("x", (2, 1, 5)), ("x", (1, 1, 0)), ("u", 3)],  # the second: the flipped neuron in the other row
)
def test_a_wrong_gradient_outside_the_flipped_column_fails_the_gate(monkeypatch, leaf, index):
    """Leaving a flipped column out must not hide a backward that is wrong elsewhere: dx 10% off at
    one step of another column fails, and so does du of a neuron none of whose columns flipped."""
    import suite.sweep.gate as gate

    def wrong(x, u):
        return (_gradient_off(x, index), u) if leaf == "x" else (x, _gradient_off(u, index))

    monkeypatch.setattr(gate, "indrnn_recurrence", _flip_and(wrong))
    x, u, bias = _flip_input()
    with pytest.raises(GateError, match=f"gate: grad {leaf} differs"):
        check_recurrence("wrong", x, u, bias, "float32")
    monkeypatch.setattr(gate, "indrnn_recurrence", _flip_and(lambda x, u: (x, u)))
    assert check_recurrence("flip", x, u, bias, "float32").relu_flips == 1  # the flip alone passes


def test_the_columns_left_out_reach_the_row(tmp_path, monkeypatch):
    from suite.sweep.gate import Passed

    monkeypatch.setattr(measure, "check_recurrence", lambda *args: Passed(3e-7, 2))
    df = sweep_rows(tmp_path, [cfg("indrnn_torch_scan", "recurrence", seq_len=16)])
    notes = [analysis.notes_of(e) for e in df["extra"]]
    assert [(n["gate_relu_flips"], n["gate_max_rel_err"]) for n in notes] == [("2", "3.00e-07")] * 2  # fwd, bwd
