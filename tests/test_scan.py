"""The chunked scan (kernels/scan.py) against the sequential walk and the float64 reference: both
schedules of the triton backend (through the interpreter on a CPU), the torch chunked form against
the torch loop, the auto rule, the custom ops, and the compiled code (no spills; every load of a
sub-chunk in flight before the first is used; the cuts and bytes the speed model reads).

The interpreter runs the kernels with INTERPRETER_CONFIG (8-step chunks of two 4-step sub-chunks,
carry groups of 2), so a few dozen steps cross several chunks and groups; other cuts are launched
directly.
"""

import pytest
import torch
import triton
from harness_helpers import TRITON

import kernels.op
import kernels.recurrence
from kernels import IndRNN, indrnn_recurrence, recurrence_reference, resolve_schedule
from kernels.aot import KERNELS, WORK
from kernels.loop import recurrence_loop
from kernels.recurrence import CPU_SCAN_MAX_COLUMNS, FILL_WARPS_PER_SM, SCAN_MIN_STEPS
from kernels.scan import (
    BACKWARD_CONFIG,
    FORWARD_CONFIG,
    INTERPRETER_CONFIG,
    ScanConfig,
    recurrence_chunked,
    scan_bwd,
    scan_config,
    scan_fwd,
)
from kernels.sequential import recurrence_bwd, recurrence_fwd
from kernels.speed import GPUS, SIZES

# Relative error allowed for 16-bit storage (10 and 7 mantissa bits; every state is rounded).
HALF_TOLERANCE = {torch.float16: 5e-3, torch.bfloat16: 4e-2}
# Gradients in fp32 are equal up to rounding that the backward chain carries over T steps (and
# amplifies where |u| > 1): the suite's fp32 tolerance. States are held to 1e-6.
FP32_GRAD = 1e-5
# du and dbias are sums over T that the scan adds in another order (per-chunk parts, then one
# reduction); with u = 1.3 the terms grow as 1.3^T and cancel, so the two orders can differ by
# somewhat more: 1.3e-5 of max |du| was seen at T = 29 for one dh (triton 3.6's interpreter).
FP32_SUM = 3e-5


def rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).norm() / want.double().norm().clamp_min(1e-30)).item()


def sum_error(got: torch.Tensor, want: torch.Tensor, da: torch.Tensor, h_max: float, name: str) -> float:
    """The error of du (sum over t and b of da * h_prev) or dbias (of da), whose terms may nearly
    cancel: measured against the sum of the terms' magnitudes, per neuron."""
    scale = da.double().abs().sum((0, 1)) * (h_max if name == "u" else 1.0)
    return ((got.double() - want.double()).abs() / scale.clamp_min(1e-30)).max().item()


