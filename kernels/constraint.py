"""The IndRNN recurrent-weight constraint and initialisations (Li et al., CVPR 2018 and arXiv 1910.06251).

Through T steps of h_t = relu(x_t + u * h_{t-1}), the gradient reaching step 0 from step T
is scaled by about u^T (where the neuron is active). Keeping |u| <= gamma^(1/T) therefore
bounds that growth by gamma, the largest growth the task tolerates (the papers use 2 for the
adding problem). Plain ReLU networks are often simply clamped to |u| <= 1.

The papers initialise u ~ U(0, gamma^(1/T)); for the last layer of a classifier, whose
neurons must keep long memories, u ~ U(eps^(1/T), gamma^(1/T)) with a small eps, so no
neuron starts out forgetting faster than eps over the whole sequence.
"""

from __future__ import annotations

import torch


def recurrent_bound(seq_len: int, gamma: float = 2.0) -> float:
    """gamma^(1/seq_len): the largest |u| whose gradient grows by at most gamma over seq_len steps."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    return float(gamma) ** (1.0 / seq_len)


@torch.no_grad()
def clamp_recurrent_weight_(u: torch.Tensor, bound: float) -> torch.Tensor:
    """Clamp u in place to [-bound, bound] (call after each optimiser step); returns u."""
    if not bound >= 0:
        raise ValueError(f"bound must be non-negative, got {bound!r}")
    return u.clamp_(-bound, bound)


@torch.no_grad()
def init_recurrent_weight_(u: torch.Tensor, seq_len: int, gamma: float = 2.0, eps: float | None = None) -> torch.Tensor:
    """Fill u in place with U(0, gamma^(1/T)), or U(eps^(1/T), gamma^(1/T)) when eps is given
    (the paper's last layer); returns u."""
    high = recurrent_bound(seq_len, gamma)
    low = 0.0
    if eps is not None:
        if not 0 < eps < gamma:
            raise ValueError(f"eps must lie in (0, gamma={gamma}), got {eps!r}")
        low = recurrent_bound(seq_len, eps)
    return u.uniform_(low, high)
