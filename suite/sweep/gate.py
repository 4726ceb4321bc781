"""The correctness gate: nothing is timed as a success before its output was checked.

IndRNN providers, models and the bare recurrence alike, on either schedule, are compared with the
torch loop (the torch backend's sequential schedule, kernels/loop.py, itself tested against the
plain loop of kernels/reference.py) over the same weights: the forward output and, in train mode
and for the bare recurrence, every gradient. The torch loop is itself the reference, so it, like
the baselines (LSTM, GRU, Transformer, ...), must give finite outputs and gradients. The plain
loop is not the gate's reference: its autograd backward costs O(T^2) (each x[t] scatters its
gradient into a zero tensor of x's size), minutes at 2^16 steps. A failure raises GateError, which
the harness records as a failed row; a pass returns what the gate found (`Passed`), which the row
keeps in its notes.

Errors are measured as max |actual - reference| / max |reference| per tensor: relative to
the tensor's scale, so long sequences with large states are not held to an absolute bound,
while a wrong kernel (errors of order one) fails at any size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from kernels import indrnn_recurrence, resolve_schedule

# fp32: both sides compute in fp32 and differ only in summation order, so they must agree to
# TOLERANCE in max relative error. Half precisions: stored states are rounded, and a one-ulp
# difference can flip a ReLU in the next layer, so two correct backends can differ by far
# more than rounding, in a few elements. There both are judged against an fp32 run of the
# reference on the same weights, by relative norm error (a few flipped elements barely move
# a norm): the backend may be at most HALF_RATIO times as far from it as the torch loop in
# the same dtype is, plus TOLERANCE.
TOLERANCE = {"float32": 1e-3, "float16": 1e-2, "bfloat16": 5e-2}
HALF_RATIO = 3.0
# A ReLU flip: where a pre-activation lies within rounding of 0, two correct implementations that
# round a state differently (the scan and the loop, or an fma and a multiply-add) can land on
# either side of the kink. Their states still agree to rounding, but the gradient through that
# step is 0 on one side and not on the other, and the difference flows back along the column's
# chain (a few columns in a hundred at 2^20 steps of random input). The bare recurrence, whose
# states show each column's pattern, compares its gradients only where the patterns agree: dx on
# the other columns, du and dbias on the neurons none of whose columns flipped. More than
# FLIP_SHARE of the columns flipped is no longer rounding.
FLIP_SHARE = 0.1


@dataclass(frozen=True)
class Passed:
    """What a passed gate found: the largest relative error where fp32 results were compared (else
    None), and the columns of the bare recurrence left out of its gradients for a ReLU flip."""

    max_rel_err: float | None = None
    relu_flips: int = 0

    def notes(self) -> str:
        """The row's notes, "key=value;..." (empty where nothing was compared)."""
        items = [] if self.max_rel_err is None else [f"gate_max_rel_err={self.max_rel_err:.2e}"]
        return ";".join(items + ([f"gate_relu_flips={self.relu_flips}"] if self.relu_flips else []))


class GateError(Exception):
    """An output or gradient that is not finite or does not match the reference."""


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (absolute when expected is all zeros)."""
    a, e = actual.double(), expected.double()
    scale = e.abs().max().item() if e.numel() else 0.0
    diff = (a - e).abs().max().item() if e.numel() else 0.0
    return diff / scale if scale > 0 else diff


def norm_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| (absolute when expected is all zeros)."""
    a, e = actual.double(), expected.double()
    scale = e.norm().item()
    diff = (a - e).norm().item()
    return diff / scale if scale > 0 else diff


def check_finite(tensors: dict[str, torch.Tensor]) -> None:
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise GateError(f"gate: {name} is not finite")


