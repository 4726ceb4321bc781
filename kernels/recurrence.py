"""The IndRNN recurrence in Triton: forward and backward kernels, launchers, autograd, public API.

    h_t = act(x_t + u * h_{t-1} + bias),    x: (T, B, H),  u, bias: (H,),  h0: (B, H)

`x` is the input projection `W x_t` for every step, already computed by one GEMM. What is
left is elementwise and sequential in time only, so the B*H columns are independent: a
program owns BLOCK consecutive columns of the (B, H) plane and walks time. The walk is a
dependent chain (one fma and the activation per step); to keep it bound by bandwidth rather
than load latency, time is cut into chunks of CHUNK steps and each iteration issues the loads
of the chunk STAGES - 1 ahead (they do not depend on the state) before it runs the CHUNK
dependent steps of the current one from registers. State and arithmetic are fp32; storage is
x's dtype.

Backward walks time in reverse with the same chunking. It recomputes the activation
derivative from the stored h (relu: h > 0; tanh: 1 - h^2), so the forward keeps nothing
but h. du and dbias are per-column fp32 sums written by each program to its own slots and
reduced over the batch afterwards by a plain (deterministic) sum: no float atomics, so two
backward passes on the same input give bit-identical gradients.
"""

from __future__ import annotations

import os
import re

import torch
import triton
import triton.language as tl

from kernels.loop import recurrence_loop
from kernels.reference import ACTIVATIONS, recurrence_reference

