"""The IndRNN recurrence with ReLU as a chunked scan, parallel in time: Triton kernels, their
launchers, and the same three passes in PyTorch.

    h_t = relu(x_t + u * h_{t-1} + bias),    x: (T, B, H),  u, bias: (H,),  h0: (B, H)

Why. The sequential walk (kernels/sequential.py) is parallel over the B*H columns only. With few
columns (the paper's 4096, or a batch of one over a long sequence) most of a GPU idles while a
few warps walk thousands of dependent steps. The parallelism has to come from time.

The forward is a composition of maps. With a_t = x_t + bias, step t is h -> max(0, a_t + u h).
Call h -> min(hi, max(lo, c + m h)), with lo <= hi, a clamped affine map. A step is one
(m = u, c = a_t, lo = 0, hi = inf), so is a step that changes nothing (a padded step, or one past
its row's length: m = 1, c = 0, lo = -inf, hi = inf), and one clamped affine map followed by
another is a third: the affine parts compose (m = m2 m1, c = c2 + m2 c1), and because both maps
are monotone the result only clamps the composed affine part to the interval that the second
map's clamp leaves of the first map's range. So whatever its inputs, a chunk of C steps is one
such map of four numbers, and the T steps are T/C maps applied one after the other: an
associative scan, exact for every sign of u.

The bounds are computed without case analysis: a monotone clamped affine map sends -inf and
+inf to its two bounds (which one to which depends on the sign of m), so lo and hi are the
smaller and the larger of the chunk's own steps applied to -BIG and to +BIG, two more chains
of the walk's fma and max. BIG is the finite 3e38, not inf: where u = 0 the product u * BIG is
0, where u * inf would be NaN. For |h| <= BIG the clamp with these bounds is the map itself
even when |m| is so small that m * BIG does not reach a bound. The slope m is the product of u
over the chunk's valid steps: the scan is exact while |u|^C stays finite in fp32, |u| < 16 for
32-step chunks and |u| < 1.41 for the longest (256 steps). The constraint |u| <= gamma^(1/T)
keeps u near 1; a |u| above those bounds makes the walk itself overflow within C steps wherever
the relu stays open.

The backward is linear. With g_t = relu'(a_t) read from the stored h_t (h_t > 0), the gradient
of the loss with respect to a_t is da_t = g_t dh_t + (g_t u) da_{t+1}: affine in da_{t+1}, so a
chunk's steps, taken from its last to its first, compose into one map D -> Cc + M D. A step
that changes nothing passes the carried da through (M = 1, Cc = 0). du and dbias are the sums
over t of da_t h_{t-1} and da_t.

Three passes, each parallel over (chunk, block of columns) or over columns:

    1. maps:   each chunk's map from its C inputs, whatever state enters it
    2. carry:  the chunk maps applied in turn, per column, from h0: the state entering each
               chunk (T/C dependent steps instead of T)
    3. steps:  each chunk walked again from its entering state, writing h (forward), or dx and
               per-(chunk, column) partial sums of du and dbias (backward), reduced afterwards
               by a plain sum: no float atomics, so gradients repeat bit for bit

Pass 3 walks exactly as the sequential kernel does (the same fma and max from the same state),
so the scan differs from the walk only by the rounding of the entering states. Reading and
writing: pass 1 reads x once, pass 3 reads it again and writes h, and the maps and states add
(16 + 16 + 4 + 4) / C bytes per element: at C = 32 about 13.3 bytes per fp32 element against
the walk's 8 (the backward: 20 + 32 / C against 12). Pass 3 runs its chunks in the opposite
order to pass 1, so it starts on the chunks pass 1 read last, which are the likeliest still in
L2. A column's maps and entering states lie chunk after chunk, so that pass 2 reaches them all
from one address.

In the kernels a chunk is walked in sub-chunks of SUB steps whose loads are all issued before
the first of them is needed (a static unroll), so a warp has SUB loads in flight per column it
owns; chunks longer than SUB make pass 2 shorter where T is long and the columns are few.
Padded steps and steps past a row's length are the identity map; their outputs are 0 and the
backward passes the carried gradient through them. Walk steps s = 0..T-1 visit t = s, or
t = T-1-s with REVERSE, as in the sequential kernels, and x, h and dh are read through their
time and batch strides.

The torch form at the end of this file runs the same three passes with PyTorch ops, for the
`torch` backend: with C = sqrt(T), about 9 sqrt(T) ops on (T/C, B, H) slices forwards and 4 sqrt(T)
backwards, where the loop spends 2 T ops on (B, H) ones each way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl

from kernels.common import (
    ACT_CODES,
    activate,
    activation_grad,
    backward_operands,
    ceil_div,
    plane_offsets,
    states_like,
    with_unit_neuron_stride,
)
from kernels.reference import last_state, valid_steps
from kernels.speed import GPUS, SIZES, Shape, Work

BIG = tl.constexpr(3.0e38)  # a finite infinity: u * BIG is 0 where u = 0


@triton.jit
def _walk_time(s, T, REVERSE: tl.constexpr):
    """The time step that walk step s visits: s itself, or T - 1 - s when the walk runs backwards."""
    if REVERSE:
        return T - 1 - s
    return s


@triton.jit
def _load_steps(
    p, o_off, s_first, stride, T, m_col, b_len, N: tl.constexpr, REVERSE: tl.constexpr, HAS_LENGTHS: tl.constexpr
):
    """The planes of walk steps s_first .. s_first + N - 1 and whether each step is one the walk
    takes (0 <= s < T and, with HAS_LENGTHS, t below the row's length), as two tuples; a step not
    taken reads 0 and touches no memory. The N loads are issued back to back, and
    _weights_after_loads keeps them so."""
    b_xs = ()
    m_steps = ()
    for i in tl.static_range(N):
        s = s_first + i
        t = _walk_time(s, T, REVERSE)
        m_step = tl.where((s >= 0) & (s < T), m_col, False)  # not `mask & scalar`: the interpreter rejects it
        if HAS_LENGTHS:
            m_step = m_step & (t < b_len)
        b_xs = b_xs + (tl.load(p + t * stride + o_off, mask=m_step, other=0.0),)
        m_steps = m_steps + (m_step,)
    return b_xs, m_steps


@triton.jit
def _weights_after_loads(p_u, p_bias, o_col, m_col, H, HAS_BIAS: tl.constexpr):
    """u and bias (0 without HAS_BIAS), read again below a barrier once a sub-chunk's loads are
    issued. Each step needs one of them before it can use its load, and ptxas moves no memory
    access across a barrier, so no step can be placed between the loads. Left free, ptxas starts
    the chain right after the first load: in the passes that store nothing in the loop the sm_90
    code then waited on every load in turn. One warp per program makes the barrier nearly free."""
    tl.debug_barrier()
    b_u = tl.load(p_u + o_col % H, mask=m_col, other=0.0)
    b_bias = tl.zeros_like(b_u)
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_col % H, mask=m_col, other=0.0)
    return b_u, b_bias


@triton.jit
def _block_and_chunk(n_cols, T, BLOCK: tl.constexpr, CHUNK: tl.constexpr, LAST_FIRST: tl.constexpr):
    """The columns and the chunk of this program. Programs run chunk by chunk, every block of
    columns of one chunk before the next chunk; LAST_FIRST starts at the last chunk."""
    n_blocks = tl.cdiv(n_cols, BLOCK)
    pid = tl.program_id(0)
    k = pid // n_blocks
    if LAST_FIRST:
        k = tl.cdiv(T, CHUNK) - 1 - k
    o_col = (pid % n_blocks) * BLOCK + tl.arange(0, BLOCK)
    return o_col, k


@triton.jit
def _back_coefficients(b_h, b_dh, b_u, b_zero, m_step):
    """(g u, g dh) of one backward step, da_t = g dh_t + g u da_{t+1} with g = relu'(a_t) from h_t,
    as the sequential kernel forms them; a step not taken passes da through: (1, 0). g tests
    h + b_zero, where b_zero = u - u is 0 for any finite u (a u that is not finite has made every
    h NaN, so g is 0 either way) and exists only below the barrier of _weights_after_loads:
    otherwise ptxas tests a 16-bit h the moment it arrives, between the loads."""
    b_g = activation_grad(b_h.to(tl.float32) + b_zero, 0)
    return tl.where(m_step, b_g * b_u, 1.0), b_g * b_dh.to(tl.float32)


@triton.jit
def scan_fwd_maps_kernel(
    p_x,  # (T, B, H) input projections: neuron stride 1, time stride stride_t, batch stride stride_b
    p_u,  # (H,) fp32 recurrent weights
    p_bias,  # (H,) fp32 bias (unused unless HAS_BIAS)
    p_lengths,  # (B,) int64 steps of each batch row (unused unless HAS_LENGTHS)
    p_maps,  # (B*H, n_chunks, 4) fp32 output: each chunk's map h -> min(hi, max(lo, c + m h)) as m, c, lo, hi
    T,  # number of time steps
    n_chunks,  # chunks in p_maps: cdiv(T, CHUNK) and a few past T (identity maps) for pass 2
    n_cols,  # B * H
    H,  # hidden size
    stride_t,  # elements between x_t and x_{t+1}
    stride_b,  # elements between two batch rows of x
    HAS_BIAS: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    REVERSE: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,  # steps of a chunk, a multiple of SUB
    SUB: tl.constexpr,  # steps whose loads are issued together
):
    """Pass 1 of the forward: each chunk's steps composed into one clamped affine map; the chunks
    past T (padding for pass 2) come out as the identity."""
    o_col, k = _block_and_chunk(n_cols, T, BLOCK, CHUNK, False)
    m_col = o_col < n_cols
    o_x = plane_offsets(o_col, H, stride_b)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0)
    stride_x = tl.cast(stride_t, tl.int64)

    # The chunk's map starts as the identity: slope 1, offset 0, and -BIG and +BIG as they are.
    b_m = tl.full([BLOCK], 1.0, tl.float32)
    b_c = tl.zeros([BLOCK], dtype=tl.float32)
    b_lo = tl.full([BLOCK], -BIG, tl.float32)
    b_hi = tl.full([BLOCK], BIG, tl.float32)
    for s0 in range(k * CHUNK, k * CHUNK + CHUNK, SUB):
        b_xs, m_steps = _load_steps(p_x, o_x, s0, stride_x, T, m_col, b_len, SUB, REVERSE, HAS_LENGTHS)
        b_u, b_bias = _weights_after_loads(p_u, p_bias, o_col, m_col, H, HAS_BIAS)
        for i in tl.static_range(SUB):
            b_a = b_xs[i].to(tl.float32)
            if HAS_BIAS:
                b_a += b_bias
            m_step = m_steps[i]
            b_m = tl.where(m_step, b_m * b_u, b_m)
            b_c = tl.where(m_step, tl.fma(b_u, b_c, b_a), b_c)
            b_lo = tl.where(m_step, tl.maximum(tl.fma(b_u, b_lo, b_a), 0.0), b_lo)
            b_hi = tl.where(m_step, tl.maximum(tl.fma(b_u, b_hi, b_a), 0.0), b_hi)

    # The record m, c, lo, hi in one store: [m, lo] and [c, hi] joined make the 2 x 2 [[m, c], [lo, hi]].
    b_map = tl.join(tl.join(b_m, tl.minimum(b_lo, b_hi)), tl.join(b_c, tl.maximum(b_lo, b_hi)))
    o_map = (o_col.to(tl.int64) * n_chunks + k) * 4
    tl.store(p_maps + o_map[:, None] + tl.arange(0, 4)[None, :], tl.reshape(b_map, [BLOCK, 4]), mask=m_col[:, None])


@triton.jit
def _group_start(o_first, j0, n_chunks, DESCENDING: tl.constexpr):
    """The record of the chunk the carry meets j0-th, in a column whose first chunk's record is
    o_first. The group's other chunks follow one record apart (before it when walking down), at
    constant offsets that the compiler writes into the loads and stores."""
    if DESCENDING:
        return o_first + (n_chunks - 1 - j0)
    return o_first + j0


@triton.jit
def _load_maps(p_maps, o_start, HAS_BOUNDS: tl.constexpr, DESCENDING: tl.constexpr, GROUP: tl.constexpr):
    """The maps of GROUP chunks from record o_start on, as tuples of m, c (and lo, hi): one load a
    chunk, of its whole record."""
    PLANES: tl.constexpr = 4 if HAS_BOUNDS else 2
    STEP: tl.constexpr = -PLANES if DESCENDING else PLANES
    p = p_maps + o_start[:, None] * PLANES + tl.arange(0, PLANES)[None, :]
    b_ms, b_cs, b_los, b_his = (), (), (), ()
    for i in tl.static_range(GROUP):
        b_rec = tl.load(p + i * STEP)
        if HAS_BOUNDS:  # [[m, c], [lo, hi]], split along its last axis into [m, lo] and [c, hi]
            b_m_lo, b_c_hi = tl.split(tl.reshape(b_rec, [o_start.shape[0], 2, 2]))
            b_m, b_lo = tl.split(b_m_lo)
            b_c, b_hi = tl.split(b_c_hi)
            b_los = b_los + (b_lo,)
            b_his = b_his + (b_hi,)
        else:
            b_m, b_c = tl.split(b_rec)
        b_ms = b_ms + (b_m,)
        b_cs = b_cs + (b_c,)
    return b_ms, b_cs, b_los, b_his


@triton.jit
def _apply_maps(
    b_maps, b_h, p_states, o_start, m_col, HAS_BOUNDS: tl.constexpr, DESCENDING: tl.constexpr, GROUP: tl.constexpr
):
    """Record the state entering each of GROUP chunks and apply its map: the chain of pass 2."""
    STEP: tl.constexpr = -1 if DESCENDING else 1
    b_ms, b_cs, b_los, b_his = b_maps
    p = p_states + o_start
    for i in tl.static_range(GROUP):
        tl.store(p + i * STEP, b_h, mask=m_col)
        b_h = tl.fma(b_ms[i], b_h, b_cs[i])
        if HAS_BOUNDS:  # a NaN stays NaN, as in the walk
            b_h = tl.maximum(b_h, b_los[i], propagate_nan=tl.PropagateNan.ALL)
            b_h = tl.minimum(b_h, b_his[i], propagate_nan=tl.PropagateNan.ALL)
    return b_h


@triton.jit
def scan_carry_kernel(
    p_maps,  # (n_cols, n_chunks, 4 or 2) fp32 chunk maps: m, c (and lo, hi with HAS_BOUNDS)
    p_init,  # (n_cols,) fp32 state entering the first chunk walked (unused unless HAS_INIT: 0)
    p_states,  # (n_cols, n_chunks) fp32 output: the state entering each chunk
    n_chunks,  # a multiple of 2 * GROUP (padding chunks hold identity maps)
    n_cols,
    HAS_INIT: tl.constexpr,
    HAS_BOUNDS: tl.constexpr,  # forward maps are clamped (lo, hi); backward maps are affine
    DESCENDING: tl.constexpr,  # walk the chunks from the last to the first (the backward)
    BLOCK: tl.constexpr,
    GROUP: tl.constexpr,  # chunks whose maps are loaded together
):
    """Pass 2: per column, apply the chunk maps in turn and record the state entering each chunk.
    A column's maps and states lie chunk after chunk, so a group's loads and stores are immediate
    offsets from one address; the chunk count is a multiple of 2 * GROUP and columns past the end
    read the last one's maps, so only the stores carry a mask. The maps of the next group are in
    flight while the chain runs through the current one (two groups per iteration, so that no
    register is copied between iterations)."""
    o_col = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    o_first = tl.minimum(o_col, n_cols - 1).to(tl.int64) * n_chunks
    b_h = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_INIT:
        b_h = tl.load(p_init + o_col, mask=m_col, other=0.0)
    b_next = _load_maps(p_maps, _group_start(o_first, 0, n_chunks, DESCENDING), HAS_BOUNDS, DESCENDING, GROUP)
    for j0 in range(0, n_chunks, 2 * GROUP):
        o_now = _group_start(o_first, j0, n_chunks, DESCENDING)
        o_later = _group_start(o_first, j0 + GROUP, n_chunks, DESCENDING)
        b_later = _load_maps(p_maps, o_later, HAS_BOUNDS, DESCENDING, GROUP)
        b_h = _apply_maps(b_next, b_h, p_states, o_now, m_col, HAS_BOUNDS, DESCENDING, GROUP)
        # The first group of the next iteration; in the last one, the last group again (not used).
        o_next = _group_start(o_first, tl.minimum(j0 + 2 * GROUP, n_chunks - GROUP), n_chunks, DESCENDING)
        b_next = _load_maps(p_maps, o_next, HAS_BOUNDS, DESCENDING, GROUP)
        b_h = _apply_maps(b_later, b_h, p_states, o_later, m_col, HAS_BOUNDS, DESCENDING, GROUP)


@triton.jit
def scan_fwd_kernel(
    p_x,  # (T, B, H) input projections: neuron stride 1, strides stride_t and stride_b
    p_u,  # (H,) fp32 recurrent weights
    p_bias,  # (H,) fp32 bias (unused unless HAS_BIAS)
    p_states,  # (B*H, n_chunks) fp32 state entering each chunk (pass 2)
    p_lengths,  # (B,) int64 steps of each batch row (unused unless HAS_LENGTHS)
    p_h,  # (T, B, H) output states, x's dtype: neuron stride 1, strides stride_ht and stride_hb
    T,
    n_chunks,  # chunks in p_states
    n_cols,
    H,
    stride_t,
    stride_b,
    stride_ht,
    stride_hb,
    HAS_BIAS: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    REVERSE: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    SUB: tl.constexpr,
):
    """Pass 3 of the forward: each chunk walked from its entering state, as the sequential kernel
    walks it; steps past a row's length keep the state and store 0."""
    o_col, k = _block_and_chunk(n_cols, T, BLOCK, CHUNK, True)
    m_col = o_col < n_cols
    o_x = plane_offsets(o_col, H, stride_b)
    o_h = plane_offsets(o_col, H, stride_hb)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0)
    b_h = tl.load(p_states + o_col.to(tl.int64) * n_chunks + k, mask=m_col, other=0.0)
    stride_x = tl.cast(stride_t, tl.int64)
    stride_h = tl.cast(stride_ht, tl.int64)
    for s0 in range(k * CHUNK, k * CHUNK + CHUNK, SUB):
        b_xs, m_steps = _load_steps(p_x, o_x, s0, stride_x, T, m_col, b_len, SUB, REVERSE, HAS_LENGTHS)
        b_u, b_bias = _weights_after_loads(p_u, p_bias, o_col, m_col, H, HAS_BIAS)
        for i in tl.static_range(SUB):
            t = _walk_time(s0 + i, T, REVERSE)
            b_a = b_xs[i].to(tl.float32)
            if HAS_BIAS:
                b_a += b_bias
            b_h_next = activate(tl.fma(b_u, b_h, b_a), 0)
            b_out = b_h_next
            if HAS_LENGTHS:
                b_h_next = tl.where(m_steps[i], b_h_next, b_h)
                b_out = tl.where(m_steps[i], b_h_next, 0.0)
            b_h = b_h_next
            m_store = tl.where(s0 + i < T, m_col, False)
            tl.store(p_h + t * stride_h + o_h, b_out.to(p_h.dtype.element_ty), mask=m_store)