def _check_names(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    for name, ref in expected.items():
        got = actual.get(name)
        if got is None:
            raise GateError(f"gate: {name} is missing (present in the reference)")
        if got.shape != ref.shape:
            raise GateError(f"gate: {name} has shape {tuple(got.shape)}, the reference {tuple(ref.shape)}")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise GateError(f"gate: {extra[0]} has no counterpart in the reference")


def compare(
    actual: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    dtype: str,
    exact: dict[str, torch.Tensor] | None = None,
) -> float | None:
    """Raise GateError naming the first tensor that is missing, misshapen or too far off.
    Without `exact` (fp32), actual must match expected, and the largest max relative error over
    the tensors is returned; with it (half precision, `exact` from an fp32 run), actual must be
    about as close to exact as expected is, and None is returned."""
    _check_names(actual, expected)
    tol = TOLERANCE[dtype]
    worst = 0.0
    for name, ref in expected.items():
        if exact is None:
            err = relative_error(actual[name], ref)
            if not err <= tol:  # also catches NaN
                raise GateError(f"gate: {name} differs from the torch backend: max rel error {err:.2e} > {tol:.0e}")
            worst = max(worst, err)
            continue
        err, ref_err = norm_error(actual[name], exact[name]), norm_error(ref, exact[name])
        if not err <= HALF_RATIO * ref_err + tol:
            raise GateError(
                f"gate: {name} is {err:.2e} (norm) from the fp32 reference, the torch loop in {dtype} "
                f"{ref_err:.2e} (allowed {HALF_RATIO:g}x + {tol:.0e})"
            )
    return worst if exact is None else None


def outputs_and_grads(
    forward: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, x: torch.Tensor, train: bool
) -> dict[str, torch.Tensor]:
    """The output of forward(x) and, when train, the gradient of every parameter under a loss
    that weighs every output element (fixed random weights, so all steps and features count)."""
    if not train:
        with torch.inference_mode():
            return {"output": forward(x).clone()}
    model.zero_grad(set_to_none=True)
    out = forward(x)
    generator = torch.Generator(device=out.device).manual_seed(0)  # the same weights on both sides
    weights = torch.randn(out.shape, device=out.device, generator=generator)
    (out.float() * weights).sum().backward()
    result = {"output": out.detach()}
    for name, p in model.named_parameters():
        if p.grad is not None:
            result[f"grad {name}"] = p.grad.detach().clone()
    model.zero_grad(set_to_none=True)
    return result


@contextlib.contextmanager
def _in_float32(model: nn.Module) -> Iterator[None]:
    """The model's parameters and buffers in fp32 for the duration (half -> fp32 -> half is exact)."""
    dtype = next(model.parameters()).dtype
    model.float()
    try:
        yield
    finally:
        model.to(dtype)


def check_model(
    forward: Callable[[torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor], torch.Tensor] | None,
    model: nn.Module,
    x: torch.Tensor,
    dtype: str,
    train: bool,
) -> Passed:
    """Gate one built model on input x: finite, and equal to the reference when there is one."""
    actual = outputs_and_grads(forward, model, x, train)
    check_finite(actual)
    if reference is None:
        return Passed()
    expected = outputs_and_grads(reference, model, x, train)
    exact = None
    if dtype != "float32":
        with _in_float32(model):
            exact = outputs_and_grads(reference, model, x.float(), train)
    return Passed(compare(actual, expected, dtype, exact))


def _recurrence(
    backend: str, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor, schedule: str = "auto"
) -> dict[str, torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in (x, u, bias)]
    h, _ = indrnn_recurrence(leaves[0], leaves[1], bias=leaves[2], backend=backend, schedule=schedule)
    generator = torch.Generator(device=h.device).manual_seed(0)
    dh = torch.randn(h.shape, device=h.device, generator=generator).to(h.dtype)
    grads = torch.autograd.grad(h, leaves, dh)
    return {"h": h.detach(), **{f"grad {n}": g for n, g in zip(("x", "u", "bias"), grads, strict=True)}}


def _leave_out_relu_flips(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> int:
    """Zero, on both sides, the gradients that a column's ReLU flip makes differ (see FLIP_SHARE);
    the number of flipped columns."""
    flipped = ((actual["h"] > 0) != (expected["h"] > 0)).any(0)  # (B, H)
    columns = int(flipped.sum())
    if columns > FLIP_SHARE * flipped.numel():
        raise GateError(f"gate: h takes the other side of the ReLU in {columns} of {flipped.numel()} columns")
    if columns:
        neurons = flipped.any(0)
        for side in (actual, expected):
            side["grad x"] = side["grad x"].masked_fill(flipped, 0.0)
            side["grad u"] = side["grad u"].masked_fill(neurons, 0.0)
            side["grad bias"] = side["grad bias"].masked_fill(neurons, 0.0)
    return columns


def check_recurrence(
    backend: str, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor, dtype: str, schedule: str = "auto"
) -> Passed:
    """Gate the bare recurrence on `backend` and `schedule`: forward h and the gradients of x, u
    and bias (in fp32, on the columns whose ReLU pattern agrees with the reference's)."""
    actual = _recurrence(backend, x, u, bias, schedule)
    check_finite(actual)
    if backend == "torch" and resolve_schedule(x, "relu", backend, schedule) == "sequential":
        return Passed()  # the torch loop is the reference itself
    expected = _recurrence("torch", x, u, bias, "sequential")
    if dtype != "float32":
        return Passed(compare(actual, expected, dtype, _recurrence("torch", x.float(), u, bias, "sequential")))
    compare({"h": actual["h"]}, {"h": expected["h"]}, dtype)  # the states first: a flip is within rounding
    flips = _leave_out_relu_flips(actual, expected)
    return Passed(compare(actual, expected, dtype), flips)