def make_inputs(T, B, H, device, dtype=torch.float32, seed=0, u_big=1.3):
    """Inputs with the u that stress the scan: u = 0 (0 * bound), negative u (bounds swap) and
    |u| > 1 (slopes grow: u_big, and -1.2), beside u in (-1, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, H, generator=g).to(device, dtype)
    u = torch.empty(H).uniform_(-1.0, 1.0, generator=g)
    u[: min(H, 4)] = torch.tensor([0.0, -1.2, u_big, -0.5])[: min(H, 4)]
    h0 = torch.randn(B, H, generator=g)
    bias = torch.randn(H, generator=g) * 0.3
    return x, u.to(device), h0.to(device), bias.to(device)


def lengths_for(T, B, device):
    """Row lengths with both ends present: 1 and T."""
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(1))
    lengths[0], lengths[-1] = T, 1
    return lengths.to(device)


def forward_backward(fn, x, u, h0, bias, w_h, w_last, cast):
    """h, h_last and the gradients of a loss that weights every state and h_last separately."""
    leaves = [None if t is None else cast(t).requires_grad_() for t in (x, u, h0, bias)]
    h, h_last = fn(*leaves)
    ((h.double() * w_h).sum() + (h_last.double() * w_last).sum()).backward()
    return h, h_last, [None if t is None else t.grad for t in leaves]


CASES = [
    # T, B, H, reverse, with lengths, with h0, with bias
    (1, 2, 5, False, False, True, True),  # T = 1: one chunk, mostly padding
    (37, 3, 13, False, True, True, True),  # T not a multiple of the chunk; lengths 1 and T
    (37, 3, 13, True, True, False, True),  # the reverse walk meets its padding first
    (40, 2, 6, True, False, True, False),  # T a multiple of the chunk
]


@pytest.mark.parametrize("T,B,H,reverse,with_lengths,with_h0,with_bias", CASES)
@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_scan_matches_walk_and_float64(T, B, H, reverse, with_lengths, with_h0, with_bias, backend, device):
    """Forward and every gradient (x, u, h0, bias, also through h_last) of the scan against the
    walk of the same backend (fp32 rounding apart) and against the float64 reference."""
    x, u, h0, bias = make_inputs(T, B, H, device)
    h0, bias = (h0 if with_h0 else None), (bias if with_bias else None)
    lengths = lengths_for(T, B, device) if with_lengths else None
    w_h = torch.randn(x.shape, dtype=torch.float64, device=device)
    # Same sign as w_h at the last step: autograd adds the two in fp32 there, and a nearly cancelling
    # pair would be rounded far above the precision of the result.
    w_last = torch.randn(x.shape[1:], dtype=torch.float64, device=device).abs() * w_h[-1].sign()

    def run(fn, cast):
        return forward_backward(fn, x, u, h0, bias, w_h, w_last, cast)

    runs = {
        schedule: run(
            lambda *a, s=schedule: indrnn_recurrence(*a, backend=backend, lengths=lengths, reverse=reverse, schedule=s),
            lambda t: t.detach().clone(),
        )
        for schedule in ("scan", "sequential")
    }
    want = run(lambda *a: recurrence_reference(*a, lengths=lengths, reverse=reverse), lambda t: t.detach().double())
    (h, h_last, grads), (h_walk, h_last_walk, grads_walk) = runs["scan"], runs["sequential"]
    assert h.dtype == x.dtype and h.shape == x.shape
    for got, walk, ref in ((h, h_walk, want[0]), (h_last, h_last_walk, want[1])):
        assert rel_error(got, walk) < 1e-6 and rel_error(got, ref) < 1e-6
    if with_lengths:  # steps past a row's length output exactly 0
        assert (h[torch.arange(T, device=device)[:, None] >= lengths] == 0).all()
    h_max = max(want[0].abs().max().item(), 0.0 if h0 is None else h0.abs().max().item())
    for name, got, walk, ref in zip(("x", "u", "h0", "bias"), grads, grads_walk, want[2], strict=True):
        if ref is None:
            assert got is None
        elif name in ("u", "bias"):
            da = want[2][0]  # the gradient of x is da
            errors = sum_error(got, walk, da, h_max, name), sum_error(got, ref, da, h_max, name)
            assert max(errors) < FP32_GRAD, (name, errors)
        else:
            assert rel_error(got, walk) < FP32_GRAD and rel_error(got, ref) < FP32_GRAD, name


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_storage(dtype, device):
    """fp16/bf16 inputs: states kept in fp32, stored in the input dtype, as the walk stores them."""
    x, u, h0, bias = make_inputs(37, 3, 13, device, dtype)
    lengths = lengths_for(37, 3, device)
    leaves = [t.clone().requires_grad_() for t in (x, u, h0, bias)]
    h, _ = indrnn_recurrence(*leaves, backend="triton", lengths=lengths, schedule="scan")
    dh = torch.randn(h.shape, device=device).to(dtype)
    h.backward(dh)
    ref = [t.detach().double().requires_grad_() for t in (x, u, h0, bias)]
    h_ref, _ = recurrence_reference(*ref, lengths=lengths)
    h_ref.backward(dh.double())
    assert h.dtype == dtype and leaves[0].grad.dtype == dtype
    assert rel_error(h, h_ref) < HALF_TOLERANCE[dtype]
    for leaf, r in zip(leaves, ref, strict=True):
        assert rel_error(leaf.grad, r.grad) < 2 * HALF_TOLERANCE[dtype]


CUTS = [
    INTERPRETER_CONFIG,
    ScanConfig(chunk=4, sub=4, block=32, warps=1, carry_block=32, carry_warps=1, group=3),  # one sub-chunk a chunk
    ScanConfig(chunk=16, sub=4, block=32, warps=1, carry_block=16, carry_warps=1, group=1),  # four sub-chunks
    ScanConfig(chunk=1, sub=1, block=32, warps=1, carry_block=64, carry_warps=1, group=4),  # every step's map used
]


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.parametrize("config", CUTS, ids=lambda c: f"chunk{c.chunk}-sub{c.sub}-group{c.group}")
@pytest.mark.parametrize("reverse", [False, True])
def test_every_cut_matches_the_walk(config, reverse, device):
    """The launchers with other cuts: forward and backward kernels against the sequential ones on
    the same h and dh, with 45 columns over two blocks (the second partly masked)."""
    T, B, H = 29, 3, 15
    x, u, h0, bias = make_inputs(T, B, H, device)
    lengths = lengths_for(T, B, device)
    h = scan_fwd(x, u, h0, bias, 0, lengths, reverse, config=config)
    h_walk = recurrence_fwd(x, u, h0, bias, 0, lengths, reverse)
    assert rel_error(h, h_walk) < 1e-6
    dh = torch.randn_like(x)
    got = scan_bwd(h_walk, dh, u, h0, 0, lengths, reverse, config=config)
    want = recurrence_bwd(h_walk, dh, u, h0, 0, lengths, reverse)
    for name, g, w in zip(("dx", "du", "dbias", "dh0"), got, want, strict=True):
        assert rel_error(g, w) < (FP32_SUM if name in ("du", "dbias") else FP32_GRAD), name


@pytest.mark.triton
def test_batch_first_strides(device):
    """A (B, T, H) tensor viewed time first is read in place; h and dx come back batch first in
    memory, as the walk lays them out."""
    B, T, H = 3, 21, 9
    base = torch.randn(B, T, H, device=device)
    u, bias = torch.rand(H, device=device) * 2 - 1, torch.randn(H, device=device)
    x = base.transpose(0, 1)
    for schedule in ("scan", "sequential"):
        leaf = x.clone().requires_grad_()  # clone keeps the batch-first strides
        h, _ = indrnn_recurrence(leaf, u, bias=bias, backend="triton", schedule=schedule)
        h.backward(torch.ones_like(h))
        assert leaf.stride() == h.stride() == leaf.grad.stride() == (H, T * H, 1)
        if schedule == "scan":
            h_scan, dx_scan = h.detach(), leaf.grad
    assert rel_error(h_scan, h) < 1e-6 and rel_error(dx_scan, leaf.grad) < 1e-6
    h_ref, _ = recurrence_reference(x.contiguous().double(), u.double(), bias=bias.double())
    assert rel_error(h_scan, h_ref) < 1e-6


@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_gradients_repeat_bit_for_bit(backend, device):
    x, u, h0, bias = make_inputs(45, 3, 20, device)
    dh = torch.randn_like(x)
    runs = []
    for _ in range(2):
        leaves = [t.clone().requires_grad_() for t in (x, u, h0, bias)]
        h, _ = indrnn_recurrence(*leaves, backend=backend, schedule="scan")
        h.backward(dh)
        runs.append([t.grad for t in leaves])
    for g1, g2 in zip(*runs, strict=True):
        assert torch.equal(g1, g2)


# ---------------------------------------------------------------------------- the torch form


@pytest.mark.parametrize("T", [3, 70, 81])
@pytest.mark.parametrize("reverse", [False, True])
def test_torch_chunked_form_equals_the_loop(T, reverse):
    """The torch chunked form against the torch loop and the float64 reference, h and every
    gradient, at T with no whole chunks (3), whole chunks and a tail (70), and a square (81).
    Each is within fp32 rounding of float64; the two fp32 forms round differently, so they may
    differ by twice that. The largest u is 1.05: over 81 steps 1.3 would grow the backward chain's
    terms 2e9-fold, and their nearly cancelling sums then round far above the result's precision."""
    x, u, h0, bias = make_inputs(T, 4, 10, "cpu", u_big=1.05)
    lengths = lengths_for(T, 4, "cpu")
    dh = torch.randn(x.shape, dtype=torch.float64)
    runs = []
    for fn, cast in (
        (recurrence_chunked, torch.clone),
        (lambda *a, **k: recurrence_loop(*a, "relu", **k), torch.clone),
        (recurrence_reference, lambda t: t.double()),
    ):
        leaves = [cast(t).requires_grad_() for t in (x, u, h0, bias)]
        h, h_last = fn(*leaves, lengths=lengths, reverse=reverse)
        (h * dh.to(h.dtype)).sum().backward()
        runs.append((h, h_last, *[t.grad for t in leaves]))
    chunked, loop, want = runs
    h_max = max(want[0].abs().max().item(), h0.abs().max().item())
    for name, got, walk, ref in zip(("h", "h_last", "x", "u", "h0", "bias"), chunked, loop, want, strict=True):
        if name in ("u", "bias"):
            errors = sum_error(got, ref, want[2], h_max, name), sum_error(got, walk, want[2], h_max, name)
        else:
            errors = rel_error(got, ref), rel_error(got, walk)
        tolerance = 1e-6 if name in ("h", "h_last") else FP32_GRAD
        assert errors[0] < tolerance and errors[1] < 2 * tolerance, (name, errors)