@triton.jit
def scan_bwd_maps_kernel(
    p_h,  # (T, B, H) forward states: neuron stride 1, strides stride_ht and stride_hb
    p_dh,  # (T, B, H) gradient w.r.t. h, strides stride_dt and stride_db
    p_u,  # (H,) fp32 recurrent weights
    p_lengths,  # (B,) int64 steps of each batch row (unused unless HAS_LENGTHS)
    p_maps,  # (B*H, n_chunks, 2) fp32 output: each chunk's map D -> Cc + M D as M, Cc
    T,
    n_chunks,  # chunks in p_maps: cdiv(T, CHUNK) and a few past T (identity maps) for pass 2
    n_cols,
    H,
    stride_ht,
    stride_hb,
    stride_dt,
    stride_db,
    HAS_LENGTHS: tl.constexpr,
    REVERSE: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    SUB: tl.constexpr,
):
    """Pass 1 of the backward: each chunk's steps, from its last to its first, as one affine map
    of the da entering it from above."""
    o_col, k = _block_and_chunk(n_cols, T, BLOCK, CHUNK, False)
    m_col = o_col < n_cols
    o_h = plane_offsets(o_col, H, stride_hb)
    o_dh = plane_offsets(o_col, H, stride_db)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0)
    stride_h = tl.cast(stride_ht, tl.int64)
    stride_d = tl.cast(stride_dt, tl.int64)
    b_mm = tl.full([BLOCK], 1.0, tl.float32)
    b_cc = tl.zeros([BLOCK], dtype=tl.float32)
    for s0 in range(k * CHUNK + CHUNK - SUB, k * CHUNK - 1, -SUB):
        b_hs, m_steps = _load_steps(p_h, o_h, s0, stride_h, T, m_col, b_len, SUB, REVERSE, HAS_LENGTHS)
        b_dhs, _ = _load_steps(p_dh, o_dh, s0, stride_d, T, m_col, b_len, SUB, REVERSE, HAS_LENGTHS)
        b_u, _ = _weights_after_loads(p_u, p_u, o_col, m_col, H, False)
        b_zero = b_u - b_u
        for i in tl.static_range(SUB - 1, -1, -1):
            b_gu, b_gdh = _back_coefficients(b_hs[i], b_dhs[i], b_u, b_zero, m_steps[i])
            b_cc = tl.fma(b_gu, b_cc, b_gdh)
            b_mm = b_gu * b_mm
    o_map = (o_col.to(tl.int64) * n_chunks + k) * 2
    tl.store(p_maps + o_map[:, None] + tl.arange(0, 2)[None, :], tl.join(b_mm, b_cc), mask=m_col[:, None])


