"""The launch path of the Triton kernels: buffers the backward kernel fills itself, the eager
autograd.Function against the custom operators torch.compile traces, and autotune results that
outlive the process.

Without CUDA the kernels run through the Triton interpreter (see conftest.py); the autotune cache
is exercised in child processes without it, with triton told to tune for sm_90 and the timing of
each config faked (nothing runs: the cache is triton's own code, keyed by our kernels).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import triton
from torch.utils._python_dispatch import TorchDispatchMode

from kernels import IndRec
from kernels.sequential import recurrence_bwd_kernel

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.triton
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
        HAS_H0=True, HAS_LENGTHS=True, REVERSE=reverse, ACT=0, BLOCK=block, CHUNK=2, num_warps=1,
    )  # fmt: skip
    assert not cols.isnan().any()


def _layer_gradients(layer: IndRec, x: torch.Tensor, h0: torch.Tensor, lengths: torch.Tensor, dh: torch.Tensor):
    h, h_last = layer(x, h0, "triton", lengths, True)
    leaves = (x, h0, layer.weight_hh, layer.bias)
    return (h, h_last, *torch.autograd.grad((h, h_last), leaves, (dh, dh[0])))


class _CustomOps(TorchDispatchMode):
    """Records the custom operators called (those outside aten)."""

    def __init__(self):
        super().__init__()
        self.called = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace != "aten":
            self.called.append(func.name())
        return func(*args, **(kwargs or {}))


@pytest.mark.triton
def test_eager_calls_and_the_custom_operator_give_identical_results(monkeypatch, device):
    """Eagerly a layer runs `EagerRecurrence` and no custom operator; told that torch.compile is
    tracing, it calls the two custom operators instead. States and every gradient are bit-identical."""
    T, B, H = 6, 3, 5
    layer = IndRec(H, bias=True, batch_norm=False, activation="relu", recurrent_max=1.0).to(device)
    with torch.no_grad():
        layer.weight_hh.uniform_(-1.1, 1.1)
        layer.bias.uniform_(-0.3, 0.3)
    x = torch.randn(B, T, H, device=device).transpose(0, 1).requires_grad_()  # batch first in memory
    h0 = torch.randn(B, H, device=device, requires_grad=True)
    lengths, dh = torch.tensor([4, 6, 2], device=device), torch.randn(T, B, H, device=device)

    with _CustomOps() as eager_ops:
        eager = _layer_gradients(layer, x, h0, lengths, dh)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with _CustomOps() as traced_ops:
        traced = _layer_gradients(layer, x, h0, lengths, dh)
    assert eager_ops.called == []
    assert traced_ops.called == ["indrnn::recurrence", "indrnn::recurrence_backward"]
    for got, want in zip(traced, eager, strict=True):
        assert torch.equal(got, want)


# Run in a child process without the interpreter: tunes the forward kernel for sm_90 on one key,
# timing each config by a fake that makes config BEST the fastest (or, with CACHED_ONLY, failing
# the test if anything is timed), launches nothing, and prints what it timed and chose.
_TUNE_ONCE = textwrap.dedent(
    """
    import json, sys
    import torch
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver
    from triton.runtime.autotuner import Autotuner
    import kernels.sequential as seq

    BEST, CACHED_ONLY = int(sys.argv[1]), sys.argv[2] == "cached"

    class Sm90:
        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

    kernel = seq.recurrence_fwd_kernel
    timed, chosen = [], []

    def fake_bench(self, *args, config, **meta):
        assert not CACHED_ONLY, "tuned again although the results were cached"
        timed.append(config.kwargs)
        t = 1.0 + abs(kernel.configs.index(config) - BEST)
        return [t, t, t]

    driver.set_active(Sm90())
    Autotuner._bench = fake_bench
    kernel.fn.run = lambda *args, **kwargs: chosen.append({k: kwargs[k] for k in ("BLOCK", "CHUNK")})
    seq.recurrence_fwd(torch.randn(64, 4, 32), torch.rand(32), None, None, 0)
    print(json.dumps({"timed": len(timed), "configs": len(kernel.configs), "chosen": chosen,
                      "best": {k: kernel.configs[BEST].kwargs[k] for k in ("BLOCK", "CHUNK")}}))
    """
)


@pytest.mark.slow
def test_autotune_results_persist_across_processes(tmp_path):
    """A second process with the same triton cache directory takes the config the first one tuned
    from the cache, timing nothing; the cache is a file under that directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "INDRNN_AUTOTUNE")}
    env["TRITON_CACHE_DIR"] = str(tmp_path)

    def tune(mode: str) -> dict:
        argv = [sys.executable, "-c", _TUNE_ONCE, "3", mode]
        done = subprocess.run(argv, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = tune("tune")
    assert first["configs"] > 1 and first["timed"] == first["configs"]
    assert first["chosen"] == [first["best"]]
    assert [p.name for p in tmp_path.rglob("*.autotune.json")] == ["recurrence_fwd_kernel.autotune.json"]
    second = tune("cached")
    assert second["timed"] == 0 and second["chosen"] == [first["best"]]