def test_torch_chunked_form_against_float64():
    """Long enough for many chunks (T = 300: 17-step chunks) with u near and beyond 1."""
    x, u, h0, bias = make_inputs(300, 2, 8, "cpu")
    h, _ = recurrence_chunked(x.double(), u.double(), h0.double(), bias.double())
    h_ref, _ = recurrence_reference(x.double(), u.double(), h0.double(), bias.double())
    assert rel_error(h, h_ref) < 1e-12
    h32, _ = recurrence_chunked(x, u, h0, bias)
    assert rel_error(h32, h_ref) < 1e-6


# ---------------------------------------------------------------------------- choosing the schedule


def test_auto_rule_on_a_cpu():
    """The scan where the walk is long and the columns few; the walk elsewhere, for tanh, and for
    the reference; an impossible request is an error."""
    long_few = torch.empty(SCAN_MIN_STEPS, 1, CPU_SCAN_MAX_COLUMNS)
    assert resolve_schedule(long_few, backend="torch") == "scan"
    assert resolve_schedule(torch.empty(SCAN_MIN_STEPS - 1, 1, 8), backend="torch") == "sequential"
    assert resolve_schedule(torch.empty(SCAN_MIN_STEPS, 2, CPU_SCAN_MAX_COLUMNS), backend="torch") == "sequential"
    assert resolve_schedule(long_few, "tanh", backend="torch") == "sequential"
    assert resolve_schedule(long_few, backend="reference") == "sequential"
    assert resolve_schedule(long_few, backend="torch", schedule="sequential") == "sequential"
    assert resolve_schedule(torch.empty(2, 1, 4), backend="torch", schedule="scan") == "scan"
    with pytest.raises(ValueError, match="schedule='scan' needs activation='relu'"):
        resolve_schedule(long_few, "tanh", backend="torch", schedule="scan")
    with pytest.raises(ValueError, match="the reference is the plain loop"):
        resolve_schedule(long_few, backend="reference", schedule="scan")
    with pytest.raises(ValueError, match="schedule must be one of"):
        indrnn_recurrence(torch.randn(0, 1, 3), torch.rand(3), schedule="parallel")
    with pytest.raises(ValueError, match="schedule='scan' needs activation='relu'"):
        IndRNN(3, 4, activation="tanh", schedule="scan")