@triton.jit
def scan_bwd_kernel(
    p_h,  # (T, B, H) forward states: neuron stride 1, strides stride_ht and stride_hb
    p_dh,  # (T, B, H) gradient w.r.t. h (gradient into h_last already added), strides stride_dt, stride_db
    p_u,  # (H,) fp32 recurrent weights
    p_h0,  # (B*H,) fp32 initial state (unused unless HAS_H0)
    p_states,  # (B*H, n_chunks) fp32 da entering each chunk from above (pass 2)
    p_dx,  # (T, B, H) output: gradient w.r.t. x, h's dtype and strides
    p_du_parts,  # (cdiv(T, CHUNK), B*H) fp32 output: per chunk and column, the sum of da_t * h_{t-1}
    p_db_parts,  # (cdiv(T, CHUNK), B*H) fp32 output: per chunk and column, the sum of da_t
    p_dh0,  # (B*H,) fp32 output: gradient w.r.t. h0 (written by the first chunk)
    p_lengths,  # (B,) int64 steps of each batch row (unused unless HAS_LENGTHS)
    T,
    n_chunks,  # chunks in p_states
    n_cols,
    H,
    stride_ht,
    stride_hb,
    stride_dt,
    stride_db,
    HAS_H0: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    REVERSE: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    SUB: tl.constexpr,
):
    """Pass 3 of the backward: each chunk walked down from the da entering it, as the sequential
    kernel walks it. The state before walk step s is h at step s - 1, read as 0 before the walk's
    first step and before a row's first valid step; the h0 term is added by the first chunk,
    whose last da is the one that meets h0."""
    o_col, k = _block_and_chunk(n_cols, T, BLOCK, CHUNK, True)
    m_col = o_col < n_cols
    o_h = plane_offsets(o_col, H, stride_hb)
    o_dh = plane_offsets(o_col, H, stride_db)
    b_u = tl.load(p_u + o_col % H, mask=m_col, other=0.0)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0)
    b_da = tl.load(p_states + o_col.to(tl.int64) * n_chunks + k, mask=m_col, other=0.0)
    b_du = tl.zeros([BLOCK], dtype=tl.float32)
    b_db = tl.zeros([BLOCK], dtype=tl.float32)
    stride_h = tl.cast(stride_ht, tl.int64)
    stride_d = tl.cast(stride_dt, tl.int64)
    for s0 in range(k * CHUNK + CHUNK - SUB, k * CHUNK - 1, -SUB):
        # h of steps s0 - 1 .. s0 + SUB - 1: each step's own and the one before it
        b_hs, m_steps = _load_steps(p_h, o_h, s0 - 1, stride_h, T, m_col, b_len, SUB + 1, REVERSE, HAS_LENGTHS)
        b_dhs, _ = _load_steps(p_dh, o_dh, s0, stride_d, T, m_col, b_len, SUB, REVERSE, HAS_LENGTHS)
        b_u, _ = _weights_after_loads(p_u, p_u, o_col, m_col, H, False)
        b_zero = b_u - b_u
        for i in tl.static_range(SUB - 1, -1, -1):
            t = _walk_time(s0 + i, T, REVERSE)
            b_gu, b_gdh = _back_coefficients(b_hs[i + 1], b_dhs[i], b_u, b_zero, m_steps[i + 1])
            b_da = tl.fma(b_gu, b_da, b_gdh)
            b_da_t = tl.where(m_steps[i + 1], b_da, 0.0)
            m_store = tl.where(s0 + i < T, m_col, False)
            tl.store(p_dx + t * stride_h + o_h, b_da_t.to(p_dx.dtype.element_ty), mask=m_store)
            b_du += b_da_t * b_hs[i].to(tl.float32)
            b_db += b_da_t
    m_first = tl.where(k == 0, m_col, False)
    if HAS_H0:
        b_du += tl.where(m_first, b_da * tl.load(p_h0 + o_col, mask=m_first, other=0.0), 0.0)
    o_part = k.to(tl.int64) * n_cols + o_col
    tl.store(p_du_parts + o_part, b_du, mask=m_col)
    tl.store(p_db_parts + o_part, b_db, mask=m_col)
    tl.store(p_dh0 + o_col, b_u * b_da, mask=m_first)


