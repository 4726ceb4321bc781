"""The `torch` backend of `indrnn_recurrence`: eager PyTorch loops with a hand-written backward.

Letting autograd record the reference loop (kernels/reference.py) costs a graph node per op
per step, and its backward is several times slower than the forward. This backend does what
the Triton kernels do, with one PyTorch op or two per step: the forward loop keeps only h,
and the backward walks time in reverse, recomputing the activation derivative from h. Every
term that does not sit on the sequential chain (bias, the derivative mask, du and dbias) is
one op over all T steps. It runs on any device and dtype; tests hold it to the reference.
"""

from __future__ import annotations

import torch


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _activation_grad(h: torch.Tensor, activation: str) -> torch.Tensor:
    """d act / d a from h = act(a): relu -> (h > 0), tanh -> 1 - h^2."""
    return (h > 0).to(h.dtype) if activation == "relu" else 1 - h * h


class _LoopFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, u, h0, bias, activation):
        acc = _accumulation_dtype(x.dtype)
        T, B, H = x.shape
        u_acc = u.detach().to(acc)
        pre = x.detach().to(acc)
        if bias is not None:
            pre = pre + bias.detach().to(acc)  # one op for every step, off the sequential chain
        h = torch.empty((T, B, H), dtype=acc, device=x.device)
        state = torch.zeros(B, H, dtype=acc, device=x.device) if h0 is None else h0.detach().to(acc)
        act = torch.relu_ if activation == "relu" else torch.tanh_
        for t in range(T):
            state = act(torch.addcmul(pre[t], u_acc, state, out=h[t]))
        out = h.to(x.dtype)
        ctx.save_for_backward(out, u, h0)
        ctx.activation = activation
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, dh):
        h, u, h0 = ctx.saved_tensors
        acc = _accumulation_dtype(h.dtype)
        T, B, H = h.shape
        h_acc = h.to(acc)
        grad_act = _activation_grad(h_acc, ctx.activation)
        dh = dh.to(acc)
        u_acc = u.to(acc)
        # da_t = (dh_t + u * da_{t+1}) * act'(a_t): the dh_t term for all t in one op, then
        # two ops a step for the chain through carry = u * da_{t+1}.
        da = dh * grad_act
        carry = torch.zeros(B, H, dtype=acc, device=h.device)
        for t in range(T - 1, -1, -1):
            da[t].addcmul_(carry, grad_act[t])
            torch.mul(u_acc, da[t], out=carry)
        h_prev = torch.cat([(torch.zeros_like(h_acc[0]) if h0 is None else h0.to(acc))[None], h_acc[:-1]])
        du = (da * h_prev).sum((0, 1)).to(u.dtype)
        dbias = None if ctx.bias_dtype is None else da.sum((0, 1)).to(ctx.bias_dtype)
        dh0 = None if h0 is None else carry.to(h0.dtype)
        return da.to(h.dtype), du, dh0, dbias, None


def recurrence_loop(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = act(x_t + u * h_{t-1} + bias) in eager PyTorch, for T >= 1; the contract of
    `indrnn_recurrence` (which checks the inputs): returns (h, h_last)."""
    h = _LoopFunction.apply(x, u, h0, bias, activation)
    return h, h[-1]
