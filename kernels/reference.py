"""The readable IndRNN recurrence: a plain loop over time in PyTorch.

This is the definition every other backend is checked against, and the `torch` backend of
`indrnn_recurrence`. State and arithmetic are fp32 (fp64 when the input is fp64); the
returned states are cast back to the input dtype, exactly as the Triton kernels store them.
With `reverse` the loop walks time backwards; with `lengths` row b runs its first lengths[b]
steps only: its later steps keep the state and output zeros, so padding never changes a state.
"""

from __future__ import annotations

import torch

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


def last_state(h: torch.Tensor, lengths: torch.Tensor | None, reverse: bool) -> torch.Tensor:
    """The final state of each row of a recurrence's states h (T >= 1, B, H): the one after its
    last step, which is t = 0 when the walk ran backwards."""
    if reverse:
        return h[0]
    if lengths is None:
        return h[-1]
    last = (lengths - 1).view(1, -1, 1).expand(1, h.shape[1], h.shape[2])
    return h.gather(0, last)[0]


def valid_steps(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(T, B, 1) bool: step t of row b is one of its lengths[b] steps."""
    return (torch.arange(T, device=lengths.device)[:, None] < lengths[None, :])[..., None]


def recurrence_reference(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = act(x_t + u * h_{t-1} + bias) for t = 0..T-1 (T-1..0 with reverse), differentiable
    by autograd.

    x: (T, B, H); u, bias: (H,); h0: (B, H) or None for zeros; lengths: (B,) int64 in [1, T] or None.
    Returns (h of shape (T, B, H) in x's dtype, h_last of shape (B, H)).
    """
    act = ACTIVATIONS[activation]
    T, B, H = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    state = torch.zeros(B, H, dtype=acc, device=x.device) if h0 is None else h0.to(acc)
    u_acc = u.to(acc)
    b_acc = None if bias is None else bias.to(acc)
    valid = None if lengths is None else valid_steps(lengths, T)
    outputs: list[torch.Tensor] = [state] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        pre = x[t].to(acc) + u_acc * state
        if b_acc is not None:
            pre = pre + b_acc
        if valid is None:
            state = act(pre)  # carried at full precision; only the stored copy is rounded
            outputs[t] = state
        else:
            state = torch.where(valid[t], act(pre), state)
            outputs[t] = torch.where(valid[t], state, 0.0)
    if T == 0:
        h = x.new_empty((0, B, H))
        h_last = h0.to(x.dtype) if h0 is not None else x.new_zeros((B, H))
        return h, h_last
    h = torch.stack(outputs).to(x.dtype)
    return h, last_state(h, lengths, reverse)