# ---------------------------------------------------------------------------- launchers


@dataclass(frozen=True)
class ScanConfig:
    """How the three passes are cut: passes 1 and 3 give a program BLOCK columns and one chunk of
    CHUNK steps, walked SUB steps at a time (the loads of SUB steps in flight together); pass 2
    gives a program carry_block columns and loads the maps of GROUP chunks together."""

    chunk: int
    sub: int
    block: int
    warps: int
    carry_block: int
    carry_warps: int
    group: int


# One warp per program in every pass: the grid, not the block, is what fills the device when the
# columns are few. Passes 1 and 3 hold four fp32 columns a thread (128-bit loads where the layout
# allows), pass 2 one. The backward's pass 3 keeps h and dh of a sub-chunk in registers, so its
# sub-chunk is half as long.
FORWARD_CONFIG = ScanConfig(chunk=32, sub=32, block=128, warps=1, carry_block=32, carry_warps=1, group=16)
BACKWARD_CONFIG = ScanConfig(chunk=16, sub=16, block=128, warps=1, carry_block=32, carry_warps=1, group=32)
# The interpreter runs tiny shapes: short chunks so that a few dozen steps cross several of them,
# two sub-chunks a chunk, and groups of two maps in the carry.
INTERPRETER_CONFIG = ScanConfig(chunk=8, sub=4, block=32, warps=1, carry_block=32, carry_warps=1, group=2)
# Passes 1 and 3 want at least this many one-warp programs per SM: while one waits for its
# sub-chunk's loads, the others compute (at 166 to 227 registers, 9 to 12 such programs fit on an
# SM at once). Within that, longer chunks (up to MAX_SUBS sub-chunks) shorten pass 2.
PROGRAMS_PER_SM = 6
MAX_SUBS = 8


