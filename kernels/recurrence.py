"""The public IndRNN recurrence: input checks, the choice of backend and schedule, and the call.

    h_t = act(x_t + u * h_{t-1} + bias),    x: (T, B, H),  u, bias: (H,),  h0: (B, H)

Two schedules compute it: the sequential walk over time (Triton kernels in kernels/sequential.py,
the eager loop of kernels/loop.py) and, for relu, the chunked scan that is parallel in time
(kernels/scan.py, both backends). The Triton kernels are reached through kernels/op.py: a plain
autograd.Function in eager calls, the custom operators that torch.compile traces while it
compiles. The reference is the plain loop of kernels/reference.py.
"""

from __future__ import annotations

import torch

from kernels.common import ACT_CODES, triton_unavailable_reason
from kernels.loop import recurrence_loop
from kernels.op import triton_recurrence
from kernels.reference import ACTIVATIONS, last_state, recurrence_reference
from kernels.scan import recurrence_chunked

BACKENDS = ("auto", "triton", "torch", "reference")
SCHEDULES = ("auto", "sequential", "scan")

# The rule of schedule="auto" (relu only). The walk is worth parallelising in time from
# SCAN_MIN_STEPS dependent steps, which outweigh the scan's two extra launches. On a GPU the
# sequential kernels give a column to a thread, so B*H columns are B*H/32 warps: the scan is taken
# while that is fewer than FILL_WARPS_PER_SM warps per SM, too few to hide memory latency. On a CPU
# the torch loop spends two ops per step on (B, H) slices, the chunked form about 7 ops per sqrt(T)
# steps on (sqrt(T), B, H) ones: a win while the slices are small enough that an op costs its
# dispatch, not its arithmetic. Timed on a 2-core Xeon with one thread at T = 1024 (forward, and
# forward with backward), the chunked form won at 128 to 1024 columns and broke even near 2048.
SCAN_MIN_STEPS = 256
FILL_WARPS_PER_SM = 4
CPU_SCAN_MAX_COLUMNS = 1024


def _check_inputs(x, u, h0, bias, activation, backend, schedule) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (T, B, H), got {x.dim()} dimensions {tuple(x.shape)}")
    T, B, H = x.shape
    named = {"x": x, "u": u, "h0": h0, "bias": bias}
    shapes = {"u": (H,), "h0": (B, H), "bias": (H,)}
    for name, t in named.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
        if name in shapes and tuple(t.shape) != shapes[name]:
            raise ValueError(
                f"{name} must have shape {shapes[name]} for x of shape {tuple(x.shape)}, got {tuple(t.shape)}"
            )
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_schedule(schedule, activation)


def check_schedule(schedule: str, activation: str) -> None:
    """Raise unless `schedule` is one of SCHEDULES and can compute `activation`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "scan" and activation != "relu":
        raise ValueError(f"schedule='scan' needs activation='relu' ({activation} is not piecewise linear)")


def resolve_backend(x: torch.Tensor, backend: str) -> str:
    """Turn "auto" into "triton" or "torch" for this input; raise if "triton" cannot run."""
    reason = triton_unavailable_reason(x)
    if backend == "auto":
        return "torch" if reason else "triton"
    if backend == "triton" and reason:
        raise RuntimeError(f"backend='triton' cannot run: {reason}")
    return backend


def scan_pays(T: int, n_cols: int, device: torch.device) -> bool:
    """The auto rule for a relu recurrence of T steps over n_cols = B*H columns on `device`: the
    walk is long (T >= SCAN_MIN_STEPS) and its columns cannot fill the device (on CUDA fewer than
    FILL_WARPS_PER_SM warps of 32 columns per SM, elsewhere at most CPU_SCAN_MAX_COLUMNS)."""
    if device.type == "cuda":
        return scan_pays_on_gpu(T, n_cols, torch.cuda.get_device_properties(device).multi_processor_count)
    return T >= SCAN_MIN_STEPS and n_cols <= CPU_SCAN_MAX_COLUMNS


def scan_pays_on_gpu(T: int, n_cols: int, n_sm: int) -> bool:
    """The auto rule on a GPU of n_sm SMs (see `scan_pays`), which can be asked without one."""
    return T >= SCAN_MIN_STEPS and n_cols < FILL_WARPS_PER_SM * 32 * n_sm


def resolve_schedule(x: torch.Tensor, activation: str = "relu", backend: str = "auto", schedule: str = "auto") -> str:
    """The schedule, "sequential" or "scan", that `indrnn_recurrence(x, ..., activation=activation,
    backend=backend, schedule=schedule)` runs; raise if "scan" cannot. tanh always walks (it is not
    piecewise linear), and so does the reference (it is the definition)."""
    check_schedule(schedule, activation)
    backend = resolve_backend(x, backend)
    if schedule == "scan":
        if backend == "reference":
            raise ValueError("schedule='scan' runs on the triton and torch backends; the reference is the plain loop")
        return "scan"
    if schedule == "sequential" or activation != "relu" or backend == "reference":
        return "sequential"
    T, B, H = x.shape
    return "scan" if scan_pays(T, B * H, x.device) else "sequential"


def _check_lengths(lengths: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """lengths as (B,) int64 on x's device, checked: every row runs 1..T steps."""
    if lengths is None:
        return None
    T, B, _ = x.shape
    if not isinstance(lengths, torch.Tensor) or lengths.dtype.is_floating_point or lengths.dtype.is_complex:
        raise TypeError(
            f"lengths must be an integer torch.Tensor or None, got {getattr(lengths, 'dtype', type(lengths))}"
        )
    if tuple(lengths.shape) != (B,):
        raise ValueError(f"lengths must have shape ({B},) for x of shape {tuple(x.shape)}, got {tuple(lengths.shape)}")
    # Values are checked where that costs no wait: on the CPU, outside a compiled graph.
    checkable = lengths.device.type == "cpu" and B > 0 and not torch.compiler.is_compiling()
    if checkable and not (1 <= int(lengths.min()) and int(lengths.max()) <= T):
        raise ValueError(f"lengths must lie in [1, T={T}], got values in [{int(lengths.min())}, {int(lengths.max())}]")
    return lengths.to(device=x.device, dtype=torch.int64)


