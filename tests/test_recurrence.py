"""The recurrence kernels against a float64 reference, on odd shapes that exercise every mask.

Without CUDA the Triton kernels run through the interpreter (see conftest.py); with CUDA the
same tests run the compiled kernels. Inputs are fresh random numbers on every run.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch
import triton
from harness_helpers import TRITON

from kernels import indrnn_recurrence, recurrence_reference
from kernels.common import interpreter_unusable_reason
from kernels.sequential import PAPER_SIZE_CONFIGS, recurrence_bwd_kernel, recurrence_fwd_kernel

ROOT = Path(__file__).resolve().parents[1]

# Relative error ||got - want|| / ||want|| allowed per dtype: fp32 is exact up to summation
# order; fp16/bf16 store every state rounded (10 and 7 mantissa bits).
TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}
DTYPES = list(TOLERANCE)


def rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want).norm() / want.norm().clamp_min(1e-30)).item()


def make_inputs(T, B, H, dtype, device, with_h0=True, with_bias=True, u_max=1.0):
    x = torch.randn(T, B, H, device=device).to(dtype)
    u = torch.empty(H, device=device).uniform_(-u_max, u_max)
    if H > 1:
        u[0] = 1.05  # one neuron with |u| > 1 (the constraint is the layer's job, not the kernel's)
        u[1] = -1.05
    h0 = torch.randn(B, H, device=device) if with_h0 else None
    bias = torch.randn(H, device=device) * 0.1 if with_bias else None
    return x, u, h0, bias


def run_against_reference(x, u, h0, bias, activation, backend):
    """Forward + backward with `backend` and with the float64 autograd reference; the loss
    weights every state and h_last separately, so the gradient into h_last is checked too."""
    w_h = torch.randn(x.shape, dtype=torch.float64, device=x.device)
    # Same sign as w_h[-1]: with half-precision h, autograd sums the two upstream gradients of
    # the last step in that precision, and a near-cancelling pair would make the relative error
    # of a correct backward arbitrarily large.
    w_last = torch.randn(x.shape[1:], dtype=torch.float64, device=x.device).abs() * w_h[-1].sign()
    results = []
    for cast, fn in (
        (lambda t: t.detach().clone(), lambda *a: indrnn_recurrence(*a, activation=activation, backend=backend)),
        (lambda t: t.detach().double(), lambda *a: recurrence_reference(*a, activation=activation)),
    ):
        leaves = [None if t is None else cast(t).requires_grad_() for t in (x, u, h0, bias)]
        h, h_last = fn(*leaves)
        ((h.double() * w_h).sum() + (h_last.double() * w_last).sum()).backward()
        results.append((h, h_last, [None if t is None else t.grad for t in leaves]))
    return results


CASES = [
    # T, B, H, activation, with_h0, with_bias
    (1, 1, 1, "relu", False, False),
    # 12 programs of 63 steps, and 257 steps: long runs through the interpreter
    pytest.param(63, 3, 500, "relu", True, True, marks=pytest.mark.slow),
    pytest.param(257, 1, 7, "tanh", True, False, marks=pytest.mark.slow),
    (63, 3, 1, "tanh", False, True),
    (4, 3, 37, "relu", True, True),  # T equal to the time chunk: no tail
]


@pytest.mark.parametrize("T,B,H,activation,with_h0,with_bias", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_forward_and_gradients_match_float64_reference(T, B, H, activation, with_h0, with_bias, dtype, backend, device):
    x, u, h0, bias = make_inputs(T, B, H, dtype, device, with_h0, with_bias)
    (h, h_last, grads), (h_ref, h_last_ref, grads_ref) = run_against_reference(x, u, h0, bias, activation, backend)
    assert h.dtype == dtype and h.shape == (T, B, H) and h_last.shape == (B, H)
    tol = TOLERANCE[dtype]
    assert rel_error(h, h_ref) < tol
    assert rel_error(h_last, h_last_ref) < tol
    # du and dbias are sums over T*B terms that may nearly cancel; their error is measured
    # against the sum of the terms' magnitudes (dx is da, the per-step gradient).
    da = grads_ref[0].abs()
    h_prev = torch.cat([(torch.zeros_like(h_ref[0]) if h0 is None else h0.double())[None], h_ref[:-1].double()])
    scale = {"u": (da * h_prev.abs()).sum((0, 1)), "bias": da.sum((0, 1))}
    for name, g, g_ref in zip(("x", "u", "h0", "bias"), grads, grads_ref, strict=True):
        if g_ref is None:
            assert g is None
            continue
        assert g.dtype == {"x": dtype}.get(name, torch.float32)
        if name in scale:
            err = ((g.double() - g_ref).abs() / scale[name].clamp_min(1e-30)).max().item()
            assert err < tol, (name, err)
        else:
            assert rel_error(g, g_ref) < tol, name


@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_noncontiguous_input(backend, device):
    base = torch.randn(40, 2, 6, 9, device=device)
    x = base[::2, :, 1, :]  # strided in time and across the plane
    u = torch.rand(9, device=device)
    h, h_last = indrnn_recurrence(x, u, backend=backend)
    h_ref, _ = recurrence_reference(x.contiguous(), u)
    assert rel_error(h, h_ref.double()) < 1e-6
    batch_first = torch.randn(3, 20, 9, device=device)  # (B, T, H) viewed as (T, B, H)
    h, _ = indrnn_recurrence(batch_first.transpose(0, 1), u, backend=backend)
    h_ref, _ = recurrence_reference(batch_first.transpose(0, 1).contiguous(), u)
    assert rel_error(h, h_ref.double()) < 1e-6


@pytest.mark.parametrize("backend", [TRITON, "torch", "reference"])
def test_only_h_last_used(backend, device):
    """Gradient that enters through h_last alone reaches every input."""
    x, u, h0, bias = make_inputs(9, 2, 5, torch.float32, device)
    grads = []
    for fn in (lambda *a: indrnn_recurrence(*a, backend=backend), recurrence_reference):
        leaves = [t.clone().requires_grad_() for t in (x, u, h0, bias)]
        _, h_last = fn(*leaves)
        h_last.sum().backward()
        grads.append([t.grad for t in leaves])
    for g, g_ref in zip(*grads, strict=True):
        assert rel_error(g, g_ref.double()) < 1e-5


@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_gradients_are_bitwise_deterministic(backend, device):
    x, u, h0, bias = make_inputs(33, 3, 130, torch.float32, device)
    dh = torch.randn_like(x)
    runs = []
    for _ in range(2):
        leaves = [t.clone().requires_grad_() for t in (x, u, h0, bias)]
        h, _ = indrnn_recurrence(*leaves, backend=backend)
        h.backward(dh)
        runs.append([t.grad for t in leaves])
    for g1, g2 in zip(*runs, strict=True):
        assert torch.equal(g1, g2)


@pytest.mark.parametrize("backend", [TRITON, "torch"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_nan_propagates_like_torch(backend, activation, device):
    x = torch.randn(6, 2, 3, device=device)
    x[2, 1, 0] = float("nan")
    u = torch.rand(3, device=device)
    h, _ = indrnn_recurrence(x, u, activation=activation, backend=backend)
    want, _ = recurrence_reference(x, u, activation=activation)
    assert torch.equal(torch.isnan(h), torch.isnan(want))
    assert torch.isnan(h[2:, 1, 0]).all() and not torch.isnan(h[:, 0]).any()


def test_empty_sequence_returns_h0(device):
    x = torch.randn(0, 2, 3, device=device)
    u = torch.rand(3, device=device)
    h0 = torch.randn(2, 3, device=device)
    for backend in ("triton", "torch"):
        h, h_last = indrnn_recurrence(x, u, h0, backend=backend)
        assert h.shape == (0, 2, 3)
        assert torch.equal(h_last, h0)
        _, h_last = indrnn_recurrence(x, u, backend=backend)
        assert torch.equal(h_last, torch.zeros(2, 3, device=device))


@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_mixed_parameter_dtypes(backend, device):
    """bf16 activations with fp32 parameters: gradients come back in each parameter's dtype."""
    x, u, h0, bias = make_inputs(10, 2, 16, torch.bfloat16, device)
    leaves = [x.requires_grad_(), u.requires_grad_(), h0.double().requires_grad_(), bias.requires_grad_()]
    h, _ = indrnn_recurrence(*leaves, backend=backend)
    h.float().sum().backward()
    assert [t.grad.dtype for t in leaves] == [torch.bfloat16, torch.float32, torch.float64, torch.float32]


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        (dict(x=torch.randn(4, 3)), ValueError, "x must have shape (T, B, H)"),
        (dict(u=torch.rand(5)), ValueError, "u must have shape (4,)"),
        (dict(h0=torch.rand(3, 3)), ValueError, "h0 must have shape (2, 4)"),
        (dict(bias=torch.rand(2)), ValueError, "bias must have shape (4,)"),
        (dict(x=torch.ones(3, 2, 4, dtype=torch.int32)), TypeError, "x must be a floating-point"),
        (dict(u=torch.ones(4, dtype=torch.int64)), TypeError, "u must be a floating-point"),
        (dict(x=[[1.0]]), TypeError, "x must be a torch.Tensor"),
        (dict(activation="gelu"), ValueError, "activation must be one of"),
        (dict(backend="cuda"), ValueError, "backend must be one of"),
        (dict(u=torch.rand(4, device="meta")), ValueError, "u is on meta"),
    ],
)
def test_bad_input_is_named(kwargs, error, words):
    args = dict(x=torch.randn(3, 2, 4), u=torch.rand(4), h0=None, bias=None)
    args.update(kwargs)
    with pytest.raises(error) as info:
        indrnn_recurrence(**args)
    assert words in str(info.value)


