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

Both kernels walk "walk steps" s = 0..T-1 and visit time t = s, or t = T-1-s with REVERSE (the
backward direction of a bidirectional layer: no flipped copy is made). With HAS_LENGTHS each
batch row stops at its own length: later steps load nothing, keep the state and store zeros,
and the backward passes the carried gradient through them unchanged. x and h are read and
written through their time and batch strides, so a batch-first tensor viewed time first is used
in place. The public `indrnn_recurrence` reaches the kernels through the custom operators of
kernels/op.py, which torch.compile can trace.
"""

from __future__ import annotations

import os
import re

import torch
import triton
import triton.language as tl

from kernels.loop import recurrence_loop
from kernels.reference import ACTIVATIONS, last_state, recurrence_reference

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
def _time(s, T, REVERSE: tl.constexpr):
    """The time step that walk step s visits: s itself, or T - 1 - s when the walk runs backwards."""
    if REVERSE:
        return T - 1 - s
    return s


@triton.jit
def _load_steps(
    p, o_off, s_first, ds, stride, T, mask, b_len, CHUNK: tl.constexpr, REVERSE: tl.constexpr, HAS_LENGTHS: tl.constexpr
):
    """The planes of walk steps s_first, s_first + ds, ..., CHUNK of them (ds is 1 or -1), as a
    tuple, issued back to back so that all CHUNK loads are in flight at once. A step outside
    [0, T), or (HAS_LENGTHS) at or past its row's length b_len, reads as 0 and touches no memory."""
    b_xs = ()
    for i in tl.static_range(CHUNK):
        t = _time(s_first + i * ds, T, REVERSE)
        m_step = tl.where((t >= 0) & (t < T), mask, False)  # not `mask & scalar`: the interpreter rejects it
        if HAS_LENGTHS:
            m_step = m_step & (t < b_len)
        b_xs = b_xs + (tl.load(p + t * stride + o_off, mask=m_step, other=0.0),)
    return b_xs


@triton.jit
def _zero_chunk(BLOCK: tl.constexpr, dtype: tl.constexpr, CHUNK: tl.constexpr):
    """A chunk of zero planes: what a pipeline stage holds before its first loads."""
    b_zero = tl.zeros([BLOCK], dtype=dtype)
    b_chunk = ()
    for _ in tl.static_range(CHUNK):
        b_chunk = b_chunk + (b_zero,)
    return b_chunk