def scan_config(T: int, n_cols: int, n_sm: int | None, backward: bool = False) -> ScanConfig:
    """The cut for T steps of n_cols columns on a GPU with n_sm SMs (None: the interpreter): the
    longest chunk, up to MAX_SUBS sub-chunks, that still gives passes 1 and 3 PROGRAMS_PER_SM
    programs per SM. On 132 SMs: at T=1024, B=32, H=128, 32-step chunks and 1024 programs (the
    backward too); at T=65536, B=1, H=256, 128-step chunks, 1024 programs, 512 chunks in pass 2."""
    if n_sm is None:
        return INTERPRETER_CONFIG
    config = BACKWARD_CONFIG if backward else FORWARD_CONFIG
    blocks = ceil_div(n_cols, config.block)
    chunk = config.sub
    while chunk < MAX_SUBS * config.sub and ceil_div(T, 2 * chunk) * blocks >= PROGRAMS_PER_SM * n_sm:
        chunk *= 2
    return replace(config, chunk=chunk)


def _config_for(t: torch.Tensor, T: int, n_cols: int, backward: bool) -> ScanConfig:
    n_sm = torch.cuda.get_device_properties(t.device).multi_processor_count if t.is_cuda else None
    return scan_config(T, n_cols, n_sm, backward)