def test_triton_backend_explains_why_it_cannot_run(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="need a CUDA tensor"):
        indrnn_recurrence(torch.randn(3, 2, 4), torch.rand(4), backend="triton")
    h, _ = indrnn_recurrence(torch.randn(3, 2, 4), torch.rand(4), backend="auto")  # falls back to torch
    assert h.shape == (3, 2, 4)


@pytest.mark.slow
@pytest.mark.parametrize("flag,tuned", [("0", False), ("1", True)])
def test_one_flag_decides_autotuning_for_both_kernels(flag, tuned):
    """INDRNN_AUTOTUNE=0 gives the forward and the backward one config each (no tuning); unset
    or 1, both search their spaces. Checked in a fresh process with the interpreter off."""
    code = "from kernels.sequential import recurrence_fwd_kernel as f, recurrence_bwd_kernel as b\n"
    code += "print(len(f.configs), len(b.configs))"
    env = {**os.environ, "TRITON_INTERPRET": "0", "INDRNN_AUTOTUNE": flag}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    counts = [int(n) for n in done.stdout.split()]
    assert all(n > 1 for n in counts) if tuned else counts == [1, 1]


def test_old_triton_interpreter_with_new_numpy_is_named_and_falls_back(monkeypatch):
    assert "numpy < 2.4" in interpreter_unusable_reason("3.6.0", "2.4.1")
    assert interpreter_unusable_reason("3.6.0", "2.3.5") is None
    assert interpreter_unusable_reason("3.7.0", "2.4.1") is None
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton, "__version__", "3.6.0")
    monkeypatch.setattr(numpy, "__version__", "2.4.0")
    x, u = torch.randn(5, 2, 3), torch.rand(3)
    with pytest.raises(RuntimeError, match="triton 3.6.0's interpreter cannot run with numpy 2.4.0"):
        indrnn_recurrence(x, u, backend="triton")
    h, _ = indrnn_recurrence(x, u, backend="auto")  # the torch backend instead
    assert rel_error(h, recurrence_reference(x, u)[0].double()) < 1e-6