def test_auto_rule_on_a_gpu_counts_warps_per_sm(monkeypatch):
    """On CUDA the scan is taken below FILL_WARPS_PER_SM warps of columns per SM, read from the
    device's properties (faked here: no GPU is needed to check the rule)."""

    class Properties:
        multi_processor_count = 132

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Properties)
    cuda = torch.device("cuda")
    fill = FILL_WARPS_PER_SM * 32 * 132
    assert kernels.recurrence.scan_pays(1024, 32 * 128, cuda)  # the paper's size: 1 warp per SM
    assert kernels.recurrence.scan_pays(SCAN_MIN_STEPS, fill - 1, cuda)
    assert not kernels.recurrence.scan_pays(SCAN_MIN_STEPS, fill, cuda)
    assert not kernels.recurrence.scan_pays(SCAN_MIN_STEPS - 1, 256, cuda)


@pytest.mark.triton
def test_each_backend_runs_the_schedule_it_resolves(monkeypatch, device):
    calls = []
    for module, name in ((kernels.recurrence, "recurrence_chunked"), (kernels.op, "scan_fwd")):
        launch = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=launch, _n=name, **k: calls.append(_n) or _f(*a, **k))
    x, u = torch.randn(SCAN_MIN_STEPS, 1, 3, device=device), torch.rand(3, device=device)
    indrnn_recurrence(x, u, backend="torch")
    indrnn_recurrence(x[:8], u, backend="torch")
    indrnn_recurrence(x[:8], u, backend="triton", schedule="scan")
    indrnn_recurrence(x[:8], u, backend="triton")
    assert calls == ["recurrence_chunked", "scan_fwd"]