def _chunk_counts(T: int, cfg: ScanConfig) -> tuple[int, int]:
    """(chunks of T steps, chunks the maps and states hold): the second rounded up to a multiple of
    2 * group for the carry; pass 1 gives the chunks past T identity maps (all their steps are
    past T), pass 3 skips them."""
    chunks = ceil_div(T, cfg.chunk)
    return chunks, ceil_div(chunks, 2 * cfg.group) * 2 * cfg.group


def _require_relu(act: int) -> None:
    if act != ACT_CODES["relu"]:
        raise ValueError("the chunked scan computes relu only (tanh is not piecewise linear): use the sequential walk")


def scan_fwd(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None,
    bias: torch.Tensor | None,
    act: int,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    config: ScanConfig | None = None,
) -> torch.Tensor:
    """The forward as a chunked scan, with the contract of `recurrence_fwd` (kernels/sequential.py):
    returns h (T, B, H), dense in x's order. u, h0 and bias are fp32 and contiguous; lengths, when
    given, is (B,) int64 on x's device. `config` overrides `scan_config`."""
    _require_relu(act)
    T, B, H = x.shape
    h = states_like(x)
    x = with_unit_neuron_stride(x)
    n_cols = B * H
    if T == 0 or n_cols == 0:
        return h
    cfg = config or _config_for(x, T, n_cols, backward=False)
    chunks, n_chunks = _chunk_counts(T, cfg)
    maps = torch.empty((n_cols, n_chunks, 4), dtype=torch.float32, device=x.device)
    states = torch.empty((n_cols, n_chunks), dtype=torch.float32, device=x.device)
    blocks = ceil_div(n_cols, cfg.block)
    flags = dict(HAS_BIAS=bias is not None, HAS_LENGTHS=lengths is not None, REVERSE=reverse)
    meta = dict(BLOCK=cfg.block, CHUNK=cfg.chunk, SUB=cfg.sub, num_warps=cfg.warps, enable_fp_fusion=True)
    bias_arg = u if bias is None else bias
    lengths_arg = u if lengths is None else lengths
    scan_fwd_maps_kernel[(n_chunks * blocks,)](
        x, u, bias_arg, lengths_arg, maps, T, n_chunks, n_cols, H, x.stride(0), x.stride(1), **flags, **meta
    )
    scan_carry_kernel[(ceil_div(n_cols, cfg.carry_block),)](
        maps, u if h0 is None else h0, states, n_chunks, n_cols,
        HAS_INIT=h0 is not None, HAS_BOUNDS=True, DESCENDING=False, BLOCK=cfg.carry_block, GROUP=cfg.group,
        num_warps=cfg.carry_warps, enable_fp_fusion=True,
    )  # fmt: skip
    scan_fwd_kernel[(chunks * blocks,)](
        x, u, bias_arg, states, lengths_arg, h,
        T, n_chunks, n_cols, H, x.stride(0), x.stride(1), h.stride(0), h.stride(1), **flags, **meta,
    )  # fmt: skip
    return h


