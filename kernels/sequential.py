"""The IndRNN recurrence as a sequential walk over time in Triton: forward and backward kernels and
their launchers.

    h_t = act(x_t + u * h_{t-1} + bias),    x: (T, B, H),  u, bias: (H,),  h0: (B, H)

`x` is the input projection `W x_t` for every step, already computed by one GEMM. What is
left is elementwise and sequential in time only, so the B*H columns are independent: a
program owns BLOCK consecutive columns of the (B, H) plane and walks time. The walk is a
dependent chain (one fma and the activation per step); to keep it off the load latency, time is
cut into chunks of CHUNK steps, and a chunk's loads (which do not depend on the state) are in
flight while the chunk before runs from registers. Two sets of registers take turns, so no loaded
value is copied while its load is in flight: the prefetch is one chunk deep, as the SASS shows
(kernels/sass.py reads it). State and arithmetic are fp32; storage is x's dtype.

Backward walks time in reverse with the same chunking. It recomputes the activation
derivative from the stored h (relu: h > 0; tanh: 1 - h^2), so the forward keeps nothing
but h. du and dbias are per-column fp32 sums written by each program to its own slots and
reduced over the batch afterwards by a plain (deterministic) sum: no float atomics, so two
backward passes on the same input give bit-identical gradients.

The forward walks t = 0..T-1, or t = T-1..0 with REVERSE (the backward direction of a
bidirectional layer: no flipped copy is made); the backward walks the other way. With HAS_LENGTHS
each batch row stops at its own length: later steps load nothing, keep the state and store zeros,
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
    backward_operands,
    ceil_div,
    plane_offsets,
    states_like,
    with_unit_neuron_stride,
)
from kernels.speed import Work

# The autotune space, per direction: (BLOCK, num_warps) -> the CHUNKs tried with it. An iteration of
# a walk runs two chunks from two sets of registers (see the kernels), so 2 * CHUNK * BLOCK /
# (32 * num_warps) loaded values wait in registers per thread in the forward, twice that in the
# backward (h and dh); a chunk's loads have the previous chunk's steps to land. The paper's size
# (T=1024, B=32, H=128: 4096 columns, 128 one-warp programs of BLOCK 32) has one warp per SM,
# which must itself cover ~600 ns of load latency after an L2 flush: long chunks at one column per
# thread. Large sizes hide latency by occupancy: short chunks of four columns per thread (128-bit
# loads in fp32). Pruned by what the SASS shows (`run_bench.py kernel-report`, kernels/speed.py):
# at BLOCK 32 shorter chunks model slower at the paper size, and so do two columns per thread
# (BLOCK 64, one warp); at four columns a thread, chunks of 16 (8 backward) only cost registers,
# halving the programs an SM holds, while the large size is bandwidth bound either way; the
# backward at eight columns a thread needs 225-232 registers, and with chunks of 28 at BLOCK 32
# up to 254 (no faster at triton 3.6).
SPACE = {
    "fwd": {
        (32, 1): (40, 48),
        **{bw: (4, 8) for bw in ((128, 1), (256, 2), (512, 4), (1024, 8))},
        (1024, 4): (4,),
    },
    "bwd": {
        (32, 1): (24,),
        **{bw: (4,) for bw in ((128, 1), (256, 2), (512, 4), (1024, 8))},
    },
}
# The configs the speed model is read at: for the paper's size the one-warp config with the best
# modeled ns per step over triton 3.6 and 3.9, and the same for a long sequence of one batch row (its
# 256 columns make 8 programs of BLOCK 32: no config of the space spreads them wider); for the large
# size four columns a thread.
PAPER_SIZE_CONFIGS = {
    "fwd": {"BLOCK": 32, "CHUNK": 40, "num_warps": 1},
    "bwd": {"BLOCK": 32, "CHUNK": 24, "num_warps": 1},
}
LARGE_SIZE_CONFIGS = {
    "fwd": {"BLOCK": 512, "CHUNK": 8, "num_warps": 4},
    "bwd": {"BLOCK": 512, "CHUNK": 4, "num_warps": 4},
}


def autotune_configs(single: bool, backward: bool = False) -> list[triton.Config]:
    """The space the GPU autotuner searches (SPACE), or with `single` exactly one config: the
    interpreter takes no more, and correctness-only runs (INDRNN_AUTOTUNE=0, as `validate` runs
    the tests) should not spend minutes tuning every shape they touch."""
    if single:
        return [triton.Config({"BLOCK": 128, "CHUNK": 4}, num_warps=4)]
    return [
        triton.Config({"BLOCK": block, "CHUNK": chunk}, num_warps=warps)
        for (block, warps), chunks in SPACE["bwd" if backward else "fwd"].items()
        for chunk in chunks
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
    """One backward step: da_t = g_t * (dh_t + u * da_{t+1}) with g_t = act'(a_t) from h_t. For relu
    g_t is 0 or 1: an fma and a select. Otherwise g_t * dh_t + (g_t * u) * da_{t+1}: both products
    are off the dependent chain, which is one fma per step."""
    if ACT == 0:
        return tl.where(b_h > 0.0, tl.fma(b_u, b_da, b_dh.to(tl.float32)), 0.0)
    b_g = activation_grad(b_h, ACT)
    return tl.fma(b_g * b_u, b_da, b_g * b_dh.to(tl.float32))


@triton.jit
def _load_chunk(p, step, mask, time, n_skip, HAS_LENGTHS: tl.constexpr, HEAD: tl.constexpr, CHUNK: tl.constexpr):
    """The CHUNK planes at p, p + step, ... as a tuple of loads issued back to back. Lanes a mask
    leaves out keep whatever their register held: the steps that would use them store nothing.
    Steps that are not part of the walk read as 0 and touch no memory: with HAS_LENGTHS those at or
    past their row's length (time = (t, dt, lengths): step i is at time t + i * dt), in the HEAD
    chunk the first n_skip."""
    t, dt, b_len = time
    b_chunk = ()
    for i in tl.static_range(CHUNK):
        if HAS_LENGTHS or HEAD:
            m_step = mask
            if HEAD:
                m_step = tl.where(i >= n_skip, m_step, False)  # not `mask & scalar`: the interpreter rejects it
            if HAS_LENGTHS:
                m_step = m_step & (t + i * dt < b_len)
            b_chunk = b_chunk + (tl.load(p + i * step, mask=m_step, other=0.0),)
        else:
            b_chunk = b_chunk + (tl.load(p + i * step, mask=mask),)
    return b_chunk


@triton.jit
def _fwd_steps(b_xs, b_h, b_u, b_bias, p, step, mask, time, n_skip, HAS_BIAS: tl.constexpr,
               HAS_LENGTHS: tl.constexpr, ACT: tl.constexpr, HEAD: tl.constexpr, FIRST: tl.constexpr,
               LAST: tl.constexpr):  # fmt: skip
    """Forward steps FIRST..LAST-1 of a chunk from its loaded planes b_xs, storing h at p + i * step
    (step i is at time t + i * dt, time = (t, dt, lengths)). In the HEAD chunk the first n_skip steps
    are not part of the walk."""
    t, dt, b_len = time
    for i in tl.static_range(FIRST, LAST):
        b_next = _step(b_xs[i], b_u, b_h, b_bias, HAS_BIAS, ACT)
        b_out = b_next
        if HAS_LENGTHS:  # past its length a row keeps its state and its output is 0
            m_valid = t + i * dt < b_len
            b_next = tl.where(m_valid, b_next, b_h)
            b_out = tl.where(m_valid, b_next, 0.0)
        if HEAD:
            b_h = tl.where(i >= n_skip, b_next, b_h)
            tl.store(p + i * step, b_out.to(p.dtype.element_ty), mask=tl.where(i >= n_skip, mask, False))
        else:
            b_h = b_next
            tl.store(p + i * step, b_out.to(p.dtype.element_ty), mask=mask)
    return b_h


@triton.jit
def _fwd_chunk(b_xs, b_h, b_u, b_bias, p_h, step_h, m_h, time, p_x, step_x, m_x, time_x, HAS_BIAS: tl.constexpr,
               HAS_LENGTHS: tl.constexpr, ACT: tl.constexpr, CHUNK: tl.constexpr):  # fmt: skip
    """A whole chunk of forward steps from b_xs, and the loads of another chunk (at p_x, time_x) into
    the registers it returns. The loads are issued after the first step: its wait for b_xs must not
    also wait for them."""
    b_h = _fwd_steps(b_xs, b_h, b_u, b_bias, p_h, step_h, m_h, time, 0, HAS_BIAS, HAS_LENGTHS, ACT, False, 0, 1)
    b_next = _load_chunk(p_x, step_x, m_x, time_x, 0, HAS_LENGTHS, False, CHUNK)
    b_h = _fwd_steps(b_xs, b_h, b_u, b_bias, p_h, step_h, m_h, time, 0, HAS_BIAS, HAS_LENGTHS, ACT, False, 1, CHUNK)
    return b_h, b_next


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
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0).to(tl.int32)

    # Walk step w visits time t0 + w * dt. Pointers move a chunk at a time by int64 strides (more
    # than 2^31 elements are fine); within a chunk each step is a fixed multiple of the stride away.
    # The first T % CHUNK steps are the head, masked step by step: the head chunk starts at walk
    # step T % CHUNK - CHUNK, and its first CHUNK - T % CHUNK steps are not part of the walk.
    t0, dt = 0, 1
    if REVERSE:
        t0, dt = T - 1, -1
    step_x = tl.cast(stride_t, tl.int64) * dt
    step_h = tl.cast(stride_ht, tl.int64) * dt
    n_skip = CHUNK - T % CHUNK
    n_full = T // CHUNK
    t = t0 - n_skip * dt
    p_xc = p_x + plane_offsets(o_col, H, stride_b) + t * tl.cast(stride_t, tl.int64)
    p_hc = p_h + plane_offsets(o_col, H, stride_hb) + t * tl.cast(stride_ht, tl.int64)
    dp_x, dp_h, dt_c = CHUNK * step_x, CHUNK * step_h, CHUNK * dt  # a chunk further

    # The head and the first whole chunk are loaded together: the walk waits once to start.
    b_xs = _load_chunk(p_xc, step_x, m_col, (t, dt, b_len), n_skip, HAS_LENGTHS, True, CHUNK)
    m_first = tl.where(n_full > 0, m_col, False)
    b_xa = _load_chunk(p_xc + dp_x, step_x, m_first, (t + dt_c, dt, b_len), 0, HAS_LENGTHS, False, CHUNK)
    if n_skip < CHUNK:
        b_h = _fwd_steps(b_xs, b_h, b_u, b_bias, p_hc, step_h, m_col, (t, dt, b_len), n_skip, HAS_BIAS, HAS_LENGTHS,
                         ACT, True, 0, CHUNK)  # fmt: skip
    # Whole chunks, two per iteration from two sets of registers, a and b, that are never copied:
    # while a chunk runs from one set, the next one's loads are in flight into the other. With an odd
    # number of whole chunks the last b chunk is empty: it loads and stores nothing, and the state it
    # leaves is never read.
    for c in range(0, n_full, 2):
        m_b = tl.where(c + 1 < n_full, m_col, False)
        m_a = tl.where(c + 2 < n_full, m_col, False)
        b_h, b_xb = _fwd_chunk(b_xa, b_h, b_u, b_bias, p_hc + dp_h, step_h, m_col, (t + dt_c, dt, b_len),
                               p_xc + 2 * dp_x, step_x, m_b, (t + 2 * dt_c, dt, b_len), HAS_BIAS, HAS_LENGTHS, ACT,
                               CHUNK)  # fmt: skip
        b_h, b_xa = _fwd_chunk(b_xb, b_h, b_u, b_bias, p_hc + 2 * dp_h, step_h, m_b, (t + 2 * dt_c, dt, b_len),
                               p_xc + 3 * dp_x, step_x, m_a, (t + 3 * dt_c, dt, b_len), HAS_BIAS, HAS_LENGTHS, ACT,
                               CHUNK)  # fmt: skip
        p_xc += 2 * dp_x
        p_hc += 2 * dp_h
        t += 2 * dt_c


@triton.jit
def _bwd_steps(b_hs, b_dhs, carry, b_u, p, step, mask, time, n_skip, HAS_LENGTHS: tl.constexpr, ACT: tl.constexpr,
               HEAD: tl.constexpr, FIRST: tl.constexpr, LAST: tl.constexpr):  # fmt: skip
    """Backward steps FIRST..LAST-1 of a chunk from its loaded h and dh, storing dx at p + i * step
    (step i is at time t + i * dt, time = (t, dt, lengths)). carry = (da, dx, du, db): da of the step
    walked before (time t + 1 in time order), the dx it stored, and the column's du and dbias sums.
    That step's previous state is this step's h: its du term dx * h is added here. In the HEAD chunk
    the first n_skip steps are not part of the walk."""
    t, dt, b_len = time
    b_da, b_dx, b_du, b_db = carry
    for i in tl.static_range(FIRST, LAST):
        b_h = b_hs[i].to(tl.float32)
        b_du_next = b_du + b_dx * b_h
        b_da_t = _back_step(b_dhs[i], b_h, b_u, b_da, ACT)
        b_da_next = b_da_t
        if HAS_LENGTHS:  # past its length a row's state was kept: da passes through, dx is 0
            m_valid = t + i * dt < b_len
            b_da_next = tl.where(m_valid, b_da_t, b_da)
            b_da_t = tl.where(m_valid, b_da_t, 0.0)
        if HEAD:
            m_walk = i >= n_skip
            b_du = tl.where(m_walk, b_du_next, b_du)
            b_db = tl.where(m_walk, b_db + b_da_t, b_db)
            b_da = tl.where(m_walk, b_da_next, b_da)
            b_dx = tl.where(m_walk, b_da_t, b_dx)
            tl.store(p + i * step, b_da_t.to(p.dtype.element_ty), mask=tl.where(m_walk, mask, False))
        else:
            b_du = b_du_next
            b_db += b_da_t
            b_da = b_da_next
            b_dx = b_da_t
            tl.store(p + i * step, b_da_t.to(p.dtype.element_ty), mask=mask)
    return b_da, b_dx, b_du, b_db


@triton.jit
def _bwd_chunk(b_hs, b_dhs, carry, b_u, p_dx, step_h, m_dx, time, p_h, p_dh, step_d, m_load, time_load,
               HAS_LENGTHS: tl.constexpr, ACT: tl.constexpr, CHUNK: tl.constexpr):  # fmt: skip
    """A whole chunk of backward steps, and the loads of another chunk's h and dh (at p_h and p_dh,
    time_load) into the registers it returns, issued after the first step as in the forward."""
    carry = _bwd_steps(b_hs, b_dhs, carry, b_u, p_dx, step_h, m_dx, time, 0, HAS_LENGTHS, ACT, False, 0, 1)
    b_next_h = _load_chunk(p_h, step_h, m_load, time_load, 0, HAS_LENGTHS, False, CHUNK)
    b_next_dh = _load_chunk(p_dh, step_d, m_load, time_load, 0, HAS_LENGTHS, False, CHUNK)
    carry = _bwd_steps(b_hs, b_dhs, carry, b_u, p_dx, step_h, m_dx, time, 0, HAS_LENGTHS, ACT, False, 1, CHUNK)
    return carry, b_next_h, b_next_dh


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
):
    pid = tl.program_id(0)
    o_col = pid * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    b_u = tl.load(p_u + o_col % H, mask=m_col, other=0.0)
    b_len = T
    if HAS_LENGTHS:
        b_len = tl.load(p_lengths + o_col // H, mask=m_col, other=0).to(tl.int32)
    b_zero = tl.zeros([BLOCK], dtype=tl.float32)
    carry = (b_zero, b_zero, b_zero, b_zero)  # da, dx of the step walked before; du, dbias so far

    # Undo the forward's walk: walk step w visits time t0 + w * dt, the forward's order reversed
    # (t = T-1 .. 0, or 0 .. T-1 with REVERSE). Each step loads its h and dh: h_t gives the
    # activation's derivative, and it is the previous state of the step walked before, whose du
    # term is added with it. The walk's last step has h0 before it: its term is added at the end.
    # Head, chunks and pointers as in the forward; dx has h's strides.
    t0, dt = T - 1, -1
    if REVERSE:
        t0, dt = 0, 1
    step_h = tl.cast(stride_ht, tl.int64) * dt
    step_d = tl.cast(stride_dt, tl.int64) * dt
    n_skip = CHUNK - T % CHUNK
    n_full = T // CHUNK
    t = t0 - n_skip * dt
    o_h = plane_offsets(o_col, H, stride_hb) + t * tl.cast(stride_ht, tl.int64)
    p_hc, p_xc = p_h + o_h, p_dx + o_h
    p_dc = p_dh + plane_offsets(o_col, H, stride_db) + t * tl.cast(stride_dt, tl.int64)
    dp_h, dp_d, dt_c = CHUNK * step_h, CHUNK * step_d, CHUNK * dt

    b_hs = _load_chunk(p_hc, step_h, m_col, (t, dt, b_len), n_skip, HAS_LENGTHS, True, CHUNK)
    b_dhs = _load_chunk(p_dc, step_d, m_col, (t, dt, b_len), n_skip, HAS_LENGTHS, True, CHUNK)
    m_first = tl.where(n_full > 0, m_col, False)
    b_ha = _load_chunk(p_hc + dp_h, step_h, m_first, (t + dt_c, dt, b_len), 0, HAS_LENGTHS, False, CHUNK)
    b_dha = _load_chunk(p_dc + dp_d, step_d, m_first, (t + dt_c, dt, b_len), 0, HAS_LENGTHS, False, CHUNK)
    if n_skip < CHUNK:
        carry = _bwd_steps(b_hs, b_dhs, carry, b_u, p_xc, step_h, m_col, (t, dt, b_len), n_skip, HAS_LENGTHS, ACT,
                           True, 0, CHUNK)  # fmt: skip
    # Whole chunks, two per iteration, as in the forward. With an odd number of them the last b chunk
    # is empty and its steps run on nothing: what they leave is dropped for what the a chunk left.
    kept = carry
    for c in range(0, n_full, 2):
        m_b = tl.where(c + 1 < n_full, m_col, False)
        m_a = tl.where(c + 2 < n_full, m_col, False)
        carry, b_hb, b_dhb = _bwd_chunk(b_ha, b_dha, carry, b_u, p_xc + dp_h, step_h, m_col, (t + dt_c, dt, b_len),
                                        p_hc + 2 * dp_h, p_dc + 2 * dp_d, step_d, m_b, (t + 2 * dt_c, dt, b_len),
                                        HAS_LENGTHS, ACT, CHUNK)  # fmt: skip
        kept = carry
        carry, b_ha, b_dha = _bwd_chunk(b_hb, b_dhb, carry, b_u, p_xc + 2 * dp_h, step_h, m_b,
                                        (t + 2 * dt_c, dt, b_len), p_hc + 3 * dp_h, p_dc + 3 * dp_d, step_d, m_a,
                                        (t + 3 * dt_c, dt, b_len), HAS_LENGTHS, ACT, CHUNK)  # fmt: skip
        p_hc += 2 * dp_h
        p_dc += 2 * dp_d
        p_xc += 2 * dp_h
        t += 2 * dt_c
    if n_full % 2 == 1:
        carry = kept
    b_da, _, b_du, b_db = carry

    # b_da is now the da of the step whose previous state is h0: the walk's last (t = 0), or with
    # REVERSE and lengths a row's last step (padding after it passed da through unchanged).
    if HAS_H0:
        b_du += b_da * tl.load(p_h0 + o_col, mask=m_col, other=0.0)
    tl.store(p_du_cols + o_col, b_du, mask=m_col)
    tl.store(p_db_cols + o_col, b_db, mask=m_col)
    tl.store(p_dh0 + o_col, b_u * b_da, mask=m_col)


def _walk_work(tensors: int, direction: str) -> Work:
    """What an iteration of a walk's time loop covers, for the speed model: two chunks of CHUNK time
    steps of BLOCK columns. A launch runs one program per BLOCK columns, each walking all T steps,
    and moves each of its `tensors` (T, B, H) tensors once."""
    return Work(
        unit="time step",
        units_per_iteration=lambda config: 2 * config["CHUNK"],
        programs=lambda config, shape: ceil_div(shape.B * shape.H, config["BLOCK"]),
        units_per_program=lambda config, shape: shape.T,
        bytes_moved=lambda config, shape, element_bytes: tensors * shape.T * shape.B * shape.H * element_bytes,
        configs={
            "paper": PAPER_SIZE_CONFIGS[direction],
            "large": LARGE_SIZE_CONFIGS[direction],
            "long": PAPER_SIZE_CONFIGS[direction],
        },
    )


FWD_WORK = _walk_work(2, "fwd")  # reads x, writes h
BWD_WORK = _walk_work(3, "bwd")  # reads h and dh, writes dx


# Launches pin enable_fp_fusion=True (triton's default through 3.9, announced to flip in 3.10),
# so they compile the code that the tests and `kernel-report` check (kernels/aot.py pins it too).
def _grid(meta: dict) -> tuple[int]:
    return (ceil_div(meta["n_cols"], meta["BLOCK"]),)


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
    h, dh, dx = backward_operands(h, dh)
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