def run_kernels(x, u, h0, bias, config, lengths=None, reverse=False, act=0):
    """Both kernels launched directly with `config` (the interpreter's autotuner has one config):
    h, dx and the (du, dbias, dh0) columns for a random dh, with that dh."""
    T, B, H = x.shape
    grid = (triton.cdiv(B * H, config["BLOCK"]),)
    flags = dict(HAS_H0=True, HAS_LENGTHS=lengths is not None, REVERSE=reverse, ACT=act)
    h = torch.empty_like(x)
    recurrence_fwd_kernel.fn[grid](
        x, u, bias, h0, h, lengths, T, B * H, H, B * H, H, B * H, H, T, HAS_BIAS=True, **flags, **config
    )
    dh = torch.randn_like(x)
    dx, cols = torch.empty_like(x), torch.empty(3, B, H, device=x.device)
    recurrence_bwd_kernel.fn[grid](
        h, dh, u, h0, dx, cols[0], cols[1], cols[2], lengths, T, B * H, H, B * H, H, B * H, H, T, **flags, **config
    )  # fmt: skip
    return h, dx, cols, dh


def assert_kernels_match_reference(x, u, h0, bias, config, lengths=None, reverse=False, act=0):
    h, dx, cols, dh = run_kernels(x, u, h0, bias, config, lengths, reverse, act)
    leaves = [t.double().requires_grad_() for t in (x, u, h0, bias)]
    activation = ("relu", "tanh")[act]
    h_ref, _ = recurrence_reference(*leaves, activation=activation, lengths=lengths, reverse=reverse)
    h_ref.backward(dh.double())
    assert rel_error(h, h_ref) < 1e-5
    assert rel_error(dx, leaves[0].grad) < 1e-5 and rel_error(cols[2], leaves[2].grad) < 1e-5
    assert rel_error(cols[1].sum(0), leaves[3].grad) < 1e-5
    assert rel_error(cols[0].sum(0), leaves[1].grad) < 1e-5  # the h0 term is added in the kernel


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.parametrize(
    "config", [PAPER_SIZE_CONFIGS["fwd"], PAPER_SIZE_CONFIGS["bwd"], dict(BLOCK=64, CHUNK=5, num_warps=2)]
)
def test_long_chunks_match_reference(config, device):
    """The configs the autotuner may pick on a GPU, run directly: long chunks, T=63 not a multiple
    of CHUNK."""
    x, u, h0, bias = make_inputs(63, 3, 50, torch.float32, device)
    assert_kernels_match_reference(x, u, h0, bias, config)


@pytest.mark.triton
@pytest.mark.parametrize("T", [1, 3, 4, 5, 8, 9, 12, 13, 17])
@pytest.mark.parametrize("reverse,with_lengths,act", [(False, False, 0), (True, True, 0), (False, True, 1)])
def test_every_split_of_time_into_head_and_chunks(T, reverse, with_lengths, act, device):
    """With CHUNK=4 the walk is a head of T % 4 steps (masked step by step) and T // 4 whole chunks
    run two at a time: no head (T = 4, 8, 12), no whole chunk (T < 4), an odd count of them (the
    loop's last chunk runs empty: T = 4, 5, 12, 13), an even one (T = 8, 9, 17)."""
    x, u, h0, bias = make_inputs(T, 3, 5, torch.float32, device)
    lengths = torch.tensor([1, T, max(1, T // 2)], device=device) if with_lengths else None
    config = dict(BLOCK=8, CHUNK=4, num_warps=1)
    assert_kernels_match_reference(x, u, h0, bias, config, lengths, reverse, act)