@triton.jit
def _plane_offsets(o_col, H, stride_b):
    """Element offsets of columns o_col (b * H + neuron) in a plane whose batch stride is stride_b
    and neuron stride 1, in int64: batch-first tensors are read in place, T*B*H may pass 2^31."""
    return (o_col // H).to(tl.int64) * stride_b + o_col % H


@triton.autotune(
    configs=autotune_configs(single=not AUTOTUNE),
    key=["n_cols", "t_bucket", "HAS_BIAS", "HAS_H0", "HAS_LENGTHS", "REVERSE", "ACT"],
)
@triton.jit(do_not_specialize=["T", "t_bucket"])
def recurrence_fwd_kernel(
    p_x,  # (T, B, H) input projections: neuron stride 1, time stride stride_t, batch stride stride_b
    p_u,  # (H,) fp32 recurrent weights
    p_bias,  # (H,) fp32 bias (unused unless HAS_BIAS)
    p_h0,  # (B*H,) fp32 initial state (unused unless HAS_H0)
    p_h,  # (T, B, H) output states, x's dtype: neuron stride 1, strides stride_ht and stride_hb
    p_lengths,  # (B,) int64 steps of each batch row (unused unless HAS_LENGTHS)
    T,  # number of time steps: a runtime value, never specialised, so no recompile per length
    n_cols,  # B * H
    H,  # hidden size, to find each column's neuron
    stride_t,  # elements between x_t and x_{t+1}
    stride_b,  # elements between two batch rows of x
    stride_ht,  # the same two strides of h
    stride_hb,
    t_bucket,  # time_bucket(T): only an autotune key
    HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,  # row b runs steps t < lengths[b]; later steps store 0 and keep the state
    REVERSE: tl.constexpr,  # walk t = T-1 .. 0 (the backward direction of a bidirectional layer)
    ACT: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    o_col = pid * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    o_neuron = o_col % H
    o_x = _plane_offsets(o_col, H, stride_b)
    o_h = _plane_offsets(o_col, H, stride_hb)
    b_u = tl.load(p_u + o_neuron, mask=m_col, other=0.0)
    b_bias = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_neuron, mask=m_col, other=0.0)
    b_h = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_H0:
        b_h = tl.load(p_h0 + o_col, mask=m_col, other=0.0)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0)

    # Offsets of step t are t * stride + column offset in int64: more than 2^31 elements are fine.
    stride_x = tl.cast(stride_t, tl.int64)
    stride_h = tl.cast(stride_ht, tl.int64)
    # Software pipeline: the loads of the next STAGES - 1 chunks are in flight while the dependent
    # chain of this one runs, so a load has (STAGES - 1) * CHUNK steps to arrive. The loop starts
    # STAGES - 1 chunks early, loading only, so each load appears once in the code (compile time
    # grows fast with the number of loads). Time is walked in whole chunks of walk steps s (time
    # t = s, or T-1-s with REVERSE): the steps of the last one at or past T load nothing and store
    # nothing (their state is never read), so a T that is not a multiple of CHUNK costs no
    # unpipelined tail.
    b_ahead = ()
    for _ in tl.static_range(STAGES - 1):
        b_ahead = b_ahead + (_zero_chunk(BLOCK, p_x.dtype.element_ty, CHUNK),)
    for s0 in range(-(STAGES - 1) * CHUNK, T, CHUNK):
        b_next = _load_steps(
            p_x, o_x, s0 + (STAGES - 1) * CHUNK, 1, stride_x, T, m_col, b_len, CHUNK, REVERSE, HAS_LENGTHS
        )
        b_ahead = b_ahead + (b_next,)
        if s0 >= 0:
            b_xs = b_ahead[0]
            for i in tl.static_range(CHUNK):
                t = _time(s0 + i, T, REVERSE)
                b_h_next = _step(b_xs[i], b_u, b_h, b_bias, HAS_BIAS, ACT)
                b_out = b_h_next
                if HAS_LENGTHS:  # past its length a row keeps its state and its output is 0
                    b_h_next = tl.where(t < b_len, b_h_next, b_h)
                    b_out = tl.where(t < b_len, b_h_next, 0.0)
                b_h = b_h_next
                m_step = tl.where(s0 + i < T, m_col, False)
                tl.store(p_h + t * stride_h + o_h, b_out.to(p_h.dtype.element_ty), mask=m_step)
        b_ahead = b_ahead[1:]