def indrnn_recurrence(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
    backend: str = "auto",
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    schedule: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The IndRNN recurrence h_t = act(x_t + u * h_{t-1} + bias) over all t.

    Args:
        x: (T, B, H) pre-activation inputs (the projection W x_t), fp32 / fp16 / bf16, any strides
            (the triton backend reads any time and batch strides in place, e.g. a batch-first
            tensor viewed time first).
        u: (H,) recurrent weights (one per neuron).
        h0: (B, H) initial state, or None for zeros.
        bias: (H,) bias, or None.
        activation: "relu" or "tanh".
        backend: "triton" (the kernels, through kernels/op.py), "torch"
            (eager PyTorch loops with a hand-written backward, kernels/loop.py), "auto" (triton
            where it can run, else torch) or "reference" (the plain loop of kernels/reference.py,
            differentiated by autograd: the definition, and what torch.compile is given in the
            benchmarks).
        lengths: (B,) integer steps of each sequence, in [1, T], or None for T each. Row b runs
            steps t < lengths[b] only: later steps leave its state alone, output 0 and get no
            gradient.
        reverse: walk time backwards, t = T-1 .. 0 (each row from its own last step): the
            backward direction of a bidirectional layer. h keeps time order.
        schedule: "sequential" (walk time step by step), "scan" (relu only: the chunked scan of
            kernels/scan.py, parallel in time, equal to the walk up to fp32 rounding) or "auto"
            (the scan where the walk is long and its columns cannot fill the device: see
            `scan_pays`; `resolve_schedule` says which runs).

    Returns:
        h: (T, B, H) every state, in x's dtype (with the triton backend, in x's memory order).
        h_last: (B, H) the final state: h at each row's last step (t = 0 with reverse); h0, or
        zeros, when T = 0. Gradients flow into x, u, h0 and bias from both outputs.
    """
    _check_inputs(x, u, h0, bias, activation, backend, schedule)
    lengths = _check_lengths(lengths, x)
    T, B, H = x.shape
    if T == 0:
        h_last = x.new_zeros((B, H)) if h0 is None else h0.to(x.dtype)
        return x.new_empty((0, B, H)), h_last
    scan = resolve_schedule(x, activation, backend, schedule) == "scan"
    backend = resolve_backend(x, backend)
    if backend == "reference":
        return recurrence_reference(x, u, h0, bias, activation, lengths=lengths, reverse=reverse)
    if backend == "torch" and scan:
        return recurrence_chunked(x, u, h0, bias, lengths=lengths, reverse=reverse)
    if backend == "torch":
        return recurrence_loop(x, u, h0, bias, activation, lengths=lengths, reverse=reverse)
    h = triton_recurrence(x, u, h0, bias, lengths, ACT_CODES[activation], reverse, scan)
    return h, last_state(h, lengths, reverse)