BACKENDS = ("auto", "triton", "torch", "reference")
ACT_CODES = {"relu": 0, "tanh": 1}
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreter_enabled() -> bool:
    """True when Triton kernels run through the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# One switch for both kernels: the autotuner searches their config spaces on a GPU unless the
# interpreter runs them or INDRNN_AUTOTUNE=0 asks for correctness only (one config, no tuning).
AUTOTUNE = not interpreter_enabled() and os.environ.get("INDRNN_AUTOTUNE", "1") != "0"


# The autotune space, per direction: (BLOCK, num_warps) -> the (CHUNK, STAGES) pairs tried with it.
# A load is issued (STAGES - 1) * CHUNK steps before its step runs, and every loaded value waits
# in a register: STAGES * CHUNK * BLOCK / (32 * num_warps) of them per thread in the forward,
# twice that in the backward (dh and h). Large sizes have programs enough to hide latency by
# occupancy, so two stages of a short chunk serve them. The paper's size (T=1024, B=32, H=128:
# 4096 columns, 128 one-warp programs of BLOCK 32) has one warp per SM, whose loads must be
# issued tens of steps ahead to cover ~1 us of latency after an L2 flush: deep pipelines at one
# value per thread. CHUNK stays <= 16 (compile time grows faster than linearly with the loads in
# a loop body); depth comes from stages, which cost registers only.
SPACE = {
    "fwd": {
        (32, 1): ((16, 2), (16, 4), (16, 6), (16, 8)),
        (64, 1): ((8, 2), (16, 3)),
        **{bw: ((4, 2), (8, 2), (16, 2)) for bw in ((128, 1), (256, 2), (512, 4), (1024, 8))},
        (1024, 4): ((4, 2), (8, 2)),  # 8 values a thread: a chunk of 16 spills
    },
    "bwd": {
        (32, 1): ((8, 2), (16, 3), (16, 5)),
        (64, 1): ((8, 2), (8, 3)),
        **{bw: ((4, 2), (8, 2)) for bw in ((128, 1), (256, 2), (512, 4), (1024, 8))},
        (1024, 4): ((4, 2),),  # 8 values a thread: a chunk of 8 spills
    },
}
# The configs meant for the paper's size: loads issued 80 (forward) and 64 (backward) steps
# ahead, about 1 us at 15 ns a step; 127 and 202 registers, no spills (sm_90, fp32).
PAPER_SIZE_CONFIGS = {
    "fwd": {"BLOCK": 32, "CHUNK": 16, "STAGES": 6, "num_warps": 1},
    "bwd": {"BLOCK": 32, "CHUNK": 16, "STAGES": 5, "num_warps": 1},
}


def autotune_configs(single: bool, backward: bool = False) -> list[triton.Config]:
    """The space the GPU autotuner searches (SPACE), or with `single` exactly one config: the
    interpreter takes no more, and correctness-only runs (INDRNN_AUTOTUNE=0, as `validate` runs
    the tests) should not spend minutes tuning every shape they touch."""
    if single:
        return [triton.Config({"BLOCK": 128, "CHUNK": 4, "STAGES": 2}, num_warps=4)]
    return [
        triton.Config({"BLOCK": block, "CHUNK": chunk, "STAGES": stages}, num_warps=warps)
        for (block, warps), depths in SPACE["bwd" if backward else "fwd"].items()
        for chunk, stages in depths
    ]


def time_bucket(T: int) -> int:
    """T rounded up to a power of two (at most 2^14): an autotune key, so that the best chunk
    depth is chosen per range of sequence lengths without a recompile per length."""
    return 1 << min(max(T - 1, 0).bit_length(), 14)


@triton.jit
def _activate(a, ACT: tl.constexpr):
    if ACT == 0:
        return tl.maximum(a, 0.0, propagate_nan=tl.PropagateNan.ALL)  # a NaN stays NaN, as in torch
    # tanh(a) = 1 - 2 / (exp(2a) + 1): finite at both ends, no libdevice needed.
    return 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)


@triton.jit
def _activation_grad(h, ACT: tl.constexpr):
    """d act / d a, recomputed from the output h = act(a)."""
    if ACT == 0:
        return tl.where(h > 0.0, 1.0, 0.0)
    return 1.0 - h * h


@triton.jit
def _step(b_x, b_u, b_h, b_bias, HAS_BIAS: tl.constexpr, ACT: tl.constexpr):
    """One forward step, h_t = act(x_t + bias + u * h_{t-1}). Only the fma and the activation wait
    for h_{t-1} (FFMA -> FMNMX for relu): x_t + bias is added off that dependent chain."""
    b_a = b_x.to(tl.float32)
    if HAS_BIAS:
        b_a += b_bias
    return _activate(tl.fma(b_u, b_h, b_a), ACT)


@triton.jit
def _back_step(b_dh, b_h, b_u, b_da, ACT: tl.constexpr):
    """One backward step: da_t = g_t * (dh_t + u * da_{t+1}) with g_t = act'(a_t) from h_t, as
    g_t * dh_t + (g_t * u) * da_{t+1}: both products are off the dependent chain, which is
    one fma per step."""
    b_g = _activation_grad(b_h, ACT)
    return tl.fma(b_g * b_u, b_da, b_g * b_dh.to(tl.float32))


@triton.jit
def _load_steps(p, o_col, t_first, dt, stride, T, mask, CHUNK: tl.constexpr):
    """The planes of steps t_first, t_first + dt, ..., CHUNK of them (dt is 1 or -1), as a tuple,
    issued back to back so that all CHUNK loads are in flight at once. A step outside [0, T)
    reads as 0 and touches no memory."""
    b_xs = ()
    for i in tl.static_range(CHUNK):
        t = t_first + i * dt
        m_step = tl.where((t >= 0) & (t < T), mask, False)  # not `mask & scalar`: the interpreter rejects it
        b_xs = b_xs + (tl.load(p + t * stride + o_col, mask=m_step, other=0.0),)
    return b_xs


@triton.jit
def _zero_chunk(BLOCK: tl.constexpr, dtype: tl.constexpr, CHUNK: tl.constexpr):
    """A chunk of zero planes: what a pipeline stage holds before its first loads."""
    b_zero = tl.zeros([BLOCK], dtype=dtype)
    b_chunk = ()
    for _ in tl.static_range(CHUNK):
        b_chunk = b_chunk + (b_zero,)
    return b_chunk


@triton.autotune(configs=autotune_configs(single=not AUTOTUNE), key=["n_cols", "t_bucket", "HAS_BIAS", "HAS_H0", "ACT"])
@triton.jit(do_not_specialize=["T", "t_bucket"])
def recurrence_fwd_kernel(
    p_x,  # (T, B, H) input projections; the (B, H) plane contiguous, time stride stride_t
    p_u,  # (H,) fp32 recurrent weights
    p_bias,  # (H,) fp32 bias (unused unless HAS_BIAS)
    p_h0,  # (B*H,) fp32 initial state (unused unless HAS_H0)
    p_h,  # (T, B, H) contiguous output states, x's dtype
    T,  # number of time steps: a runtime value, never specialised, so no recompile per length
    n_cols,  # B * H
    H,  # hidden size, to find each column's neuron
    stride_t,  # elements between x_t and x_{t+1}
    t_bucket,  # time_bucket(T): only an autotune key
    HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr,
    ACT: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    o_col = pid * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    o_neuron = o_col % H
    b_u = tl.load(p_u + o_neuron, mask=m_col, other=0.0)
    b_bias = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_neuron, mask=m_col, other=0.0)
    b_h = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_H0:
        b_h = tl.load(p_h0 + o_col, mask=m_col, other=0.0)

    # Offsets of step t are t * stride + column in int64: more than 2^31 elements are fine.
    stride_x = tl.cast(stride_t, tl.int64)
    stride_h = tl.cast(n_cols, tl.int64)
    # Software pipeline: the loads of the next STAGES - 1 chunks are in flight while the dependent
    # chain of this one runs, so a load has (STAGES - 1) * CHUNK steps to arrive. The loop starts
    # STAGES - 1 chunks early, loading only, so each load appears once in the code (compile time
    # grows fast with the number of loads). Time is walked in whole chunks: the steps of the last
    # one at or past T load nothing and store nothing (their state is never read), so a T that is
    # not a multiple of CHUNK costs no unpipelined tail.
    b_ahead = ()
    for _ in tl.static_range(STAGES - 1):
        b_ahead = b_ahead + (_zero_chunk(BLOCK, p_x.dtype.element_ty, CHUNK),)
    for t0 in range(-(STAGES - 1) * CHUNK, T, CHUNK):
        b_ahead = b_ahead + (_load_steps(p_x, o_col, t0 + (STAGES - 1) * CHUNK, 1, stride_x, T, m_col, CHUNK),)
        if t0 >= 0:
            b_xs = b_ahead[0]
            for i in tl.static_range(CHUNK):
                b_h = _step(b_xs[i], b_u, b_h, b_bias, HAS_BIAS, ACT)
                m_step = tl.where(t0 + i < T, m_col, False)
                tl.store(p_h + (t0 + i) * stride_h + o_col, b_h.to(p_h.dtype.element_ty), mask=m_step)
        b_ahead = b_ahead[1:]


@triton.autotune(
    configs=autotune_configs(single=not AUTOTUNE, backward=True), key=["n_cols", "t_bucket", "HAS_H0", "ACT"]
)
@triton.jit(do_not_specialize=["T", "t_bucket"])
def recurrence_bwd_kernel(
    p_h,  # (T, B, H) contiguous forward states
    p_dh,  # (T, B, H) contiguous gradient w.r.t. h (gradient into h_last already added)
    p_u,  # (H,) fp32 recurrent weights
    p_h0,  # (B*H,) fp32 initial state (unused unless HAS_H0)
    p_dx,  # (T, B, H) contiguous output: gradient w.r.t. x, x's dtype
    p_du_cols,  # (B*H,) fp32 output: per-column sum over t of da_t * h_{t-1}
    p_db_cols,  # (B*H,) fp32 output: per-column sum over t of da_t
    p_dh0,  # (B*H,) fp32 output: gradient w.r.t. h0
    T,  # number of time steps, at least 1
    n_cols,  # B * H
    H,  # hidden size
    t_bucket,  # time_bucket(T): only an autotune key
    HAS_H0: tl.constexpr,
    ACT: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    o_col = pid * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    b_u = tl.load(p_u + o_col % H, mask=m_col, other=0.0)
    b_da = tl.zeros([BLOCK], dtype=tl.float32)  # da_{t+1}; u * da_{t+1} is what reaches h_t from step t+1
    b_du = tl.zeros([BLOCK], dtype=tl.float32)
    b_db = tl.zeros([BLOCK], dtype=tl.float32)

    # Walk t = T-1 .. 0. Step t needs h_t, h_{t-1} and dh_t; h_{t-1} is the next step's h_t,
    # so it is carried. h_{-1} reads as 0 here; the h0 term of du is added at the end.
    # Time is walked down in whole chunks, the first one topped up above T-1 with steps that load
    # nothing (dh = 0, so their da stays 0) and store nothing. Chunk t0 covers steps t0, t0-1, ...,
    # t0-CHUNK+1. As in the forward, the next chunk's loads are issued before this chunk's chain runs.
    stride_h = tl.cast(n_cols, tl.int64)
    t_top = tl.cdiv(T, CHUNK) * CHUNK - 1
    b_h = tl.load(p_h + t_top * stride_h + o_col, mask=tl.where(t_top < T, m_col, False), other=0.0)
    b_h = b_h.to(tl.float32)
    # (dh, h_{t-1}) of the next STAGES - 1 chunks are in flight, started early as in the forward.
    b_ahead = ()
    for _ in tl.static_range(STAGES - 1):
        b_empty = _zero_chunk(BLOCK, p_h.dtype.element_ty, CHUNK)
        b_ahead = b_ahead + ((b_empty, b_empty),)
    for t0 in range(t_top + (STAGES - 1) * CHUNK, -1, -CHUNK):
        t_s = t0 - (STAGES - 1) * CHUNK
        b_dhs = _load_steps(p_dh, o_col, t_s, -1, stride_h, T, m_col, CHUNK)
        b_ahead = b_ahead + ((b_dhs, _load_steps(p_h, o_col, t_s - 1, -1, stride_h, T, m_col, CHUNK)),)
        if t0 <= t_top:
            b_dhs, b_prevs = b_ahead[0]
            for i in tl.static_range(CHUNK):
                b_prev = b_prevs[i].to(tl.float32)
                b_da = _back_step(b_dhs[i], b_h, b_u, b_da, ACT)
                m_step = tl.where(t0 - i < T, m_col, False)
                tl.store(p_dx + (t0 - i) * stride_h + o_col, b_da.to(p_dx.dtype.element_ty), mask=m_step)
                b_du += b_da * b_prev
                b_db += b_da
                b_h = b_prev
        b_ahead = b_ahead[1:]

    # b_da is now da_0, the step whose previous state is h0.
    if HAS_H0:
        b_du += b_da * tl.load(p_h0 + o_col, mask=m_col, other=0.0)
    tl.store(p_du_cols + o_col, b_du, mask=m_col)
    tl.store(p_db_cols + o_col, b_db, mask=m_col)
    tl.store(p_dh0 + o_col, b_u * b_da, mask=m_col)


# Launches pin enable_fp_fusion=True (triton's default through 3.9, announced to flip in 3.10),
# so they compile the code that the tests and `kernel-report` check (kernels/aot.py pins it too).
def _grid(meta: dict) -> tuple[int]:
    return (triton.cdiv(meta["n_cols"], meta["BLOCK"]),)


def recurrence_fwd(
    x: torch.Tensor, u: torch.Tensor, h0: torch.Tensor | None, bias: torch.Tensor | None, act: int
) -> torch.Tensor:
    """Launch the forward kernel; x must have a contiguous (B, H) plane. Returns h (T, B, H)."""
    T, B, H = x.shape
    h = torch.empty((T, B, H), dtype=x.dtype, device=x.device)
    if T == 0 or B * H == 0:
        return h
    recurrence_fwd_kernel[_grid](
        x, u, u if bias is None else bias, u if h0 is None else h0, h,
        T, B * H, H, x.stride(0), time_bucket(T),
        HAS_BIAS=bias is not None, HAS_H0=h0 is not None, ACT=act, enable_fp_fusion=True,
    )  # fmt: skip
    return h


def recurrence_bwd(
    h: torch.Tensor, dh: torch.Tensor, u: torch.Tensor, h0: torch.Tensor | None, act: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernel. Returns dx (T, B, H), du (H,), dbias (H,), dh0 (B, H) in fp32
    (dx in h's dtype)."""
    T, B, H = h.shape
    dx = torch.empty_like(h)
    cols = torch.zeros((3, B, H), dtype=torch.float32, device=h.device)
    du_cols, db_cols, dh0 = cols[0], cols[1], cols[2]
    if T > 0 and B * H > 0:
        recurrence_bwd_kernel[_grid](
            h, dh, u, u if h0 is None else h0, dx, du_cols, db_cols, dh0,
            T, B * H, H, time_bucket(T),
            HAS_H0=h0 is not None, ACT=act, enable_fp_fusion=True,
        )  # fmt: skip
    return dx, du_cols.sum(0), db_cols.sum(0), dh0