@triton.autotune(
    configs=autotune_configs(single=not AUTOTUNE, backward=True),
    key=["n_cols", "t_bucket", "HAS_H0", "HAS_LENGTHS", "REVERSE", "ACT"],
)
@triton.jit(do_not_specialize=["T", "t_bucket"])
def recurrence_bwd_kernel(
    p_h,  # (T, B, H) forward states: neuron stride 1, strides stride_ht and stride_hb
    p_dh,  # (T, B, H) gradient w.r.t. h (gradient into h_last already added), strides stride_dt, stride_db
    p_u,  # (H,) fp32 recurrent weights
    p_h0,  # (B*H,) fp32 initial state (unused unless HAS_H0)
    p_dx,  # (T, B, H) output: gradient w.r.t. x, h's dtype and strides
    p_du_cols,  # (B*H,) fp32 output: per-column sum over t of da_t * h_{t-1}
    p_db_cols,  # (B*H,) fp32 output: per-column sum over t of da_t
    p_dh0,  # (B*H,) fp32 output: gradient w.r.t. h0
    p_lengths,  # (B,) int64 steps of each batch row (unused unless HAS_LENGTHS)
    T,  # number of time steps, at least 1
    n_cols,  # B * H
    H,  # hidden size
    stride_ht,  # elements between h_t and h_{t+1}
    stride_hb,  # elements between two batch rows of h
    stride_dt,  # the same two strides of dh
    stride_db,
    t_bucket,  # time_bucket(T): only an autotune key
    HAS_H0: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    REVERSE: tl.constexpr,
    ACT: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    o_col = pid * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    o_h = _plane_offsets(o_col, H, stride_hb)
    o_dh = _plane_offsets(o_col, H, stride_db)
    b_u = tl.load(p_u + o_col % H, mask=m_col, other=0.0)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0)
    b_da = tl.zeros([BLOCK], dtype=tl.float32)  # da_{t+1}; u * da_{t+1} is what reaches h_t from step t+1
    b_du = tl.zeros([BLOCK], dtype=tl.float32)
    b_db = tl.zeros([BLOCK], dtype=tl.float32)

    # Undo the forward's walk: walk steps s = T-1 .. 0 (time t = s, or T-1-s with REVERSE). Step s
    # needs h_s, h_{s-1} and dh_s; h_{s-1} is the next step's h_s, so it is carried. h_{-1} reads as
    # 0 here; the h0 term of du is added at the end. Steps past a row's length (HAS_LENGTHS) kept
    # the state in the forward: their da is 0 and the carried da passes through them unchanged.
    # The walk goes down in whole chunks, the first one topped up above T-1 with steps that load
    # nothing (dh = 0, so their da stays 0) and store nothing. Chunk s0 covers steps s0, s0-1, ...,
    # s0-CHUNK+1. As in the forward, the next chunk's loads are issued before this chunk's chain runs.
    stride_h = tl.cast(stride_ht, tl.int64)
    stride_d = tl.cast(stride_dt, tl.int64)
    s_top = tl.cdiv(T, CHUNK) * CHUNK - 1
    t_top = _time(s_top, T, REVERSE)
    m_top = tl.where(s_top < T, m_col, False)
    if HAS_LENGTHS:
        m_top = m_top & (t_top < b_len)
    b_h = tl.load(p_h + t_top * stride_h + o_h, mask=m_top, other=0.0)
    b_h = b_h.to(tl.float32)
    # (dh, h_{s-1}) of the next STAGES - 1 chunks are in flight, started early as in the forward.
    b_ahead = ()
    for _ in tl.static_range(STAGES - 1):
        b_empty = _zero_chunk(BLOCK, p_h.dtype.element_ty, CHUNK)
        b_ahead = b_ahead + ((b_empty, b_empty),)
    for s0 in range(s_top + (STAGES - 1) * CHUNK, -1, -CHUNK):
        s_load = s0 - (STAGES - 1) * CHUNK
        b_dhs = _load_steps(p_dh, o_dh, s_load, -1, stride_d, T, m_col, b_len, CHUNK, REVERSE, HAS_LENGTHS)
        b_prevs = _load_steps(p_h, o_h, s_load - 1, -1, stride_h, T, m_col, b_len, CHUNK, REVERSE, HAS_LENGTHS)
        b_ahead = b_ahead + ((b_dhs, b_prevs),)
        if s0 <= s_top:
            b_dhs, b_prevs = b_ahead[0]
            for i in tl.static_range(CHUNK):
                t = _time(s0 - i, T, REVERSE)
                b_prev = b_prevs[i].to(tl.float32)
                b_da_t = _back_step(b_dhs[i], b_h, b_u, b_da, ACT)
                if HAS_LENGTHS:
                    m_valid = t < b_len
                    b_da = tl.where(m_valid, b_da_t, b_da)
                    b_da_t = tl.where(m_valid, b_da_t, 0.0)
                else:
                    b_da = b_da_t
                m_step = tl.where(s0 - i < T, m_col, False)
                tl.store(p_dx + t * stride_h + o_h, b_da_t.to(p_dx.dtype.element_ty), mask=m_step)
                b_du += b_da_t * b_prev
                b_db += b_da_t
                b_h = b_prev
        b_ahead = b_ahead[1:]

    # b_da is now the da of the walk's first step (t = 0, or T-1 / a row's last step with REVERSE),
    # the step whose previous state is h0.
    if HAS_H0:
        b_du += b_da * tl.load(p_h0 + o_col, mask=m_col, other=0.0)
    tl.store(p_du_cols + o_col, b_du, mask=m_col)
    tl.store(p_db_cols + o_col, b_db, mask=m_col)
    tl.store(p_dh0 + o_col, b_u * b_da, mask=m_col)


# Launches pin enable_fp_fusion=True (triton's default through 3.9, announced to flip in 3.10),
# so they compile the code that the tests and `kernel-report` check (kernels/aot.py pins it too).
def _grid(meta: dict) -> tuple[int]:
    return (triton.cdiv(meta["n_cols"], meta["BLOCK"]),)


