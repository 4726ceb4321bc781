"""The launch path of the Triton kernels: buffers the backward kernel fills itself.

Without CUDA the kernels run through the Triton interpreter (see conftest.py).
"""

import pytest
import torch
import triton

from kernels.sequential import recurrence_bwd_kernel


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("B,H,block", [(3, 5, 16), (3, 37, 16), (2, 7, 128)])
def test_backward_kernel_writes_every_partial_sum_and_dh0(B, H, block, reverse, device):
    """The launcher leaves the per-column partial sums and dh0 uninitialised: the kernel must
    store every one of them, masked tail columns of the last program included. Buffers filled
    with NaN must come back without one."""
    T = 5
    h, dh = torch.randn(T, B, H, device=device).relu(), torch.randn(T, B, H, device=device)
    u, h0 = torch.rand(H, device=device), torch.randn(B, H, device=device)
    lengths = torch.randint(1, T + 1, (B,), device=device)
    dx, cols = torch.empty_like(h), torch.full((3, B, H), float("nan"), device=device)
    grid = (triton.cdiv(B * H, block),)
    recurrence_bwd_kernel.fn[grid](
        h, dh, u, h0, dx, cols[0], cols[1], cols[2], lengths, T, B * H, H, B * H, H, B * H, H, T,
        HAS_H0=True, HAS_LENGTHS=True, REVERSE=reverse, ACT=0, BLOCK=block, CHUNK=2, STAGES=2, num_warps=1,
    )  # fmt: skip
    assert not cols.isnan().any()