@pytest.mark.triton
def test_layers_take_a_schedule(monkeypatch, device):
    """Every recurrence of a stack runs the layer's schedule (two layers, both directions: four
    scan launches), and the outputs equal the walk's."""
    launches = []
    launch = kernels.op.scan_fwd
    monkeypatch.setattr(kernels.op, "scan_fwd", lambda *a, **k: launches.append(1) or launch(*a, **k))
    rnn = IndRNN(3, 5, 2, bidirectional=True, backend="triton", schedule="scan").to(device)
    x = torch.randn(11, 2, 3, device=device)
    out, h_n = rnn(x)
    assert len(launches) == 4
    rnn.schedule = "sequential"
    out_walk, h_n_walk = rnn(x)
    assert len(launches) == 4
    assert rel_error(out, out_walk) < 1e-6 and rel_error(h_n, h_n_walk) < 1e-6


# ---------------------------------------------------------------------------- custom operators


@pytest.mark.slow
@pytest.mark.triton
def test_opcheck_on_the_scan(device):
    """torch.library.opcheck with scan=True: schema, fake against real (batch-first strides),
    autograd and dispatch, forward and backward."""
    T, B, H = 13, 3, 4
    x = torch.randn(B, T, H, device=device).transpose(0, 1)
    u, h0, bias = torch.rand(H, device=device), torch.randn(B, H, device=device), torch.randn(H, device=device)
    lengths = torch.tensor([13, 1, 7], device=device)
    for case in ((x, u, h0, bias, lengths, 0, True, True), (x.contiguous(), u, None, None, None, 0, False, True)):
        args = [
            a.clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in case
        ]
        torch.library.opcheck(kernels.op.recurrence, args)
    h, dh = torch.randn(T, B, H, device=device).relu(), torch.randn(B, T, H, device=device).transpose(0, 1)
    torch.library.opcheck(kernels.op.recurrence_backward, (h, dh, u, h0, lengths, 0, False, True))


