"""The recurrence's Triton kernels as PyTorch custom operators, so `torch.compile` sees them, and
as a plain autograd.Function for eager calls, which need no dispatcher.

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

A custom operator costs host time on every call (the dispatcher, schema checks, the autograd
wrapper), several times what a torch.autograd.Function costs for the same launches. Eager calls
therefore go through `EagerRecurrence`, a Function with the same forward, the same saved state
and the same backward (`_setup_context` and `_gradients` serve both), and `triton_recurrence`
calls the custom operator only while torch.compile traces. Both give bit-identical results: they
run the same launchers on the same arguments.
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
    """t as the kernels read it: they see its data only, so it need not be detached first."""
    return None if t is None else t.float().contiguous()


def _launch_forward(x, u, h0, bias, lengths, act, reverse, scan=False):
    launch = scan_fwd if scan else recurrence_fwd
    return launch(x, _fp32(u), _fp32(h0), _fp32(bias), act, lengths=lengths, reverse=reverse)


def _launch_backward(h, dh, u, h0, lengths, act, reverse, scan=False):
    launch = scan_bwd if scan else recurrence_bwd
    return launch(h, dh, _fp32(u), _fp32(h0), act, lengths=lengths, reverse=reverse)


@torch.library.custom_op("indrnn::recurrence", mutates_args=(), schema=FORWARD_SCHEMA)
def recurrence(x, u, h0, bias, lengths, act, reverse, scan=False):
    """h (T, B, H) of h_t = act(x_t + u * h_{t-1} + bias), in time order or (reverse) against it,
    each batch row stopping at its length (later steps store zeros and leave the state)."""
    _require_triton(x)
    return _launch_forward(x, u, h0, bias, lengths, act, reverse, scan)


@recurrence.register_fake
def _(x, u, h0, bias, lengths, act, reverse, scan=False):
    return states_like(x)


@torch.library.custom_op("indrnn::recurrence_backward", mutates_args=(), schema=BACKWARD_SCHEMA)
def recurrence_backward(h, dh, u, h0, lengths, act, reverse, scan=False):
    """dx (h's dtype, laid out as `states_like(h)`), du (H,), dbias (H,), dh0 (B, H), the last three in fp32."""
    _require_triton(h)
    dx, du, dbias, dh0 = _launch_backward(h, dh, u, h0, lengths, act, reverse, scan)
    # du and dbias are rows of one reduction; a custom op's outputs may not alias.
    return dx, du, dbias.clone(), dh0


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


def _gradients(ctx, dh, launch_backward):
    """The gradients of (x, u, h0, bias, lengths, act, reverse, scan) from those of h, by `launch_backward`:
    the custom backward operator in the custom operator's formula, the launcher in `EagerRecurrence`."""
    h, u, h0, lengths = ctx.saved_tensors
    dx, du, dbias, dh0 = launch_backward(h, dh, u, h0, lengths, ctx.act, ctx.reverse, ctx.scan)
    return (
        dx,
        _cast(du, u.dtype),
        None if h0 is None else _cast(dh0, h0.dtype),
        None if ctx.bias_dtype is None else _cast(dbias, ctx.bias_dtype),
        None,
        None,
        None,
        None,
    )


def _cast(grad: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An fp32 gradient in its input's dtype (`.to` costs host time even when it returns grad itself)."""
    return grad if grad.dtype == dtype else grad.to(dtype)


recurrence.register_autograd(lambda ctx, dh: _gradients(ctx, dh, recurrence_backward), setup_context=_setup_context)


class EagerRecurrence(torch.autograd.Function):
    """`indrnn::recurrence` and its autograd formula without the dispatcher, for eager calls. The
    forward takes ctx itself: with a separate setup_context, `apply` binds its arguments to the
    forward's signature through `inspect` on every call, which costs more than the launches."""

    @staticmethod
    def forward(ctx, *inputs):
        h = _launch_forward(*inputs)
        _setup_context(ctx, inputs, h)
        return h

    @staticmethod
    def backward(ctx, dh):
        return _gradients(ctx, dh, _launch_backward)


def triton_recurrence(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None,
    bias: torch.Tensor | None,
    lengths: torch.Tensor | None,
    act: int,
    reverse: bool,
    scan: bool = False,
) -> torch.Tensor:
    """h of the recurrence by the Triton kernels: through the custom operator while torch.compile
    traces (so the graph holds it), else through `EagerRecurrence`. The caller has checked that
    Triton can run on x; `scan` picks the chunked scan over the sequential walk."""
    if torch.compiler.is_compiling():
        return torch.ops.indrnn.recurrence(x, u, h0, bias, lengths, act, reverse, scan)
    return EagerRecurrence.apply(x, u, h0, bias, lengths, act, reverse, scan)
