"""The recurrence's Triton kernels as PyTorch custom operators, so `torch.compile` sees them.

A `torch.autograd.Function` that launches Triton kernels is opaque to dynamo: it breaks the
graph around it. Registered through `torch.library`, with a fake implementation that only
says what comes out (shapes, strides, dtypes), the kernels become two ops a compiled graph
calls like any aten op:

    indrnn::recurrence           x, u, h0?, bias?, lengths?, act, reverse, scan -> h
    indrnn::recurrence_backward  h, dh, u, h0?, lengths?, act, reverse, scan    -> dx, du, dbias, dh0

`scan` picks the schedule: the chunked scan of kernels/scan.py (relu only) or, by default, the
sequential walk of kernels/sequential.py; the forward hands its choice to the backward. The
backward is itself an op, registered as the forward's autograd formula, so a compiled
training step calls both kernels. Gradients come back in fp32 and are cast to the dtypes of
the inputs they belong to here, outside the kernels.

The ops launch the Triton kernels on CUDA tensors, and on CPU tensors through the Triton
interpreter (TRITON_INTERPRET=1): that is how `torch.library.opcheck` checks them on a machine
without a GPU. Anywhere else they raise, as the `triton` backend does.
"""

from __future__ import annotations

import torch

from kernels.common import states_like, triton_unavailable_reason
from kernels.scan import scan_bwd, scan_fwd
from kernels.sequential import recurrence_bwd, recurrence_fwd

# Schemas written out rather than inferred from annotations: inference of `Tensor | None`
# differs between torch releases, the text does not.
# `scan` has a default, in the schema and in the Python signature alike (torch.library does not
# fill a schema's defaults into the Python call), so a call without it walks sequentially.
FORWARD_SCHEMA = (
    "(Tensor x, Tensor u, Tensor? h0, Tensor? bias, Tensor? lengths, int act, bool reverse, bool scan=False) -> Tensor"
)
BACKWARD_SCHEMA = (
    "(Tensor h, Tensor dh, Tensor u, Tensor? h0, Tensor? lengths, int act, bool reverse, bool scan=False)"
    " -> (Tensor, Tensor, Tensor, Tensor)"
)


def _require_triton(x: torch.Tensor) -> None:
    reason = triton_unavailable_reason(x)
    if reason:
        raise RuntimeError(f"indrnn::recurrence cannot run: {reason}")


def _fp32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().float().contiguous()


@torch.library.custom_op("indrnn::recurrence", mutates_args=(), schema=FORWARD_SCHEMA)
def recurrence(x, u, h0, bias, lengths, act, reverse, scan=False):
    """h (T, B, H) of h_t = act(x_t + u * h_{t-1} + bias), in time order or (reverse) against it,
    each batch row stopping at its length (later steps store zeros and leave the state)."""
    _require_triton(x)
    launch = scan_fwd if scan else recurrence_fwd
    return launch(x, _fp32(u), _fp32(h0), _fp32(bias), act, lengths=lengths, reverse=reverse)


@recurrence.register_fake
def _(x, u, h0, bias, lengths, act, reverse, scan=False):
    return states_like(x)


@torch.library.custom_op("indrnn::recurrence_backward", mutates_args=(), schema=BACKWARD_SCHEMA)
def recurrence_backward(h, dh, u, h0, lengths, act, reverse, scan=False):
    """dx (h's dtype, laid out as `states_like(h)`), du (H,), dbias (H,), dh0 (B, H), the last three in fp32."""
    _require_triton(h)
    launch = scan_bwd if scan else recurrence_bwd
    return launch(h, dh, _fp32(u), _fp32(h0), act, lengths=lengths, reverse=reverse)


@recurrence_backward.register_fake
def _(h, dh, u, h0, lengths, act, reverse, scan=False):
    _, B, H = h.shape
    grad = h.new_empty((), dtype=torch.float32)
    return states_like(h), grad.new_empty(H), grad.new_empty(H), grad.new_empty((B, H))


def _setup_context(ctx, inputs, output) -> None:
    x, u, h0, bias, lengths, act, reverse, scan = inputs
    ctx.save_for_backward(output, u, h0, lengths)
    ctx.act, ctx.reverse, ctx.scan = act, reverse, scan
    ctx.bias_dtype = None if bias is None else bias.dtype


def _backward(ctx, dh):
    h, u, h0, lengths = ctx.saved_tensors
    dx, du, dbias, dh0 = recurrence_backward(h, dh, u, h0, lengths, ctx.act, ctx.reverse, ctx.scan)
    return (
        dx,
        du.to(u.dtype),
        None if h0 is None else dh0.to(h0.dtype),
        None if ctx.bias_dtype is None else dbias.to(ctx.bias_dtype),
        None,
        None,
        None,
        None,
    )


recurrence.register_autograd(_backward, setup_context=_setup_context)
