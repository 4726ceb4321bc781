"""The IndRNN recurrence as a sequential walk over time in Triton: forward and backward kernels and
their launchers.

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
in place. The public `indrnn_recurrence` reaches the kernels through kernels/op.py (custom
operators, which torch.compile can trace, and an autograd.Function for eager calls).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.common import (
    AUTOTUNE,
    activate,
    activation_grad,
    plane_offsets,
    states_like,
    with_unit_neuron_stride,
)

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
def _step(b_x, b_u, b_h, b_bias, HAS_BIAS: tl.constexpr, ACT: tl.constexpr):
    """One forward step, h_t = act(x_t + bias + u * h_{t-1}). Only the fma and the activation wait
    for h_{t-1} (FFMA -> FMNMX for relu): x_t + bias is added off that dependent chain."""
    b_a = b_x.to(tl.float32)
    if HAS_BIAS:
        b_a += b_bias
    return activate(tl.fma(b_u, b_h, b_a), ACT)


@triton.jit
def _back_step(b_dh, b_h, b_u, b_da, ACT: tl.constexpr):
    """One backward step: da_t = g_t * (dh_t + u * da_{t+1}) with g_t = act'(a_t) from h_t, as
    g_t * dh_t + (g_t * u) * da_{t+1}: both products are off the dependent chain, which is
    one fma per step."""
    b_g = activation_grad(b_h, ACT)
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


# Tuning results persist across processes (triton's `cache_results`): the timings of each key are
# saved as <kernel>.autotune.json under triton's cache directory ($TRITON_CACHE_DIR, by default
# ~/.triton/cache), in a folder named by a hash of the triton version, ptxas version and GPU
# architecture, the kernel's source, the cache-invalidating TRITON_* variables, the key and the
# configs: a changed kernel or space is tuned afresh by itself. To retune an unchanged one (say,
# after moving the cache to another GPU of the same architecture) delete those files or point
# TRITON_CACHE_DIR elsewhere. The interpreter never tunes, nor caches.
@triton.autotune(
    configs=autotune_configs(single=not AUTOTUNE),
    key=["n_cols", "t_bucket", "HAS_BIAS", "HAS_H0", "HAS_LENGTHS", "REVERSE", "ACT"],
    cache_results=True,
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
    o_x = plane_offsets(o_col, H, stride_b)
    o_h = plane_offsets(o_col, H, stride_hb)
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
    cache_results=True,  # as the forward's
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
    o_h = plane_offsets(o_col, H, stride_hb)
    o_dh = plane_offsets(o_col, H, stride_db)
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
    x = with_unit_neuron_stride(x)
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
    dh = with_unit_neuron_stride(dh)
    dx = states_like(h)
    if h.stride() != dx.stride():  # the kernel walks h and dx with the same strides; the forward's h has them
        h = torch.empty_like(dx).copy_(h)
    # Not zero-filled: every program stores all of its columns below B * H, and the grid covers them all.
    cols = torch.empty((2, B, H), dtype=torch.float32, device=h.device)  # per-column partial sums of du, dbias
    dh0 = torch.empty((B, H), dtype=torch.float32, device=h.device)
    if T == 0 or B * H == 0:  # no step: nothing reaches u, bias or h0
        cols.zero_()
        dh0.zero_()
    else:
        recurrence_bwd_kernel[_grid](
            h, dh, u, u if h0 is None else h0, dx, cols[0], cols[1], dh0, u if lengths is None else lengths,
            T, B * H, H, h.stride(0), h.stride(1), dh.stride(0), dh.stride(1), time_bucket(T),
            HAS_H0=h0 is not None, HAS_LENGTHS=lengths is not None, REVERSE=reverse, ACT=act, enable_fp_fusion=True,
        )  # fmt: skip
    du, dbias = cols.sum(1).unbind()  # one reduction over the batch serves both
    return dx, du, dbias, dh0