class _RecurrenceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, u, h0, bias, act):
        u32 = u.detach().float().contiguous()
        h0_32 = None if h0 is None else h0.detach().float().contiguous()
        b32 = None if bias is None else bias.detach().float().contiguous()
        h = recurrence_fwd(x, u32, h0_32, b32, act)
        ctx.save_for_backward(h, u32, h0_32)
        ctx.act = act
        ctx.dtypes = (u.dtype, None if h0 is None else h0.dtype, None if bias is None else bias.dtype)
        return h

    @staticmethod
    def backward(ctx, dh):
        h, u32, h0_32 = ctx.saved_tensors
        dx, du, db, dh0 = recurrence_bwd(h, dh.contiguous(), u32, h0_32, ctx.act)
        u_dtype, h0_dtype, b_dtype = ctx.dtypes
        return (
            dx,
            du.to(u_dtype),
            None if h0_dtype is None else dh0.to(h0_dtype),
            None if b_dtype is None else db.to(b_dtype),
            None,
        )


def _check_inputs(x, u, h0, bias, activation, backend) -> None:
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


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def _interpreter_unusable_reason(triton_version: str, numpy_version: str) -> str | None:
    """Triton before 3.7 turns the interpreter's scalars (1-element arrays) into loop bounds with
    int(array), which numpy 2.4 made an error: every kernel with a runtime loop bound fails."""
    if _major_minor(triton_version) < (3, 7) and _major_minor(numpy_version) >= (2, 4):
        return (
            f"triton {triton_version}'s interpreter cannot run with numpy {numpy_version}: "
            "use numpy < 2.4 or triton >= 3.7 (or a GPU)"
        )
    return None


