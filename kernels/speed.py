"""A static speed model: what the compiled code of a kernel implies for its time on a GPU that is not
here, from the hot loop of its SASS (kernels/sass.py) and a few stated numbers about the GPU.

One warp alone on a scheduler needs P cycles per iteration of its hot loop: the issue cycles of the
loop's control bits plus whatever load latency the loop does not hide (the schedule played forward
by `Loop.cycles_per_iteration`; for a loop with one drain of its loads per iteration this is the
closed form S + max(0, L - D), S the issue cycles and D the load-to-drain distance). Several warps
on one scheduler share its issue slots, so an iteration of each takes max(warps * S, P). A kernel
declares what its loop does (`Work`): how many programs a launch runs, how many units (time steps,
elements) each walks and how many one iteration covers, and how many bytes the launch must move.
Then, on a GPU with SMS streaming multiprocessors of four schedulers each:

    compute = waves * iterations per program * max(warps per scheduler * S, P) / clock
    time    = max(compute, bytes / copy bandwidth)

with programs spread evenly over the SMs, as many resident per SM as registers, shared memory and
the warp and block limits allow (waves > 1 when they do not all fit at once). A kernel whose code
has no loop (a program that runs one iteration's work straight through) is one open pass: P is its
whole code played once, its loads' waits included.

A schedule of several launches in sequence (the chunked scan's three passes) takes the sum of their
times plus one load latency per launch: a launch starts when the one before has ended, and nothing
hides its programs' first loads. Its bytes are counted twice over: every launch's from DRAM, and
with the bytes that an earlier launch of the schedule read or wrote (`Work.reread`) taken from L2
as far as its capacity goes (an upper bound on reuse: which lines survive depends on the traffic
in between). What is not modelled: a walk's prologue and epilogue within a launch, the launch
itself (microseconds of host and driver time, less in a CUDA graph), DRAM effects that make the
kernel's access pattern slower than a copy, and clock changes under load. The figures say whether
the code is fast-shaped; only a GPU measures the kernel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from kernels.sass import Loop


@dataclass(frozen=True)
class Machine:
    """What the model assumes about a GPU. Clock, load latency and copy bandwidth are estimates, not
    measurements: see GPUS."""

    name: str
    cc: int  # the compute capability whose code it runs
    sms: int
    clock_ghz: float
    load_latency_ns: float  # a global load that misses a flushed L2, issue to use
    copy_gb_s: float  # a device-to-device copy (read + write), as the suite measures it
    l2_bytes: int  # L2 capacity
    other_latency_cycles: int = 20  # constant cache, shared memory, special functions, conversions
    schedulers_per_sm: int = 4
    registers_per_sm: int = 65536
    max_warps_per_sm: int = 64
    max_programs_per_sm: int = 32
    shared_bytes_per_sm: int = 228 * 1024

    @property
    def load_latency_cycles(self) -> int:
        return round(self.load_latency_ns * self.clock_ghz)


# Estimates, not measurements. Clock: what an H100/H200 SXM sustains under load (its boost is 1.98
# GHz; power limits hold it lower). Load latency: the benchmark's timing flushes L2 before every run,
# so a load goes to DRAM, often through a TLB miss: about 700-1000 cycles on Hopper, taken here as
# 600 ns (1050 cycles) to err on the slow side. Copy bandwidth: about 90% of the HBM peak (3.35 TB/s
# H100 SXM, 4.8 TB/s H200), what a device copy reaches. L2: 50 MB on the H100 and H200, 40 MB on the
# A100. The A100 (SXM 80GB: 1.41 GHz, 2.04 TB/s peak, 164 KiB shared memory per SM) stands for sm_80
# code, with the same latency.
GPUS = (
    Machine("A100", cc=80, sms=108, clock_ghz=1.41, load_latency_ns=600.0, copy_gb_s=1800.0, l2_bytes=40 * 10**6,
            shared_bytes_per_sm=164 * 1024),
    Machine("H100", cc=90, sms=132, clock_ghz=1.75, load_latency_ns=600.0, copy_gb_s=3000.0, l2_bytes=50 * 10**6),
    Machine("H200", cc=90, sms=132, clock_ghz=1.75, load_latency_ns=600.0, copy_gb_s=4300.0, l2_bytes=50 * 10**6),
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    T: int
    B: int
    H: int


# The paper's size (Deep IndRNN's adding problem: 128 hidden units, batch 32, T = 1024), a large
# size that only bandwidth should bound, and a long sequence of one batch row (256 columns: a few
# warps for a whole GPU, unless time is split).
SIZES = {"paper": Shape(1024, 32, 128), "large": Shape(1024, 256, 2048), "long": Shape(65536, 1, 256)}


def _nothing(config: dict, shape: Shape, element_bytes: int) -> int:
    return 0


@dataclass(frozen=True)
class Work:
    """What a kernel's hot loop does, declared beside the kernel: the model's only knowledge of it
    besides the compiled code. Callables take the launch config (BLOCK, CHUNK, num_warps, ...)."""

    unit: str  # what the loop walks: "time step", "element", ...
    units_per_iteration: Callable[[dict], int]
    programs: Callable[[dict, Shape], int]
    units_per_program: Callable[[dict, Shape], int]
    bytes_moved: Callable[[dict, Shape, int], int]  # (config, shape, bytes per element) -> bytes a launch moves
    configs: dict[str, dict]  # size name (of SIZES) -> the config meant for it
    # Of those bytes, the ones an earlier launch of its schedule read or wrote: L2 hits while they fit.
    reread: Callable[[dict, Shape, int], int] = _nothing


@dataclass(frozen=True)
class Modeled:
    """The model's figures for one kernel, config, size and GPU."""

    gpu: str
    ns_per_step: float  # launch time over T
    compute_ns_per_step: float  # the issue and latency part alone (what bandwidth may hide), over T
    l2_ns_per_step: float  # launch time over T with the re-read bytes taken from L2 as far as they fit
    copy_percent: float  # the copy's time for the launch's bytes over the launch's modeled time
    bound: str  # what sets the time: "bandwidth", "latency" or "issue"
    programs_per_sm: int
    waves: int


