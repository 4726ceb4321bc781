"""The readable IndRNN recurrence: a plain loop over time in PyTorch.

This is the definition every other backend is checked against, and the `torch` backend of
`indrnn_recurrence`. State and arithmetic are fp32 (fp64 when the input is fp64); the
returned states are cast back to the input dtype, exactly as the Triton kernels store them.
"""

from __future__ import annotations

import torch

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


def recurrence_reference(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = act(x_t + u * h_{t-1} + bias) for t = 0..T-1, differentiable by autograd.

    x: (T, B, H); u, bias: (H,); h0: (B, H) or None for zeros.
    Returns (h of shape (T, B, H) in x's dtype, h_last of shape (B, H)).
    """
    act = ACTIVATIONS[activation]
    T, B, H = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    state = torch.zeros(B, H, dtype=acc, device=x.device) if h0 is None else h0.to(acc)
    u_acc = u.to(acc)
    b_acc = None if bias is None else bias.to(acc)
    outputs = []
    for t in range(T):
        pre = x[t].to(acc) + u_acc * state
        if b_acc is not None:
            pre = pre + b_acc
        state = act(pre)  # carried at full precision; only the stored copy is rounded
        outputs.append(state)
    if T == 0:
        h = x.new_empty((0, B, H))
        h_last = h0.to(x.dtype) if h0 is not None else x.new_zeros((B, H))
        return h, h_last
    h = torch.stack(outputs).to(x.dtype)
    return h, h[-1]