@pytest.mark.triton
def test_compiled_scan_traces_whole(monkeypatch, device):
    """torch.compile(fullgraph=True) through the scan: both scan launchers run, and the result and
    gradients equal eager's."""
    torch._dynamo.reset()
    x, u, h0, bias = make_inputs(20, 2, 3, device)

    def step(x, u):
        h, h_last = indrnn_recurrence(x, u, h0, bias, backend="triton", schedule="scan")
        return h.sum() + h_last.sum()

    leaves = [t.clone().requires_grad_() for t in (x, u)]
    step(*leaves).backward()
    eager = [t.grad for t in leaves]
    launches = []
    for name in ("scan_fwd", "scan_bwd"):
        launch = getattr(kernels.op, name)
        monkeypatch.setattr(kernels.op, name, lambda *a, _f=launch, _n=name, **k: launches.append(_n) or _f(*a, **k))
    leaves = [t.clone().requires_grad_() for t in (x, u)]
    torch.compile(step, fullgraph=True)(*leaves).backward()
    assert sorted(set(launches)) == ["scan_bwd", "scan_fwd"]
    for got, want in zip((t.grad for t in leaves), eager, strict=True):
        assert rel_error(got, want) < 1e-6


# ---------------------------------------------------------------------------- compiled code


def test_cut_fills_the_device():
    """Passes 1 and 3 get at least PROGRAMS_PER_SM programs per SM at the paper's size and at B=1,
    H=256, T=65536, with chunks as long as that allows."""
    for backward in (False, True):
        paper = scan_config(1024, 32 * 128, 132, backward)
        assert (paper.chunk, triton.cdiv(1024, paper.chunk) * triton.cdiv(32 * 128, paper.block)) == (32, 1024)
        long = scan_config(65536, 256, 132, backward)
        assert (long.chunk, triton.cdiv(65536, long.chunk) * triton.cdiv(256, long.block)) == (128, 1024)
    assert scan_config(100, 256, None) == INTERPRETER_CONFIG


SCAN_KERNELS = [name for name in KERNELS if name.startswith("scan_")]


def test_the_speed_model_reads_the_cuts_the_launcher_picks():
    """Each pass is compiled and modelled at the cut its launcher picks at each size of the model,
    on the SM count of every GPU of the model (sm_80 code runs on the A100's 108 SMs)."""
    for gpu in GPUS:
        for size, shape in SIZES.items():
            for backward in (False, True):
                cut = scan_config(shape.T, shape.B * shape.H, gpu.sms, backward)
                passes = ("scan_bwd_maps", "scan_bwd") if backward else ("scan_fwd_maps", "scan_fwd")
                for name in passes:
                    want = {"BLOCK": cut.block, "CHUNK": cut.chunk, "SUB": cut.sub, "num_warps": cut.warps}
                    assert WORK[name].configs[size] == want, (gpu.name, size, name)
                carry = WORK["scan_bwd_carry" if backward else "scan_fwd_carry"].configs[size]
                assert carry == {"BLOCK": cut.carry_block, "GROUP": cut.group, "num_warps": cut.carry_warps}