def scan_bwd(
    h: torch.Tensor,
    dh: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None,
    act: int,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    config: ScanConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward as a chunked scan, with the contract of `recurrence_bwd`: dx (T, B, H) in h's
    dtype, laid out as `states_like(h)`; du (H,), dbias (H,) and dh0 (B, H) in fp32."""
    _require_relu(act)
    T, B, H = h.shape
    n_cols = B * H
    h, dh, dx = backward_operands(h, dh)
    if T == 0 or n_cols == 0:
        zeros = torch.zeros(H, dtype=torch.float32, device=h.device)
        return dx, zeros, zeros.clone(), torch.zeros((B, H), dtype=torch.float32, device=h.device)
    dh0 = torch.empty((B, H), dtype=torch.float32, device=h.device)  # the first chunk of every column writes it
    cfg = config or _config_for(h, T, n_cols, backward=True)
    chunks, n_chunks = _chunk_counts(T, cfg)
    maps = torch.empty((n_cols, n_chunks, 2), dtype=torch.float32, device=h.device)
    states = torch.empty((n_cols, n_chunks), dtype=torch.float32, device=h.device)
    parts = torch.empty((2, chunks, B, H), dtype=torch.float32, device=h.device)
    blocks = ceil_div(n_cols, cfg.block)
    strides = (h.stride(0), h.stride(1), dh.stride(0), dh.stride(1))
    flags = dict(HAS_LENGTHS=lengths is not None, REVERSE=reverse)
    meta = dict(BLOCK=cfg.block, CHUNK=cfg.chunk, SUB=cfg.sub, num_warps=cfg.warps, enable_fp_fusion=True)
    lengths_arg = u if lengths is None else lengths
    scan_bwd_maps_kernel[(n_chunks * blocks,)](
        h, dh, u, lengths_arg, maps, T, n_chunks, n_cols, H, *strides, **flags, **meta
    )
    scan_carry_kernel[(ceil_div(n_cols, cfg.carry_block),)](
        maps, u, states, n_chunks, n_cols,
        HAS_INIT=False, HAS_BOUNDS=False, DESCENDING=True, BLOCK=cfg.carry_block, GROUP=cfg.group,
        num_warps=cfg.carry_warps, enable_fp_fusion=True,
    )  # fmt: skip
    scan_bwd_kernel[(chunks * blocks,)](
        h, dh, u, u if h0 is None else h0, states, dx, parts[0], parts[1], dh0, lengths_arg,
        T, n_chunks, n_cols, H, *strides, HAS_H0=h0 is not None, **flags, **meta,
    )  # fmt: skip
    # One plain sum over chunks and batch rows for both: the same order every time.
    du, dbias = parts.sum((1, 2)).unbind()
    return dx, du, dbias, dh0


# ---------------------------------------------------------------------------- the work of each pass
# What each pass's hot loop covers and what a launch moves, for the speed model (kernels/speed.py),
# at the cut the launcher picks. Bytes count the (T, B, H) tensors and the per-(chunk, column)
# records (maps, entering states, partial sums), not the per-column vectors (u, bias, h0, dh0).

# The SM count the cuts are read at: that of the sm_90 GPUs of the model. The A100's gives the same
# cut at every size of the model (tests/test_scan.py holds it).
_MODEL_SMS = next(gpu.sms for gpu in GPUS if gpu.cc == 90)


def _cut(shape: Shape, backward: bool) -> ScanConfig:
    return scan_config(shape.T, shape.B * shape.H, _MODEL_SMS, backward)


def _counts(config: dict, shape: Shape, backward: bool) -> tuple[int, int, int]:
    """(chunks of T steps, chunks the maps and states hold, blocks of columns) of passes 1 and 3."""
    default = BACKWARD_CONFIG if backward else FORWARD_CONFIG
    chunks, n_chunks = _chunk_counts(shape.T, replace(default, chunk=config["CHUNK"]))
    return chunks, n_chunks, ceil_div(shape.B * shape.H, config["BLOCK"])


def _chunk_work(backward: bool, maps_pass: bool) -> Work:
    """Pass 1 (maps_pass) or 3 of a direction: a program walks one chunk of CHUNK time steps, SUB per
    iteration. Pass 1 runs the padding chunks too (they store identity maps) and writes a record of
    16 (forward) or 8 (backward) bytes per chunk and column; pass 3 reads the entering states and the
    backward's writes two partial sums per chunk and column. Pass 3 reads again the data pass 1 read."""
    tensors_read = 2 if backward else 1  # h and dh, or x
    record = 8 if backward else 16

    def programs(config: dict, shape: Shape) -> int:
        chunks, n_chunks, blocks = _counts(config, shape, backward)
        return (n_chunks if maps_pass else chunks) * blocks

    def bytes_moved(config: dict, shape: Shape, element_bytes: int) -> int:
        chunks, n_chunks, _ = _counts(config, shape, backward)
        n_cols, data = shape.B * shape.H, shape.T * shape.B * shape.H * element_bytes
        if maps_pass:
            return tensors_read * data + n_cols * n_chunks * record
        sums = 2 * n_cols * chunks * 4 if backward else 0
        return (tensors_read + 1) * data + n_cols * chunks * 4 + sums

    def reread(config: dict, shape: Shape, element_bytes: int) -> int:
        if maps_pass:
            return 0
        chunks, _, _ = _counts(config, shape, backward)
        return tensors_read * shape.T * shape.B * shape.H * element_bytes + shape.B * shape.H * chunks * 4

    def configs_for(shape: Shape) -> dict:
        cut = _cut(shape, backward)
        return {"BLOCK": cut.block, "CHUNK": cut.chunk, "SUB": cut.sub, "num_warps": cut.warps}

    return Work(
        unit="time step",
        units_per_iteration=lambda config: config["SUB"],
        programs=programs,
        units_per_program=lambda config, shape: config["CHUNK"],
        bytes_moved=bytes_moved,
        configs={size: configs_for(shape) for size, shape in SIZES.items()},
        reread=reread,
    )


def _carry_work(backward: bool) -> Work:
    """Pass 2 of a direction: a program walks every chunk of its columns, 2 * GROUP per iteration,
    reading each chunk's map record (which pass 1 wrote just before) and writing its entering state."""
    record = 8 if backward else 16

    def n_chunks(config: dict, shape: Shape) -> int:
        return _chunk_counts(shape.T, replace(_cut(shape, backward), group=config["GROUP"]))[1]

    def configs_for(shape: Shape) -> dict:
        cut = _cut(shape, backward)
        return {"BLOCK": cut.carry_block, "GROUP": cut.group, "num_warps": cut.carry_warps}

    def records(config: dict, shape: Shape) -> int:
        return shape.B * shape.H * n_chunks(config, shape)

    return Work(
        unit="chunk",
        units_per_iteration=lambda config: 2 * config["GROUP"],
        programs=lambda config, shape: ceil_div(shape.B * shape.H, config["BLOCK"]),
        units_per_program=n_chunks,
        bytes_moved=lambda config, shape, element_bytes: records(config, shape) * (record + 4),
        configs={size: configs_for(shape) for size, shape in SIZES.items()},
        reread=lambda config, shape, element_bytes: records(config, shape) * record,
    )


FWD_MAPS_WORK = _chunk_work(backward=False, maps_pass=True)
FWD_CARRY_WORK = _carry_work(backward=False)
FWD_STEPS_WORK = _chunk_work(backward=False, maps_pass=False)
BWD_MAPS_WORK = _chunk_work(backward=True, maps_pass=True)
BWD_CARRY_WORK = _carry_work(backward=True)
BWD_STEPS_WORK = _chunk_work(backward=True, maps_pass=False)


# ---------------------------------------------------------------------------- the torch form


def _chunking(T: int) -> tuple[int, int]:
    """(C, whole chunks): C near sqrt(T) balances the passes' Python-level steps (about 7C in
    passes 1 and 3 against 2T/C in pass 2); fewer than two chunks is no scan."""
    C = max(1, math.isqrt(T))
    n = T // C
    return C, n if n >= 2 else 0


def _relu_scan(a: torch.Tensor, u: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """h_t = relu(a_t + u h_{t-1}) from h_{-1} = state, for every t of a (T, B, H): the whole chunks
    by the three passes, the remaining steps after them by the plain walk."""
    T = a.shape[0]
    h = torch.empty_like(a)
    C, n = _chunking(T)
    if n:
        a_c, h_c = a[: n * C].unflatten(0, (n, C)), h[: n * C].unflatten(0, (n, C))
        # Pass 1, every chunk at once: its affine part from 0, and its steps applied to -BIG and +BIG.
        c = torch.zeros_like(a_c[:, 0])
        lo, hi = torch.full_like(c, -BIG.value), torch.full_like(c, BIG.value)
        for i in range(C):
            torch.addcmul(a_c[:, i], u, c, out=c)
            torch.addcmul(a_c[:, i], u, lo, out=lo).relu_()
            torch.addcmul(a_c[:, i], u, hi, out=hi).relu_()
        m = u.pow(C)
        lo, hi = torch.minimum(lo, hi), torch.maximum(lo, hi)
        # Pass 2: the state entering each chunk.
        entering = torch.empty_like(c)
        entering[0] = state
        for k in range(n - 1):
            torch.addcmul(c[k], m, entering[k], out=entering[k + 1]).clamp_(lo[k], hi[k])
        # Pass 3: every chunk walked from its entering state, as the loop walks.
        state = entering
        for i in range(C):
            state = torch.addcmul(a_c[:, i], u, state, out=h_c[:, i]).relu_()
        state = state[-1]
    for t in range(n * C, T):
        state = torch.addcmul(a[t], u, state, out=h[t]).relu_()
    return h


def _affine_scan_down(c: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """d_t = c_t + m_t d_{t+1} from d_T = 0, for every t of (T, B, H) tensors: the steps after the
    whole chunks by the plain walk first, then the whole chunks by the three passes."""
    T = c.shape[0]
    d = torch.empty_like(c)
    carry = torch.zeros_like(c[0])
    C, n = _chunking(T)
    for t in range(T - 1, n * C - 1, -1):
        carry = torch.addcmul(c[t], m[t], carry, out=d[t])
    if n:
        c_c, m_c, d_c = (t[: n * C].unflatten(0, (n, C)) for t in (c, m, d))
        # Pass 1: each chunk as d -> cc + mm d, built from its last step down.
        cc, mm = c_c[:, -1].clone(), m_c[:, -1].clone()
        for i in range(C - 2, -1, -1):
            torch.addcmul(c_c[:, i], m_c[:, i], cc, out=cc)
            mm.mul_(m_c[:, i])
        # Pass 2: the d entering each chunk from above.
        entering = torch.empty_like(cc)
        entering[-1] = carry
        for k in range(n - 1, 0, -1):
            torch.addcmul(cc[k], mm[k], entering[k], out=entering[k - 1])
        # Pass 3.
        carry = entering
        for i in range(C - 1, -1, -1):
            carry = torch.addcmul(c_c[:, i], m_c[:, i], carry, out=d_c[:, i])
    return d


def _walk_order(T: int, lengths: torch.Tensor | None, reverse: bool, device: torch.device) -> torch.Tensor | None:
    """(T, B, 1) int64: the time step of each row's walk step s, chosen so that every row walks its
    valid steps first, from s = 0; None when that is time itself (a forward walk: a row's padding
    comes after its last step). The order is its own inverse: it maps walk steps back to time too."""
    if not reverse or lengths is None:
        return None
    s = torch.arange(T, device=device)[:, None]
    return torch.where(s < lengths, lengths - 1 - s, s)[..., None]


def _along_walk(t: torch.Tensor, order: torch.Tensor | None, reverse: bool) -> torch.Tensor:
    if order is not None:
        return t.gather(0, order.expand_as(t))
    return t.flip(0) if reverse else t


class _ChunkedFunction(torch.autograd.Function):
    """The torch backend's chunked scan: the forward keeps only h; the backward recomputes relu'
    from it. Both run along each row's walk (reordered when the walk is reversed), where padding
    comes last and can be ignored forwards and given no gradient backwards."""

    @staticmethod
    def forward(ctx, x, u, h0, bias, lengths, reverse):
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        T, B, H = x.shape
        order = _walk_order(T, lengths, reverse, x.device)
        a = x.detach().to(acc)
        if bias is not None:
            a = a + bias.detach().to(acc)
        state = torch.zeros(B, H, dtype=acc, device=x.device) if h0 is None else h0.detach().to(acc)
        h = _along_walk(_relu_scan(_along_walk(a, order, reverse), u.detach().to(acc), state), order, reverse)
        if lengths is not None:
            h.masked_fill_(~valid_steps(lengths, T), 0.0)
        out = h.to(x.dtype)
        ctx.save_for_backward(out, u, h0, lengths)
        ctx.reverse = reverse
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, dh):
        h, u, h0, lengths = ctx.saved_tensors
        acc = torch.float64 if h.dtype == torch.float64 else torch.float32
        T = h.shape[0]
        order = _walk_order(T, lengths, ctx.reverse, h.device)
        h_walk = _along_walk(h.to(acc), order, ctx.reverse)
        g = (h_walk > 0).to(acc)  # 0 at padded steps, whose h is 0: they get no gradient
        # da_t = g_t dh_t + (g_t u) da_{t+1} along the walk.
        da = _affine_scan_down(g * _along_walk(dh.to(acc), order, ctx.reverse), g * u.to(acc))
        start = (torch.zeros_like(h_walk[0]) if h0 is None else h0.to(acc))[None]
        du = (da * torch.cat([start, h_walk[:-1]])).sum((0, 1)).to(u.dtype)
        dbias = None if ctx.bias_dtype is None else da.sum((0, 1)).to(ctx.bias_dtype)
        dh0 = None if h0 is None else (u.to(acc) * da[0]).to(h0.dtype)
        return _along_walk(da, order, ctx.reverse).to(h.dtype), du, dh0, dbias, None, None


def recurrence_chunked(
    x: torch.Tensor,
    u: torch.Tensor,
    h0: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = relu(x_t + u * h_{t-1} + bias) in eager PyTorch as a chunked scan, for T >= 1; the
    contract of `indrnn_recurrence` (which checks the inputs): returns (h, h_last)."""
    h = _ChunkedFunction.apply(x, u, h0, bias, lengths, reverse)
    return h, last_state(h, lengths, reverse)
