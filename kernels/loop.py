"""The `torch` backend of `indrnn_recurrence`: eager PyTorch loops with a hand-written backward.

Letting autograd record the reference loop (kernels/reference.py) costs a graph node per op
per step, and its backward is several times slower than the forward. This backend does what
the Triton kernels do, with one PyTorch op or two per step: the forward loop keeps only h,
and the backward walks time in reverse, recomputing the activation derivative from h. Every
term that does not sit on the sequential chain (bias, the derivative mask, du and dbias) is
one op over all T steps. Variable lengths are a mask: a step past a row's length keeps the
state (forward) and passes the carried gradient through (backward). It runs on any device and
dtype; tests hold it to the reference.
"""

from __future__ import annotations

import torch

from kernels.reference import last_state, valid_steps


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _activation_grad(h: torch.Tensor, activation: str) -> torch.Tensor:
    """d act / d a from h = act(a): relu -> (h > 0), tanh -> 1 - h^2."""
    return (h > 0).to(h.dtype) if activation == "relu" else 1 - h * h


class _LoopFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, u, h0, bias, activation, lengths, reverse):
        acc = _accumulation_dtype(x.dtype)
        T, B, H = x.shape
        u_acc = u.detach().to(acc)
        pre = x.detach().to(acc)
        if bias is not None:
            pre = pre + bias.detach().to(acc)  # one op for every step, off the sequential chain
        h = torch.empty((T, B, H), dtype=acc, device=x.device)
        state = torch.zeros(B, H, dtype=acc, device=x.device) if h0 is None else h0.detach().to(acc)
        act = torch.relu_ if activation == "relu" else torch.tanh_
        valid = None if lengths is None else valid_steps(lengths, T)
        # Walking forwards, a row reaches its padding after its last step, so what the state does
        # there is never read: only a reverse walk, which meets the padding first, must hold it.
        hold = valid if reverse else None
        for t in range(T - 1, -1, -1) if reverse else range(T):
            if hold is None:
                state = act(torch.addcmul(pre[t], u_acc, state, out=h[t]))
            else:
                state = torch.where(hold[t], act(torch.addcmul(pre[t], u_acc, state)), state)
                h[t] = state
        if valid is not None:  # padded steps output 0
            h.masked_fill_(~valid, 0.0)
        out = h.to(x.dtype)
        ctx.save_for_backward(out, u, h0, lengths)
        ctx.activation, ctx.reverse = activation, reverse
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, dh):
        h, u, h0, lengths = ctx.saved_tensors
        acc = _accumulation_dtype(h.dtype)
        T, B, H = h.shape
        h_acc = h.to(acc)
        grad_act = _activation_grad(h_acc, ctx.activation)
        valid = None if lengths is None else valid_steps(lengths, T)
        if valid is not None:
            grad_act = grad_act * valid  # padded steps get no gradient
        dh = dh.to(acc)
        u_acc = u.to(acc)
        # da_t = (dh_t + u * da_{t+1}) * act'(a_t) along the forward's walk: the dh_t term for all
        # t in one op, then two ops a step for the chain through carry = u * da_{next}.
        da = dh * grad_act
        carry = torch.zeros(B, H, dtype=acc, device=h.device)
        for t in range(T) if ctx.reverse else range(T - 1, -1, -1):
            da[t].addcmul_(carry, grad_act[t])
            if valid is None or not ctx.reverse:  # forwards, the padding's carry is 0 anyway
                torch.mul(u_acc, da[t], out=carry)
            else:  # a padded step passes the carried gradient on to the state it kept
                carry = torch.where(valid[t], u_acc * da[t], carry)
        # The state each step started from: the previous one in the walk, h0 (or 0) at its start.
        start = (torch.zeros_like(h_acc[0]) if h0 is None else h0.to(acc))[None]
        if ctx.reverse:
            h_prev = torch.cat([h_acc[1:], start])
            if valid is not None:  # a row's first step (t = length - 1) started from h0
                h_prev = torch.where(torch.cat([valid[1:], torch.zeros_like(valid[:1])]), h_prev, start)
        else:
            h_prev = torch.cat([start, h_acc[:-1]])
        du = (da * h_prev).sum((0, 1)).to(u.dtype)
        dbias = None if ctx.bias_dtype is None else da.sum((0, 1)).to(ctx.bias_dtype)
        dh0 = None if h0 is None else carry.to(h0.dtype)
        return da.to(h.dtype), du, dh0, dbias, None, None, None


def recurrence_loop(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = act(x_t + u * h_{t-1} + bias) in eager PyTorch, for T >= 1; the contract of
    `indrnn_recurrence` (which checks the inputs): returns (h, h_last)."""
    h = _LoopFunction.apply(x, u, h0, bias, activation, lengths, reverse)
    return h, last_state(h, lengths, reverse)
