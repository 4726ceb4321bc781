"""The public IndRNN recurrence: input checks, the choice of backend, and the call.

    h_t = act(x_t + u * h_{t-1} + bias),    x: (T, B, H),  u, bias: (H,),  h0: (B, H)

The Triton kernels (kernels/sequential.py) are reached through kernels/op.py: a plain
autograd.Function in eager calls, the custom operators that torch.compile traces while it
compiles; the torch backend is the eager loop of kernels/loop.py and the reference the plain
loop of kernels/reference.py.
"""

from __future__ import annotations

import torch

from kernels.common import ACT_CODES, triton_unavailable_reason
from kernels.loop import recurrence_loop
from kernels.op import triton_recurrence
from kernels.reference import ACTIVATIONS, last_state, recurrence_reference

BACKENDS = ("auto", "triton", "torch", "reference")


def _check_inputs(x, u, h0, bias, activation, backend) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (T, B, H), got {x.dim()} dimensions {tuple(x.shape)}")
    T, B, H = x.shape
    named = {"x": x, "u": u, "h0": h0, "bias": bias}
    shapes = {"u": (H,), "h0": (B, H), "bias": (H,)}
    for name, t in named.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
        if name in shapes and tuple(t.shape) != shapes[name]:
            raise ValueError(
                f"{name} must have shape {shapes[name]} for x of shape {tuple(x.shape)}, got {tuple(t.shape)}"
            )
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def resolve_backend(x: torch.Tensor, backend: str) -> str:
    """Turn "auto" into "triton" or "torch" for this input; raise if "triton" cannot run."""
    reason = triton_unavailable_reason(x)
    if backend == "auto":
        return "torch" if reason else "triton"
    if backend == "triton" and reason:
        raise RuntimeError(f"backend='triton' cannot run: {reason}")
    return backend


def _check_lengths(lengths: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """lengths as (B,) int64 on x's device, checked: every row runs 1..T steps."""
    if lengths is None:
        return None
    T, B, _ = x.shape
    if not isinstance(lengths, torch.Tensor) or lengths.dtype.is_floating_point or lengths.dtype.is_complex:
        raise TypeError(
            f"lengths must be an integer torch.Tensor or None, got {getattr(lengths, 'dtype', type(lengths))}"
        )
    if tuple(lengths.shape) != (B,):
        raise ValueError(f"lengths must have shape ({B},) for x of shape {tuple(x.shape)}, got {tuple(lengths.shape)}")
    # Values are checked where that costs no wait: on the CPU, outside a compiled graph.
    checkable = lengths.device.type == "cpu" and B > 0 and not torch.compiler.is_compiling()
    if checkable and not (1 <= int(lengths.min()) and int(lengths.max()) <= T):
        raise ValueError(f"lengths must lie in [1, T={T}], got values in [{int(lengths.min())}, {int(lengths.max())}]")
    return lengths.to(device=x.device, dtype=torch.int64)


def indrnn_recurrence(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
    backend: str = "auto",
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The IndRNN recurrence h_t = act(x_t + u * h_{t-1} + bias) over all t.

    Args:
        x: (T, B, H) pre-activation inputs (the projection W x_t), fp32 / fp16 / bf16, any strides
            (the triton backend reads any time and batch strides in place, e.g. a batch-first
            tensor viewed time first).
        u: (H,) recurrent weights (one per neuron).
        h0: (B, H) initial state, or None for zeros.
        bias: (H,) bias, or None.
        activation: "relu" or "tanh".
        backend: "triton" (the kernels, through kernels/op.py), "torch"
            (eager PyTorch loops with a hand-written backward, kernels/loop.py), "auto" (triton
            where it can run, else torch) or "reference" (the plain loop of kernels/reference.py,
            differentiated by autograd: the definition, and what torch.compile is given in the
            benchmarks).
        lengths: (B,) integer steps of each sequence, in [1, T], or None for T each. Row b runs
            steps t < lengths[b] only: later steps leave its state alone, output 0 and get no
            gradient.
        reverse: walk time backwards, t = T-1 .. 0 (each row from its own last step): the
            backward direction of a bidirectional layer. h keeps time order.

    Returns:
        h: (T, B, H) every state, in x's dtype (with the triton backend, in x's memory order).
        h_last: (B, H) the final state: h at each row's last step (t = 0 with reverse); h0, or
        zeros, when T = 0. Gradients flow into x, u, h0 and bias from both outputs.
    """
    _check_inputs(x, u, h0, bias, activation, backend)
    lengths = _check_lengths(lengths, x)
    T, B, H = x.shape
    if T == 0:
        h_last = x.new_zeros((B, H)) if h0 is None else h0.to(x.dtype)
        return x.new_empty((0, B, H)), h_last
    backend = resolve_backend(x, backend)
    if backend == "reference":
        return recurrence_reference(x, u, h0, bias, activation, lengths=lengths, reverse=reverse)
    if backend == "torch":
        return recurrence_loop(x, u, h0, bias, activation, lengths=lengths, reverse=reverse)
    h = triton_recurrence(x, u, h0, bias, lengths, ACT_CODES[activation], reverse)
    return h, last_state(h, lengths, reverse)
