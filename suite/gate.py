"""The correctness gate: nothing is timed as a success before its output was checked.

IndRNN providers are compared with the torch reference over the same weights (the forward
output and, in train mode, every parameter gradient); the torch-loop provider is itself the
reference, so it, like the baselines (LSTM, GRU, Transformer, ...), must give finite outputs
and gradients. A failure raises GateError, which the harness records as a failed row.

Errors are measured as max |actual - reference| / max |reference| per tensor: relative to
the tensor's scale, so long sequences with large states are not held to an absolute bound,
while a wrong kernel (errors of order one) fails at any size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kernels import indrnn_recurrence, recurrence_reference

# Allowed max relative error per dtype. fp32: both sides compute in fp32 and differ only in
# summation order. Half precisions: stored states are rounded, and a one-ulp flip in one
# layer propagates through the next.
TOLERANCE = {"float32": 1e-3, "float16": 1e-2, "bfloat16": 5e-2}


class GateError(Exception):
    """An output or gradient that is not finite or does not match the reference."""


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (absolute when expected is all zeros)."""
    a, e = actual.double(), expected.double()
    scale = e.abs().max().item() if e.numel() else 0.0
    diff = (a - e).abs().max().item() if e.numel() else 0.0
    return diff / scale if scale > 0 else diff


def check_finite(tensors: dict[str, torch.Tensor]) -> None:
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise GateError(f"gate: {name} is not finite")


def compare(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], dtype: str) -> None:
    """Raise GateError naming the first tensor that is missing, misshapen or too far off."""
    tol = TOLERANCE[dtype]
    for name, ref in expected.items():
        got = actual.get(name)
        if got is None:
            raise GateError(f"gate: {name} is missing (present in the reference)")
        if got.shape != ref.shape:
            raise GateError(f"gate: {name} has shape {tuple(got.shape)}, the reference {tuple(ref.shape)}")
        err = relative_error(got, ref)
        if not err <= tol:  # also catches NaN
            raise GateError(f"gate: {name} differs from the torch reference: max rel error {err:.2e} > {tol:.0e}")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise GateError(f"gate: {extra[0]} has no counterpart in the reference")


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


def check_model(
    forward: Callable[[torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor], torch.Tensor] | None,
    model: nn.Module,
    x: torch.Tensor,
    dtype: str,
    train: bool,
) -> None:
    """Gate one built model on input x: finite, and equal to the reference when there is one."""
    actual = outputs_and_grads(forward, model, x, train)
    check_finite(actual)
    if reference is not None:
        compare(actual, outputs_and_grads(reference, model, x, train), dtype)


def _recurrence(backend: str, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in (x, u, bias)]
    if backend == "reference":
        h, _ = recurrence_reference(leaves[0], leaves[1], bias=leaves[2])
    else:
        h, _ = indrnn_recurrence(leaves[0], leaves[1], bias=leaves[2], backend=backend)
    generator = torch.Generator(device=h.device).manual_seed(0)
    dh = torch.randn(h.shape, device=h.device, generator=generator).to(h.dtype)
    grads = torch.autograd.grad(h, leaves, dh)
    return {"h": h.detach(), **{f"grad {n}": g for n, g in zip(("x", "u", "bias"), grads, strict=True)}}


def check_recurrence(backend: str, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor, dtype: str) -> None:
    """Gate the bare recurrence: forward h and the gradients of x, u and bias."""
    actual = _recurrence(backend, x, u, bias)
    check_finite(actual)
    if backend != "torch":  # the torch backend is the reference itself
        compare(actual, _recurrence("reference", x, u, bias), dtype)
