"""Timers: how long one call of a benchmark step takes, as a median with p20/p80.

`make_timer` picks the method for a device and holds the one set of warm-up/repeat defaults.

GPU: `triton.testing.do_bench` (CUDA events, L2 flushed before every call), or, opt-in,
`do_bench_cudagraph`, which replays the step from a CUDA graph and so hides launch overhead:
rows timed that way say "cuda_graph". CPU: wall clock around each call after a warm-up, with
denormal floats flushed to zero on every thread (suite.core.denormals) unless the run keeps them.
`copy_bandwidth_gbps` measures the floor that recurrence-mode rows are compared against.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from suite.core.denormals import denormal_mode
from suite.core.errors import UsageError

QUANTILES = (0.2, 0.5, 0.8)
TIMING_METHODS = ("auto", "do_bench", "cuda_graph", "cpu_wallclock")
# Defaults per method: (warm-up, repeats, seconds cap). CPU: calls, with timed calls stopped
# after the cap; GPU: do_bench's warm-up and repetition budgets in milliseconds.
TIMER_DEFAULTS = {"cpu_wallclock": (2, 10, 2.0), "do_bench": (25, 100, None), "cuda_graph": (25, 100, None)}


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: p20, median and p80 over n_samples timed calls, and the samples
    themselves (kept beside the results for compare's statistics)."""

    p20_ms: float
    p50_ms: float
    p80_ms: float
    n_samples: int | None  # None where the timer does not report it (cuda_graph)
    method: str  # do_bench | cuda_graph | cpu_wallclock
    samples_ms: tuple[float, ...] = ()  # every timed call, in order; empty where not reported (cuda_graph)


def _summarise(times_ms: list[float], method: str) -> Timing:
    if not times_ms:
        raise ValueError("no timed calls")
    q = torch.quantile(torch.tensor(times_ms, dtype=torch.float64), torch.tensor(QUANTILES, dtype=torch.float64))
    p20, p50, p80 = (float(v) for v in q)
    return Timing(p20, p50, p80, len(times_ms), method, tuple(times_ms))


def time_gpu(fn: Callable[[], object], warmup_ms: float = 25, rep_ms: float = 100, cuda_graph: bool = False) -> Timing:
    """Time fn on the current CUDA device. warmup_ms / rep_ms are do_bench's time budgets."""
    import triton.testing

    if cuda_graph:
        # do_bench_cudagraph does not expose its samples (nor their count): quantiles only.
        p20, p50, p80 = triton.testing.do_bench_cudagraph(fn, rep=rep_ms, quantiles=list(QUANTILES))
        return Timing(float(p20), float(p50), float(p80), None, "cuda_graph")
    times = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
    return _summarise([float(t) for t in times], "do_bench")


def time_cpu(fn: Callable[[], object], warmup: int = 2, repeats: int = 10, max_s: float | None = None) -> Timing:
    """Wall-clock fn: `warmup` untimed calls, then up to `repeats` timed ones. With max_s, stop
    repeating once that many seconds of timed calls have passed (at least 3 calls are kept), so a
    slow config cannot eat a whole sweep's budget."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed * 1e3)
        spent += elapsed
        if max_s is not None and spent >= max_s and len(times) >= min(3, repeats):
            break
    return _summarise(times, "cpu_wallclock")


def copy_bandwidth_gbps(device: torch.device | str, nbytes: int = 256 * 2**20) -> float:
    """Achieved bandwidth of a plain tensor copy on `device`: bytes read + written per second,
    in GB/s (1e9). On CUDA a device-to-device copy timed by do_bench; on CPU a memcpy of a
    tensor too large for the caches (64 MiB at most, to stay quick), median of 10."""
    device = torch.device(device)
    if device.type != "cuda":
        nbytes = min(nbytes, 64 * 2**20)
    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    if device.type == "cuda":
        with torch.cuda.device(device):
            ms = time_gpu(lambda: dst.copy_(src)).p50_ms
    else:
        ms = time_cpu(lambda: dst.copy_(src), warmup=2, repeats=10).p50_ms
    return 2 * n * 4 / (ms * 1e-3) / 1e9


@dataclass(frozen=True)
class Timer:
    """How every config of a run is timed. warmup/repeats: calls on CPU, milliseconds
    (do_bench's budgets) on GPU. max_s: CPU only, stop repeating after that many seconds.
    flush_denormals: CPU only, denormal floats flushed to zero while the calls run (warm-up
    included), and the threads' mode restored after them."""

    method: str
    warmup: float
    repeats: float
    max_s: float | None = None
    flush_denormals: bool = True

    def __call__(self, fn: Callable[[], object]) -> Timing:
        if self.method == "cpu_wallclock":
            with denormal_mode(self.flush_denormals):
                return time_cpu(fn, int(self.warmup), int(self.repeats), self.max_s)
        return time_gpu(fn, self.warmup, self.repeats, cuda_graph=self.method == "cuda_graph")


def make_timer(
    device: torch.device,
    timing: str = "auto",
    warmup: float | None = None,
    repeats: float | None = None,
    flush_denormals: bool = True,
) -> Timer:
    if timing not in TIMING_METHODS:
        raise UsageError(f"unknown timing {timing!r}; choose from {', '.join(TIMING_METHODS)}")
    if timing == "auto":
        timing = "do_bench" if device.type == "cuda" else "cpu_wallclock"
    if (timing == "cpu_wallclock") != (device.type == "cpu"):
        raise UsageError(f"timing {timing} does not run on a {device.type} device")
    default_warmup, default_repeats, max_s = TIMER_DEFAULTS[timing]
    return Timer(
        timing,
        default_warmup if warmup is None else warmup,
        default_repeats if repeats is None else repeats,
        max_s=max_s,
        flush_denormals=flush_denormals and timing == "cpu_wallclock",
    )
