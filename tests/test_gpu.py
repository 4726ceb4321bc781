"""Compiled kernels on a real GPU (skipped without CUDA): benchmark sizes and > 2^31 elements.

The interpreter tests in test_recurrence.py already run compiled on a GPU machine; these add
the sizes only a GPU can hold, where the autotuner picks real configurations."""

import pytest
import torch

from kernels import indrnn_recurrence, recurrence_reference

pytestmark = pytest.mark.gpu


def rel_error(got, want):
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("T,B,H", [(1024, 32, 128), (300, 256, 2048), (1000, 7, 333)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 4e-2)])
def test_benchmark_sizes_match_reference(T, B, H, dtype, tol):
    x = torch.randn(T, B, H, device="cuda", dtype=dtype)
    u = torch.empty(H, device="cuda").uniform_(-1, 1)
    h0 = torch.randn(B, H, device="cuda")
    bias = torch.randn(H, device="cuda") * 0.1
    dh = torch.randn(T, B, H, device="cuda")
    grads = []
    for backend in ("triton", "torch"):
        leaves = [t.clone().requires_grad_() for t in (x, u, h0, bias)]
        h, _ = indrnn_recurrence(*leaves, backend=backend)
        h.float().backward(dh)
        grads.append((h, [t.grad for t in leaves]))
    (h, g), (h_ref, g_ref) = grads
    assert rel_error(h, h_ref) < tol
    for name, a, b in zip("x u h0 bias".split(), g, g_ref, strict=True):
        assert rel_error(a, b) < tol * 4, name


def test_more_than_2_pow_31_elements():
    """int64 offsets: the last steps of a T*B*H > 2^31 tensor are addressed correctly."""
    # 2064 * 2^20 = 2,164,260,864 elements: the planes from t = 2048 on lie past 2^31, and with any
    # CHUNK of the space the walk ends in whole chunks (its masked head is its first T % CHUNK
    # steps), so whole chunks and their pointer steps are what reach them.
    T, B, H = 2064, 1, 1 << 20
    assert T * B * H > 2**31
    if torch.cuda.get_device_properties(0).total_memory < 24 * 2**30:
        pytest.skip("needs 24 GiB of GPU memory")
    x = torch.randn(T, B, H, device="cuda", dtype=torch.bfloat16).requires_grad_()
    u = torch.empty(H, device="cuda").uniform_(-1, 1).requires_grad_()
    h, h_last = indrnn_recurrence(x, u, backend="triton")
    dh = torch.randn_like(h)
    h.backward(dh)
    cols = torch.cat([torch.arange(64), torch.arange(H - 64, H)]).cuda()
    x_s = x.detach()[:, :, cols].float().requires_grad_()
    u_s = u.detach()[cols].requires_grad_()
    h_ref, _ = recurrence_reference(x_s, u_s)
    h_ref.backward(dh[:, :, cols].float())
    assert rel_error(h[:, :, cols], h_ref) < 4e-2
    assert rel_error(h_last[:, cols], h_ref[-1]) < 4e-2
    assert rel_error(x.grad[:, :, cols], x_s.grad) < 4e-2


def test_gradients_deterministic_on_gpu():
    x = torch.randn(512, 64, 1024, device="cuda").requires_grad_()
    u = torch.rand(1024, device="cuda").requires_grad_()
    dh = torch.randn_like(x)
    out = []
    for _ in range(2):
        x.grad = u.grad = None
        h, _ = indrnn_recurrence(x, u, backend="triton")
        h.backward(dh)
        out.append((x.grad.clone(), u.grad.clone()))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