def triton_unavailable_reason(x: torch.Tensor) -> str | None:
    """Why the triton backend cannot run on x, or None when it can."""
    if x.dtype not in FLOAT_DTYPES:
        return f"the triton backend supports {', '.join(str(d) for d in FLOAT_DTYPES)}, not {x.dtype}"
    if x.is_cuda:
        return None
    if x.device.type == "cpu" and interpreter_enabled():
        import numpy  # the interpreter's own dependency

        return _interpreter_unusable_reason(triton.__version__, numpy.__version__)
    return f"Triton kernels need a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors); x is on {x.device}"


def resolve_backend(x: torch.Tensor, backend: str) -> str:
    """Turn "auto" into "triton" or "torch" for this input; raise if "triton" cannot run."""
    reason = triton_unavailable_reason(x)
    if backend == "auto":
        return "torch" if reason else "triton"
    if backend == "triton" and reason:
        raise RuntimeError(f"backend='triton' cannot run: {reason}")
    return backend


def indrnn_recurrence(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The IndRNN recurrence h_t = act(x_t + u * h_{t-1} + bias) over all t.

    Args:
        x: (T, B, H) pre-activation inputs (the projection W x_t), fp32 / fp16 / bf16, any strides.
        u: (H,) recurrent weights (one per neuron).
        h0: (B, H) initial state, or None for zeros.
        bias: (H,) bias, or None.
        activation: "relu" or "tanh".
        backend: "triton", "torch" (eager PyTorch loops with a hand-written backward,
            kernels/loop.py), "auto" (triton where it can run, else torch) or "reference" (the
            plain loop of kernels/reference.py, differentiated by autograd: the definition, and
            what torch.compile is given in the benchmarks).

    Returns:
        h: (T, B, H) every state, in x's dtype.
        h_last: (B, H) the final state (h0, or zeros, when T = 0). Gradients flow into x, u, h0
        and bias from both outputs.
    """
    _check_inputs(x, u, h0, bias, activation, backend)
    T, B, H = x.shape
    if T == 0:
        h_last = x.new_zeros((B, H)) if h0 is None else h0.to(x.dtype)
        return x.new_empty((0, B, H)), h_last
    backend = resolve_backend(x, backend)
    if backend == "reference":
        return recurrence_reference(x, u, h0, bias, activation)
    if backend == "torch":
        return recurrence_loop(x, u, h0, bias, activation)
    if x.stride(2) != 1 or x.stride(1) != H:  # the kernel needs each (B, H) plane dense
        x = x.contiguous()
    h = _RecurrenceFunction.apply(x, u, h0, bias, ACT_CODES[activation])
    return h, h[-1]