def states_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised (T, B, H) tensor for the states of x, in x's dtype: dense, and batch first
    in memory when x is (a (B, T, H) tensor viewed time first), so that layout carries through."""
    T, B, H = x.shape
    if T > 1 and B > 1 and x.stride(1) > x.stride(0):
        return torch.empty((B, T, H), dtype=x.dtype, device=x.device).transpose(0, 1)
    return torch.empty((T, B, H), dtype=x.dtype, device=x.device)


def _with_unit_neuron_stride(t: torch.Tensor) -> torch.Tensor:
    """t itself when its neurons are adjacent (any time and batch strides: the kernels take them),
    else a contiguous copy."""
    return t if t.stride(2) == 1 else t.contiguous()


def recurrence_fwd(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None,
    bias: torch.Tensor | None,
    act: int,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    """Launch the forward kernel on x (T, B, H) with any time and batch strides. Returns h (T, B, H),
    dense in x's order (batch first in memory when x is). u, h0 and bias are fp32 and contiguous;
    lengths, when given, is (B,) int64 on x's device."""
    T, B, H = x.shape
    h = states_like(x)
    x = _with_unit_neuron_stride(x)
    if T == 0 or B * H == 0:
        return h
    recurrence_fwd_kernel[_grid](
        x, u, u if bias is None else bias, u if h0 is None else h0, h, u if lengths is None else lengths,
        T, B * H, H, x.stride(0), x.stride(1), h.stride(0), h.stride(1), time_bucket(T),
        HAS_BIAS=bias is not None, HAS_H0=h0 is not None, HAS_LENGTHS=lengths is not None, REVERSE=reverse,
        ACT=act, enable_fp_fusion=True,
    )  # fmt: skip
    return h


def recurrence_bwd(
    h: torch.Tensor,
    dh: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None,
    act: int,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernel. Returns dx (T, B, H) in h's dtype, laid out as `states_like(h)`;
    du (H,), dbias (H,) and dh0 (B, H) in fp32."""
    T, B, H = h.shape
    dh = _with_unit_neuron_stride(dh)
    dx = states_like(h)
    if h.stride() != dx.stride():  # the kernel walks h and dx with the same strides; the forward's h has them
        h = torch.empty_like(dx).copy_(h)
    cols = torch.zeros((2, B, H), dtype=torch.float32, device=h.device)
    du_cols, db_cols = cols[0], cols[1]
    dh0 = torch.zeros((B, H), dtype=torch.float32, device=h.device)
    if T > 0 and B * H > 0:
        recurrence_bwd_kernel[_grid](
            h, dh, u, u if h0 is None else h0, dx, du_cols, db_cols, dh0, u if lengths is None else lengths,
            T, B * H, H, h.stride(0), h.stride(1), dh.stride(0), dh.stride(1), time_bucket(T),
            HAS_H0=h0 is not None, HAS_LENGTHS=lengths is not None, REVERSE=reverse, ACT=act, enable_fp_fusion=True,
        )  # fmt: skip
    return dx, du_cols.sum(0), db_cols.sum(0), dh0


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
        backend: "triton" (the kernels, through the custom operator of kernels/op.py), "torch"
            (eager PyTorch loops with a hand-written backward, kernels/loop.py), "auto" (triton
            where it can run, else torch) or "reference" (the plain loop of kernels/reference.py,
            differentiated by autograd: the definition, and what torch.compile is given in the
            benchmarks).
        lengths: (B,) integer steps of each sequence, in [1, T], or None for T each. Row b runs
            steps t < lengths[b] only: later steps leave its state alone, output 0 and get no
            gradient.
        reverse: walk time backwards, t = T-1 .. 0 (each row from its own last step): the
            backward direction of a bidirectional layer. h keeps time order.

    Returns:
        h: (T, B, H) every state, in x's dtype (with the triton backend, in x's memory order).
        h_last: (B, H) the final state: h at each row's last step (t = 0 with reverse); h0, or
        zeros, when T = 0. Gradients flow into x, u, h0 and bias from both outputs.
    """
    _check_inputs(x, u, h0, bias, activation, backend)
    lengths = _check_lengths(lengths, x)
    T, B, H = x.shape
    if T == 0:
        h_last = x.new_zeros((B, H)) if h0 is None else h0.to(x.dtype)
        return x.new_empty((0, B, H)), h_last
    backend = resolve_backend(x, backend)
    if backend == "reference":
        return recurrence_reference(x, u, h0, bias, activation, lengths=lengths, reverse=reverse)
    if backend == "torch":
        return recurrence_loop(x, u, h0, bias, activation, lengths=lengths, reverse=reverse)
    # The kernels, through the custom operator that kernels.op registers (the package imports it).
    h = torch.ops.indrnn.recurrence(x, u, h0, bias, lengths, ACT_CODES[activation], reverse)
    return h, last_state(h, lengths, reverse)
