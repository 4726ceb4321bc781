"""Host time of one IndRNN layer's forward + backward, with the Triton launches stubbed out.

At the paper's size (T=1024, B=32, H=128) the kernels of one layer run for tens of microseconds
on a GPU, so an eager training step is bound by the host unless the launch path is lean. This
measures that path on any machine. The kernel objects the launchers call are replaced by a stub
whose `[grid](...)` records the launch and runs nothing, and the check whether Triton can run
gives the answer it gives for a CUDA tensor, so tensors of any device take the path CUDA tensors
take and allocate what they allocate. The yardstick is `MinimalRecurrence`: a bare
torch.autograd.Function making the same allocations and calling the same stubs, the least an
eager launch path can do.

Two measures of one call of forward + backward (`torch.autograd.grad`):

- counts, never timed: kernel launches, ops through the dispatcher (custom operators among them,
  their bodies counted too), fresh tensors, fills, reductions, host-to-device copies and device
  syncs, seen by a TorchDispatchMode. Take them on the meta device: a device that is not the
  host, as a GPU is, so lengths handed over on the CPU must be copied to it, and a value read
  back from a layer's tensors is a sync (meta refuses it with an error). On the CPU nothing is
  ever a device sync or a copy to the device.
- host time, on CPU tensors: rounds of many calls of each step, the steps interleaved, and the
  median over rounds of the time per call. Set OMP_NUM_THREADS=1 for steady figures:

      OMP_NUM_THREADS=1 python -m suite.sweep.host_time
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch._library import custom_ops
from torch.nn.utils.rnn import pack_sequence
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import kernels.op
import kernels.recurrence
import kernels.sequential
from kernels import IndRec, IndRNN
from kernels.common import FLOAT_DTYPES

PAPER_SIZE = (1024, 32, 128)  # T, B, H of the paper's Fig. 2
SMALL_SIZE = (16, 4, 32)
Step = Callable[[], object]

# The modules that ask whether Triton can run on a tensor, and the kernels the launchers call.
_CHECKING_MODULES = (kernels.recurrence, kernels.op)
_KERNELS = ("recurrence_fwd_kernel", "recurrence_bwd_kernel")


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


@contextmanager
def stubbed_launches() -> Iterator[list[str]]:
    """Within: no kernel runs, every launch is appended (the kernel's name) to the list yielded, and
    tensors of any device pass for CUDA tensors."""
    launches: list[str] = []
    saved = [(kernels.sequential, name, getattr(kernels.sequential, name)) for name in _KERNELS]
    saved += [(module, "triton_unavailable_reason", module.triton_unavailable_reason) for module in _CHECKING_MODULES]
    try:
        for name in _KERNELS:
            setattr(kernels.sequential, name, _StubKernel(name, launches))
        for module in _CHECKING_MODULES:
            module.triton_unavailable_reason = _unavailable_as_on_cuda
        yield launches
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


# ---------------------------------------------------------------------------- the steps measured


class MinimalRecurrence(torch.autograd.Function):
    """The recurrence with bias, as lean as an eager launch path can be: the states, dx, the
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


def _layer_inputs(
    size: tuple[int, int, int], device: str, batch_norm: bool = False
) -> tuple[IndRec, torch.Tensor, torch.Tensor]:
    T, B, H = size
    layer = IndRec(H, bias=True, batch_norm=batch_norm, activation="relu", recurrent_max=1.0).to(device)
    x = torch.randn(T, B, H, device=device, requires_grad=True)
    return layer, x, torch.randn(T, B, H, device=device)


def minimal_step(size: tuple[int, int, int], device: str) -> Step:
    """`MinimalRecurrence` forward, then the gradients of x, u and bias."""
    layer, x, dh = _layer_inputs(size, device)
    inputs = (x, layer.weight_hh, layer.bias)
    return lambda: torch.autograd.grad(MinimalRecurrence.apply(*inputs), inputs, dh)


def layer_step(size: tuple[int, int, int], device: str, *, packed_batch_norm: bool = False) -> Step:
    """One IndRec through the triton backend, forward then the gradients of x, u and bias; with
    `packed_batch_norm`, BatchNorm over the valid frames of rows of lengths T, T-1, ..., given on
    the layer's device as IndRNN hands them over."""
    layer, x, dh = _layer_inputs(size, device, batch_norm=packed_batch_norm)
    inputs = (x, *layer.parameters())
    T, B, _ = size
    lengths = torch.arange(T, T - B, -1, device=device).clamp_min(1) if packed_batch_norm else None
    return lambda: torch.autograd.grad(layer(x, None, "triton", lengths)[0], inputs, dh)


def network_step(size: tuple[int, int, int], device: str, num_layers: int = 2, batch_norm: bool = True) -> Step:
    """An IndRNN of `num_layers` plain layers (with BatchNorm by default) over a PackedSequence
    (rows of lengths T, T-1, ..., sorted so that packing needs no index from the device), forward
    then the gradients of its input and every parameter."""
    T, B, H = size
    model = IndRNN(H, H, num_layers, batch_norm=batch_norm, backend="triton").to(device)
    sequences = [torch.randn(max(T - b, 1), H, device=device) for b in range(B)]
    packed = pack_sequence([s.requires_grad_() for s in sequences])
    inputs = (packed.data, *model.parameters())
    d_out = torch.randn(packed.data.shape[0], H, device=device)
    return lambda: torch.autograd.grad(model(packed)[0].data, inputs, d_out)


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


def step_counts(device: str = "meta") -> dict[str, CallCounts]:
    """Counts of the minimal step, one IndRec (plain, and with packed BatchNorm) and a 2-layer
    packed IndRNN with BatchNorm, at a small size (counts do not depend on it)."""
    steps = {
        "minimal": minimal_step(SMALL_SIZE, device),
        "indrec": layer_step(SMALL_SIZE, device),
        "indrec_packed_bn": layer_step(SMALL_SIZE, device, packed_batch_norm=True),
        "indrnn_2_layers_packed_bn": network_step(SMALL_SIZE, device),
    }
    return {name: count_call(step) for name, step in steps.items()}


# ---------------------------------------------------------------------------- host time


def interleaved_medians(steps: dict[str, Step], calls: int, rounds: int) -> dict[str, float]:
    """Median over `rounds` of each step's mean seconds per call over `calls` calls. Within a round
    the steps run one after the other, in alternating order from round to round, so that drifts of
    the machine fall on all of them; the garbage collector is off while timing."""
    with stubbed_launches():
        for step in steps.values():
            step()
        seconds: dict[str, list[float]] = {name: [] for name in steps}
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for r in range(rounds):
                for name in list(steps) if r % 2 == 0 else list(reversed(steps)):
                    step = steps[name]
                    start = time.perf_counter()
                    for _ in range(calls):
                        step()
                    seconds[name].append((time.perf_counter() - start) / calls)
        finally:
            if gc_was_enabled:
                gc.enable()
    return {name: statistics.median(values) for name, values in seconds.items()}


@dataclass(frozen=True)
class HostTime:
    """Host microseconds per forward + backward of one IndRec and of the minimal Function."""

    size: tuple[int, int, int]
    layer_us: float
    minimal_us: float
    threads: int

    @property
    def ratio(self) -> float:
        return self.layer_us / self.minimal_us


def host_times(
    sizes: tuple[tuple[int, int, int], ...] = (PAPER_SIZE, SMALL_SIZE), calls: int = 200, rounds: int = 25
) -> list[HostTime]:
    """The layer's and the minimal step's host time at each size, on CPU tensors."""
    results = []
    for size in sizes:
        steps = {"layer": layer_step(size, "cpu"), "minimal": minimal_step(size, "cpu")}
        medians = interleaved_medians(steps, calls, rounds)
        results.append(HostTime(size, 1e6 * medians["layer"], 1e6 * medians["minimal"], torch.get_num_threads()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per step per round (default 200)")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (default 25)")
    args = parser.parse_args()
    print("per call of forward + backward, launches stubbed; counts on the meta device:")
    for name, counts in step_counts().items():
        print(f"  {name:28s} " + " ".join(f"{k}={v}" for k, v in asdict(counts).items()))
    print(f"host time, CPU tensors, median of {args.rounds} rounds x {args.calls} calls:")
    for row in host_times(calls=args.calls, rounds=args.rounds):
        T, B, H = row.size
        print(
            f"  T={T} B={B} H={H}: IndRec {row.layer_us:.1f} us, minimal {row.minimal_us:.1f} us, "
            f"ratio {row.ratio:.2f} ({row.threads} thread(s))"
        )


if __name__ == "__main__":
    main()
