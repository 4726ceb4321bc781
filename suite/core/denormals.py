"""Denormal floats on a CPU: timing with them flushed to zero, on every thread an op runs on.

A float32 below 1.2e-38 is denormal, and x86 CPUs compute with one through a slow microcode
path. The backward of a long recurrence can decay into that range: on one Xeon an LSTM training
step took 63x longer at T=256 than at T=64, for 4x the steps, and 46 ms instead of 736 with
denormals flushed. A benchmark would then time the CPU's denormal path, not the model. Flushing
them (FTZ and DAZ, what `torch.set_flush_denormal(True)` sets) changes a value only where it is
below 1.2e-38, and does so for every provider alike.

`torch.set_flush_denormal` sets the mode of the calling thread alone. The threads of torch's
OpenMP team, which run most of an op's work, keep theirs (a new one inherits the mode of the
thread that starts it, once). So the mode is set on each thread of the team through the OpenMP
runtime's own entry point, `GOMP_parallel` (exported by libgomp, and by LLVM's and Intel's
runtimes for compatibility), and a probe measures which share of an op's work it reached.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from suite.core.errors import UsageError

FLUSHED, KEPT = "flushed", "kept"
# The OpenMP runtime's outlined-region signature: void fn(void *data).
_REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# Elements per thread of the probe: above ATen's grain size (32768), so every thread takes a part.
_PROBE_PER_THREAD = 2**16


def _smallest_denormals(n: int) -> torch.Tensor:
    """n copies of the smallest float32 denormal, written as integer bits: no float arithmetic
    (which would flush them already) makes them."""
    return torch.ones(n, dtype=torch.int32).view(torch.float32)


def flushes_here() -> bool:
    """Whether the calling thread flushes denormals (one element: no other thread computes it)."""
    return int((_smallest_denormals(1) * 1.0).view(torch.int32)) == 0


def flushed_share() -> float:
    """The share of an elementwise op's work, spread over every intra-op thread, in which a
    denormal came out as zero: 1.0 when every thread flushes, 0.0 when none does."""
    n = max(torch.get_num_threads(), 1) * _PROBE_PER_THREAD
    bits = (_smallest_denormals(n) * 1.0).view(torch.int32)  # compared as integers: no thread's mode applies
    return float((bits == 0).sum()) / n


def _on_every_thread(fn: Callable[[], None]) -> bool:
    """Call fn once on each thread of the OpenMP team torch's ops run on (the calling thread is
    one of them); False where no OpenMP runtime is loaded."""
    try:
        parallel = ctypes.CDLL(None).GOMP_parallel
    except (AttributeError, OSError, TypeError):  # no OpenMP runtime, or no process-wide symbol table
        return False
    parallel.argtypes = (_REGION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
    parallel.restype = None
    region = _REGION(lambda _data: fn())  # held here: ctypes frees a callback once nothing refers to it
    parallel(region, None, torch.get_num_threads(), 0)
    return True


def set_flush(flush: bool) -> None:
    """Flush denormals (or stop flushing them) on the calling thread and every intra-op thread."""
    torch.set_flush_denormal(flush)
    _on_every_thread(lambda: torch.set_flush_denormal(flush))


@contextmanager
def denormal_mode(flush: bool) -> Iterator[None]:
    """Denormals flushed (or kept) on every thread inside; afterwards every thread has the mode
    the calling thread had before."""
    before = flushes_here()
    set_flush(flush)
    try:
        yield
    finally:
        set_flush(before)


def describe(flush: bool) -> str:
    """What a run that asks for `flush` gets on this machine, as its metadata records it:
    "flushed", "kept", or where the mode did not reach every thread, how far it did."""
    with denormal_mode(flush):
        share = flushed_share()
    if share == (1.0 if flush else 0.0):
        return FLUSHED if flush else KEPT
    if share == 0.0:
        return f"{KEPT}: this CPU cannot flush them"
    return f"flushed in {share:.0%} of an op's work, kept in the rest: the mode did not reach every intra-op thread"


def check_resumable(path: str | os.PathLike, recorded: str, this_run: str) -> None:
    """UsageError unless a file to continue took its times with denormals as this run would: one
    file never mixes the two."""
    if recorded != this_run:
        raise UsageError(
            f"cannot resume {path}: denormal floats there: {recorded or 'not recorded'}, in this run: "
            f"{this_run}; resume with the same --keep-denormals setting, or use a new --out"
        )
