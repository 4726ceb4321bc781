"""Host time of one IndRNN layer's forward + backward, with the Triton launches stubbed out.

At the paper's size (T=1024, B=32, H=128) the kernels of one layer run for tens of microseconds
on a GPU, so an eager training step is bound by the host unless the launch path is lean. This
measures that path on any machine. The kernel objects the launchers call (the sequential walk's
two and the chunked scan's five) are replaced by a stub whose `[grid](...)` records the launch and
runs nothing, and the questions a launcher asks of the device get the answers of a CUDA GPU with
GPU_SMS SMs: Triton can run, schedule="auto" takes the scan where it pays on that GPU, and the
scan is cut into that GPU's chunks. Tensors of any device then take the path CUDA tensors take
and allocate what they allocate. Each schedule's path is measured on its own (schedule=
"sequential" and "scan"), against the yardstick of that schedule: `MinimalRecurrence` or
`MinimalScan`, a bare torch.autograd.Function making the same allocations and calling the same
stubs, the least an eager launch path can do.

Two measures of one call of forward + backward (`torch.autograd.grad`):

- counts, never timed: kernel launches, ops through the dispatcher (custom operators among them,
  their bodies counted too), fresh tensors, fills, reductions, host-to-device copies and device
  syncs, seen by a TorchDispatchMode. Take them on the meta device: a device that is not the
  host, as a GPU is, so lengths handed over on the CPU must be copied to it, and a value read
  back from a layer's tensors is a sync (meta refuses it with an error). On the CPU nothing is
  ever a device sync or a copy to the device.
- host time, on CPU tensors: many calls of a step timed together, the steps interleaved round by
  round (suite.sweep.host_time_run runs the rounds and keeps the rows).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch._library import custom_ops
from torch.nn.utils.rnn import pack_sequence
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import kernels.op
import kernels.recurrence
import kernels.scan
import kernels.sequential
from kernels import IndRec, IndRNN
from kernels.common import FLOAT_DTYPES
from kernels.scan import _chunk_counts, scan_config

Size = tuple[int, int, int]  # T, B, H
Step = Callable[[], object]

# The GPU whose launch path the stubs stand for: an H100 or H200 (132 SMs).
GPU_SMS = 132
SCHEDULES = ("sequential", "scan")
_SEQUENTIAL_KERNELS = ("recurrence_fwd_kernel", "recurrence_bwd_kernel")
_SCAN_KERNELS = (
    "scan_fwd_maps_kernel",
    "scan_carry_kernel",
    "scan_fwd_kernel",
    "scan_bwd_maps_kernel",
    "scan_bwd_kernel",
)
# The modules that ask whether Triton can run on a tensor.
_CHECKING_MODULES = (kernels.recurrence, kernels.op)


class _StubKernel:
    """Stands in for a Triton kernel: `kernel[grid](*args, **kwargs)` records the launch and runs nothing."""

    def __init__(self, name: str, launches: list[str]) -> None:
        self.name, self.launches = name, launches

    def __getitem__(self, grid) -> Callable[..., None]:
        return self._launch

    def _launch(self, *args, **kwargs) -> None:
        self.launches.append(self.name)


def _unavailable_as_on_cuda(x: torch.Tensor) -> str | None:
    """What the triton backend's check answers for a CUDA tensor of x's dtype."""
    return None if x.dtype in FLOAT_DTYPES else f"the triton backend does not support {x.dtype}"


def _scan_pays_on_the_gpu(T: int, n_cols: int, device: torch.device) -> bool:
    return kernels.recurrence.scan_pays_on_gpu(T, n_cols, GPU_SMS)


def _scan_config_of_the_gpu(t: torch.Tensor, T: int, n_cols: int, backward: bool) -> kernels.scan.ScanConfig:
    return scan_config(T, n_cols, GPU_SMS, backward)


@contextmanager
def stubbed_launches() -> Iterator[list[str]]:
    """Within: no kernel runs, every launch is appended (the kernel's name) to the list yielded, and
    tensors of any device pass for CUDA tensors on a GPU of GPU_SMS SMs."""
    launches: list[str] = []
    replaced = [(kernels.sequential, name, _StubKernel(name, launches)) for name in _SEQUENTIAL_KERNELS]
    replaced += [(kernels.scan, name, _StubKernel(name, launches)) for name in _SCAN_KERNELS]
    replaced += [(module, "triton_unavailable_reason", _unavailable_as_on_cuda) for module in _CHECKING_MODULES]
    replaced += [
        (kernels.recurrence, "scan_pays", _scan_pays_on_the_gpu),
        (kernels.scan, "_config_for", _scan_config_of_the_gpu),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in replaced]
    try:
        for module, name, value in replaced:
            setattr(module, name, value)
        yield launches
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def auto_schedule(size: Size) -> str:
    """The schedule that schedule="auto" runs for a relu layer of this size on the GPU the stubs stand for."""
    with stubbed_launches():
        return kernels.recurrence.resolve_schedule(torch.empty(size, device="meta"), "relu", "triton", "auto")


# ---------------------------------------------------------------------------- the steps measured


class MinimalRecurrence(torch.autograd.Function):
    """The sequential walk with bias, as lean as an eager launch path can be: the states, dx, the
    per-column partial sums of du and dbias, dh0 and one reduction of the partial sums are all it
    allocates, and it calls the two kernels with the arguments their launchers pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        T, B, H = x.shape
        h = torch.empty_like(x)
        kernels.sequential.recurrence_fwd_kernel[None](
            x, u, bias, u, h, u, T, B * H, H, x.stride(0), x.stride(1), h.stride(0), h.stride(1), T,
            HAS_BIAS=True, HAS_H0=False, HAS_LENGTHS=False, REVERSE=False, ACT=0, enable_fp_fusion=True,
        )  # fmt: skip
        ctx.save_for_backward(h, u)
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, u = ctx.saved_tensors
        T, B, H = h.shape
        dx = torch.empty_like(h)
        cols = torch.empty((2, B, H), dtype=torch.float32, device=h.device)
        dh0 = torch.empty((B, H), dtype=torch.float32, device=h.device)
        kernels.sequential.recurrence_bwd_kernel[None](
            h, dh, u, u, dx, cols[0], cols[1], dh0, u, T, B * H, H, h.stride(0), h.stride(1), dh.stride(0),
            dh.stride(1), T, HAS_H0=False, HAS_LENGTHS=False, REVERSE=False, ACT=0, enable_fp_fusion=True,
        )  # fmt: skip
        du, dbias = cols.sum(1).unbind()
        return dx, du, dbias


class MinimalScan(torch.autograd.Function):
    """The chunked scan with bias, as lean as an eager launch path can be: forward the states, the
    chunk maps and the states entering each chunk; backward dx, dh0, the backward's maps and
    states, the per-chunk partial sums of du and dbias and one reduction of them; three kernels
    each way, cut as the launchers cut them on the GPU the stubs stand for."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        T, B, H = x.shape
        n_cols = B * H
        cfg = scan_config(T, n_cols, GPU_SMS)
        chunks, n_chunks = _chunk_counts(T, cfg)
        h = torch.empty_like(x)
        maps = torch.empty((n_cols, n_chunks, 4), dtype=torch.float32, device=x.device)
        states = torch.empty((n_cols, n_chunks), dtype=torch.float32, device=x.device)
        flags = dict(HAS_BIAS=True, HAS_LENGTHS=False, REVERSE=False)
        meta = dict(BLOCK=cfg.block, CHUNK=cfg.chunk, SUB=cfg.sub, num_warps=cfg.warps, enable_fp_fusion=True)
        kernels.scan.scan_fwd_maps_kernel[None](
            x, u, bias, u, maps, T, n_chunks, n_cols, H, x.stride(0), x.stride(1), **flags, **meta
        )
        kernels.scan.scan_carry_kernel[None](
            maps, u, states, n_chunks, n_cols, HAS_INIT=False, HAS_BOUNDS=True, DESCENDING=False,
            BLOCK=cfg.carry_block, GROUP=cfg.group, num_warps=cfg.carry_warps, enable_fp_fusion=True,
        )  # fmt: skip
        kernels.scan.scan_fwd_kernel[None](
            x, u, bias, states, u, h, T, n_chunks, n_cols, H, x.stride(0), x.stride(1), h.stride(0), h.stride(1),
            **flags, **meta,
        )  # fmt: skip
        ctx.save_for_backward(h, u)
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, u = ctx.saved_tensors
        T, B, H = h.shape
        n_cols = B * H
        cfg = scan_config(T, n_cols, GPU_SMS, backward=True)
        chunks, n_chunks = _chunk_counts(T, cfg)
        dx = torch.empty_like(h)
        dh0 = torch.empty((B, H), dtype=torch.float32, device=h.device)
        maps = torch.empty((n_cols, n_chunks, 2), dtype=torch.float32, device=h.device)
        states = torch.empty((n_cols, n_chunks), dtype=torch.float32, device=h.device)
        parts = torch.empty((2, chunks, B, H), dtype=torch.float32, device=h.device)
        strides = (h.stride(0), h.stride(1), dh.stride(0), dh.stride(1))
        flags = dict(HAS_LENGTHS=False, REVERSE=False)
        meta = dict(BLOCK=cfg.block, CHUNK=cfg.chunk, SUB=cfg.sub, num_warps=cfg.warps, enable_fp_fusion=True)
        kernels.scan.scan_bwd_maps_kernel[None](h, dh, u, u, maps, T, n_chunks, n_cols, H, *strides, **flags, **meta)
        kernels.scan.scan_carry_kernel[None](
            maps, u, states, n_chunks, n_cols, HAS_INIT=False, HAS_BOUNDS=False, DESCENDING=True,
            BLOCK=cfg.carry_block, GROUP=cfg.group, num_warps=cfg.carry_warps, enable_fp_fusion=True,
        )  # fmt: skip
        kernels.scan.scan_bwd_kernel[None](
            h, dh, u, u, states, dx, parts[0], parts[1], dh0, u, T, n_chunks, n_cols, H, *strides, HAS_H0=False,
            **flags, **meta,
        )  # fmt: skip
        du, dbias = parts.sum((1, 2)).unbind()
        return dx, du, dbias


MINIMAL = {"sequential": MinimalRecurrence, "scan": MinimalScan}


def _layer_inputs(size: Size, device: str, batch_norm: bool = False) -> tuple[IndRec, torch.Tensor, torch.Tensor]:
    T, B, H = size
    layer = IndRec(H, bias=True, batch_norm=batch_norm, activation="relu", recurrent_max=1.0).to(device)
    x = torch.randn(T, B, H, device=device, requires_grad=True)
    return layer, x, torch.randn(T, B, H, device=device)


def minimal_step(size: Size, device: str, schedule: str) -> Step:
    """The schedule's minimal Function forward, then the gradients of x, u and bias."""
    layer, x, dh = _layer_inputs(size, device)
    inputs = (x, layer.weight_hh, layer.bias)
    return lambda: torch.autograd.grad(MINIMAL[schedule].apply(*inputs), inputs, dh)


def layer_step(size: Size, device: str, schedule: str, *, packed_batch_norm: bool = False) -> Step:
    """One IndRec through the triton backend, forward then the gradients of x, u and bias; with
    `packed_batch_norm`, BatchNorm over the valid frames of rows of lengths T, T-1, ..., given on
    the layer's device as IndRNN hands them over."""
    layer, x, dh = _layer_inputs(size, device, batch_norm=packed_batch_norm)
    inputs = (x, *layer.parameters())
    T, B, _ = size
    lengths = torch.arange(T, T - B, -1, device=device).clamp_min(1) if packed_batch_norm else None
    return lambda: torch.autograd.grad(layer(x, None, "triton", lengths, False, schedule)[0], inputs, dh)


def network_step(size: Size, device: str, schedule: str, num_layers: int = 2, batch_norm: bool = True) -> Step:
    """An IndRNN of `num_layers` plain layers (with BatchNorm by default) over a PackedSequence
    (rows of lengths T, T-1, ..., sorted so that packing needs no index from the device), forward
    then the gradients of its input and every parameter."""
    T, B, H = size
    model = IndRNN(H, H, num_layers, batch_norm=batch_norm, backend="triton", schedule=schedule).to(device)
    sequences = [torch.randn(max(T - b, 1), H, device=device) for b in range(B)]
    packed = pack_sequence([s.requires_grad_() for s in sequences])
    inputs = (packed.data, *model.parameters())
    d_out = torch.randn(packed.data.shape[0], H, device=device)
    return lambda: torch.autograd.grad(model(packed)[0].data, inputs, d_out)


# Every step by name: (size, device, schedule) -> Step. "minimal" is the yardstick of "indrec".
STEPS: dict[str, Callable[[Size, str, str], Step]] = {
    "minimal": minimal_step,
    "indrec": layer_step,
    "indrec_packed_bn": partial(layer_step, packed_batch_norm=True),
    "indrnn_2_layers_packed_bn": network_step,
}


# ---------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class CallCounts:
    """What one call did. `syncs`: host waits for the device (a value read back, an output whose
    size depends on values, a copy to the host, a blocking copy to the device)."""

    launches: int
    dispatched_ops: int
    custom_ops: int
    fresh_tensors: int
    fills: int
    reductions: int
    host_to_device: int
    syncs: int


FILLS = {"zeros", "zeros_like", "new_zeros", "zero_", "fill_", "full", "full_like", "new_full"}
REDUCTIONS = {"sum", "mean", "var", "var_mean", "std", "std_mean", "amax", "amin", "prod", "linalg_vector_norm"}
SCALAR_READS = {"_local_scalar_dense", "item", "is_nonzero", "equal"}
VALUE_SHAPED = {"nonzero", "masked_select", "_unique", "_unique2", "unique_dim", "unique_consecutive"}


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = self.custom = self.fresh = self.fills = self.reductions = self.host_to_device = self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        tensors = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        on_device = bool(tensors) and tensors[0].device.type != "cpu"
        self.ops += 1
        self.custom += func.namespace != "aten"
        self.fills += name in FILLS
        self.reductions += name in REDUCTIONS
        if on_device and (name in SCALAR_READS or name in VALUE_SHAPED):
            self.syncs += 1  # counted before the call: meta tensors refuse it
        if (
            on_device
            and name == "index"
            and any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in args[1])
        ):
            self.syncs += 1  # a boolean mask: the output's size is the mask's count
        opdef = custom_ops.OPDEFS.get(f"{func.namespace}::{func._opname}")
        if opdef is None:
            out = func(*args, **kwargs)
        else:  # a custom operator written in Python: count what its body does, as if it were inlined
            with self:
                out = opdef._init_fn(*args, **kwargs)
        for ret, value in zip(func._schema.returns, out if isinstance(out, tuple) else (out,), strict=False):
            if ret.alias_info is None:
                self.fresh += sum(isinstance(t, torch.Tensor) for t in tree_leaves(value))
        if name in ("_to_copy", "copy_"):
            src, dst = (args[0], out) if name == "_to_copy" else (args[1], args[0])
            blocking = not kwargs.get("non_blocking", args[2] if name == "copy_" and len(args) > 2 else False)
            if src.device.type == "cpu" and dst.device.type != "cpu":
                self.host_to_device += 1
                self.syncs += blocking
            elif src.device.type != "cpu" and dst.device.type == "cpu":
                self.syncs += 1
        return out


def count_call(step: Step) -> CallCounts:
    """The counts of one call of `step`, after one call that warms caches up."""
    with stubbed_launches() as launches:
        step()
        launches.clear()
        with _OpCounter() as ops:
            step()
    return CallCounts(
        launches=len(launches),
        dispatched_ops=ops.ops,
        custom_ops=ops.custom,
        fresh_tensors=ops.fresh,
        fills=ops.fills,
        reductions=ops.reductions,
        host_to_device=ops.host_to_device,
        syncs=ops.syncs,
    )


def timed_call(step: Step, calls: int) -> float:
    """Seconds per call of `step` over `calls` calls in a row, the garbage collector off; the launches
    must be stubbed (`stubbed_launches`)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            step()
        return (time.perf_counter() - start) / calls
    finally:
        if gc_was_enabled:
            gc.enable()