def resident_programs(machine: Machine, registers: int, shared_bytes: int, num_warps: int) -> int:
    """Programs one SM holds at once: registers are allocated 8 per thread at a time."""
    per_program = -(-registers // 8) * 8 * 32 * num_warps
    limits = [
        machine.max_programs_per_sm,
        machine.max_warps_per_sm // num_warps,
        machine.registers_per_sm // max(per_program, 1),
    ]
    if shared_bytes:
        limits.append(machine.shared_bytes_per_sm // shared_bytes)
    return max(min(limits), 0)


@functools.lru_cache(maxsize=64)
def _alone(loop: Loop, load_latency: int, other_latency: int) -> float:
    """Loop.cycles_per_iteration, played once for GPUs of the same latencies (the H100 and H200)."""
    return loop.cycles_per_iteration(load_latency, other_latency)


def model(
    loop: Loop,
    registers: int,
    shared_bytes: int,
    config: dict,
    work: Work,
    shape: Shape,
    element_bytes: int,
    machine: Machine,
) -> Modeled:
    """Modeled time of one launch at `shape` on `machine` (see the module docstring)."""
    num_warps = config["num_warps"]
    programs = work.programs(config, shape)
    resident = resident_programs(machine, registers, shared_bytes, num_warps)
    if resident == 0:
        raise ValueError(f"a program of {registers} registers and {num_warps} warps does not fit on an SM")
    waves = math.ceil(programs / (machine.sms * resident))
    per_sm = min(resident, math.ceil(programs / machine.sms))
    warps_per_scheduler = math.ceil(per_sm * num_warps / machine.schedulers_per_sm)
    alone = _alone(loop, machine.load_latency_cycles, machine.other_latency_cycles)
    shared = warps_per_scheduler * loop.issue_cycles
    iterations = work.units_per_program(config, shape) / work.units_per_iteration(config)
    compute_s = waves * iterations * max(shared, alone) / (machine.clock_ghz * 1e9)
    moved = work.bytes_moved(config, shape, element_bytes)
    copy_s = moved / (machine.copy_gb_s * 1e9)
    l2_hits = min(work.reread(config, shape, element_bytes), machine.l2_bytes)
    l2_copy_s = (moved - l2_hits) / (machine.copy_gb_s * 1e9)
    time_s = max(compute_s, copy_s)
    bound = "bandwidth" if copy_s >= compute_s else ("issue" if shared >= alone else "latency")
    return Modeled(
        gpu=machine.name,
        ns_per_step=time_s / shape.T * 1e9,
        compute_ns_per_step=compute_s / shape.T * 1e9,
        l2_ns_per_step=max(compute_s, l2_copy_s) / shape.T * 1e9,
        copy_percent=100.0 * copy_s / time_s,
        bound=bound,
        programs_per_sm=per_sm,
        waves=waves,
    )


@dataclass(frozen=True)
class ScheduleModeled:
    """The model's figures for launches in sequence that together compute the recurrence once."""

    gpu: str
    launches: int
    ns_per_step: float  # the launches' modeled times, each with one load latency of fill, over T
    l2_ns_per_step: float  # the same with re-read bytes taken from L2 as far as they fit
    copy_percent: float  # a copy of the bytes the recurrence must move over ns_per_step
    l2_copy_percent: float


def in_sequence(launches: list[Modeled], floor_bytes: int, shape: Shape, machine: Machine) -> ScheduleModeled:
    """Launches (of one GPU, at one shape) run one after the other; floor_bytes is what the recurrence
    must move at the least (read its inputs and write its output once): the copy they are held to."""
    fill = len(launches) * machine.load_latency_ns / shape.T
    ns = fill + sum(m.ns_per_step for m in launches)
    l2_ns = fill + sum(m.l2_ns_per_step for m in launches)
    floor_ns = floor_bytes / machine.copy_gb_s / shape.T
    return ScheduleModeled(machine.name, len(launches), ns, l2_ns, 100.0 * floor_ns / ns, 100.0 * floor_ns / l2_ns)


def assumptions() -> list[str]:
    """The model's stated numbers, one line each, for a report to print beside its figures."""
    lines = [
        f"{m.name} (sm_{m.cc}): {m.sms} SMs, {m.clock_ghz} GHz, global load latency {m.load_latency_ns:.0f} ns "
        f"({m.load_latency_cycles} cycles), other variable latencies {m.other_latency_cycles} cycles, "
        f"copy bandwidth {m.copy_gb_s / 1000:.2f} TB/s, L2 {m.l2_bytes / 1e6:.0f} MB"
        for m in GPUS
    ]
    lines += [f"{name} size: T={s.T}, B={s.B}, H={s.H}" for name, s in SIZES.items()]
    return lines