def test_each_pass_moves_the_bytes_its_launcher_allocates():
    """The paper size, fp32: pass 1 reads x (h and dh) and writes a record per chunk (padding included)
    and column, pass 2 reads those and writes a state each, pass 3 reads the data again (from L2 while
    it fits) with the states, and writes h (dx, and two partial sums per chunk and column)."""
    shape, n_cols, data = SIZES["paper"], 32 * 128, 1024 * 32 * 128 * 4
    for backward, record in ((False, 16), (True, 8)):
        cut = scan_config(1024, n_cols, 132, backward)
        chunks, n_chunks = (
            triton.cdiv(1024, cut.chunk),
            triton.cdiv(triton.cdiv(1024, cut.chunk), 2 * cut.group) * 2 * cut.group,
        )
        maps, carry, steps = (
            WORK[f"scan_{'bwd' if backward else 'fwd'}{p}"] for p in ("_maps", "_carry", "")
        )  # fmt: skip
        tensors = 2 if backward else 1
        config = maps.configs["paper"]
        assert maps.bytes_moved(config, shape, 4) == tensors * data + n_cols * n_chunks * record
        assert maps.reread(config, shape, 4) == 0
        config = carry.configs["paper"]
        assert carry.bytes_moved(config, shape, 4) == n_cols * n_chunks * (record + 4)
        assert carry.reread(config, shape, 4) == n_cols * n_chunks * record
        config = steps.configs["paper"]
        sums = 2 * n_cols * chunks * 4 if backward else 0
        assert steps.bytes_moved(config, shape, 4) == (tensors + 1) * data + n_cols * chunks * 4 + sums
        assert steps.reread(config, shape, 4) == tensors * data + n_cols * chunks * 4
        blocks = triton.cdiv(n_cols, cut.block)
        assert (maps.programs(maps.configs["paper"], shape), steps.programs(config, shape)) == (
            n_chunks * blocks,
            chunks * blocks,
        )
        config = carry.configs["paper"]
        assert carry.programs(config, shape) == triton.cdiv(n_cols, cut.carry_block)
        assert carry.units_per_program(config, shape) == n_chunks


# Widest fp32 access, loads and stores: four columns a thread in passes 1 and 3; a chunk's map
# record (4 numbers forward, 2 backward) in the maps' stores and the carry's loads.
FP32_WIDTHS = {
    "scan_fwd_maps": (128, 128),
    "scan_fwd_carry": (128, 32),
    "scan_fwd": (128, 128),
    "scan_bwd_maps": (128, 64),
    "scan_bwd_carry": (64, 32),
    "scan_bwd": (128, 128),
}


@pytest.mark.slow
@pytest.mark.aot
def test_launch_cuts_compile_wide_and_without_spills(report_facts):
    """Every pass at the cut of each size (the longest chunks, the most registers, at B=1, H=256,
    T=65536), on both targets and in every dtype it is compiled in: no spills, and in fp32 the widths
    above."""
    scan = [f for f in report_facts if f.kernel in SCAN_KERNELS]
    assert {f.kernel for f in scan} == set(FP32_WIDTHS) and {f.size for f in scan} == set(SIZES)
    for facts in scan:
        assert facts.spill_bytes == 0 and facts.stack_bytes == 0, facts
        assert 0 < facts.registers <= 255, facts
        if facts.dtype == "fp32":
            assert (facts.load_width_bits, facts.store_width_bits) == FP32_WIDTHS[facts.kernel], facts


@pytest.mark.slow
@pytest.mark.aot
def test_sm90_code_issues_a_sub_chunk_of_loads_before_the_first_use(report_facts):
    """In the sm_90 code of every pass 1 and 3 with more than one sub-chunk a chunk, in every dtype,
    all SUB loads of a sub-chunk (SUB + 1 for the backward's h) are issued before the chain first
    uses one; the carry has the next GROUP chunks' maps in flight when its chain starts on a group."""
    expected = {
        "scan_fwd_maps": FORWARD_CONFIG.sub,
        "scan_fwd": FORWARD_CONFIG.sub,
        "scan_bwd_maps": 2 * BACKWARD_CONFIG.sub,
        "scan_bwd": 2 * BACKWARD_CONFIG.sub + 1,
        "scan_fwd_carry": FORWARD_CONFIG.group,  # the next group's maps, one 128-bit load a chunk
        "scan_bwd_carry": BACKWARD_CONFIG.group,  # one 64-bit load a chunk
    }
    checked = set()
    for facts in report_facts:
        if facts.kernel in expected and facts.cc == 90 and facts.loop["closed"]:
            assert facts.loop["loads_before_first_use"] >= expected[facts.kernel], facts
            checked.add((facts.kernel, facts.dtype))
    assert {k for k, _ in checked} == set(expected) and {d for _, d in checked} == {"fp32", "fp16", "bf16"}
