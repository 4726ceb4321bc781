"""Where the time of one config's step goes: its step (suite.sweep.measure's, so the profile sees
exactly what the sweep times) run a few times after a warm-up under `torch.profiler` (CPU and
CUDA activities; CPU only without CUDA), and the work broken down by category.

The breakdown puts every piece of work in one of CATEGORIES. On a GPU the pieces are kernels
(and memcpy/memset), timed on the device; on a CPU they are ops, timed by their self time (time
not spent in a child op). A piece is named by its call chain: the ops around it, outermost
first, then itself (on a GPU, the op that launched the kernel, that op's callers, and the
kernel's name). The first name of the chain that matches a pattern of CATEGORY_PATTERNS decides,
so a GEMM inside `aten::lstm` is LSTM recurrence and not input projection. Nothing matched: the
phase of the step it ran in decides (see `categorise`).

Every phase of the step (zero_grad, forward, loss, backward) is a profiler range and, on CUDA,
an NVTX push/pop range, which Nsight Systems shows on its timeline. Push/pop ranges belong to
the thread that pushed them, and autograd launches the backward's kernels from a thread of its
own: so the profiled steps, after the warm-up, are also one NVTX start/end range (NVTX_STEPS),
which holds every thread's kernels; the `profile` command's `ncu` line filters on it.
`run_nvtx_only` runs the same steps with the NVTX ranges alone: ncu and nsys need the CUPTI
interface that torch.profiler would otherwise hold.

`profile_config` profiles one config (the `profile` command); `profile_fig2` the Fig. 2 configs
of a finished sweep into its `<stem>.profile.csv` (`run --profile`).
"""

from __future__ import annotations

import gc
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch

from suite.core import env, rowfile
from suite.core.errors import UsageError
from suite.core.paper import FIG2_BATCH, FIG2_HIDDEN, FIG2_LAYERS, read_paper_fig2
from suite.core.paths import profile_path
from suite.core.rowfile import CsvAppender
from suite.core.schema import SweepConfig, key_of
from suite.core.store import read_results
from suite.sweep.measure import model_step, recurrence_inputs, recurrence_phases
from suite.sweep.providers import PROVIDERS, role_of

CATEGORIES = (
    "input projection GEMM",
    "recurrence forward",
    "recurrence backward",
    "normalisation",
    "loss",
    "optimiser or autograd glue",
    "other",
)
# Checked on each name of a call chain, outermost first; "recurrence" becomes forward or
# backward by the phase and by the name (autograd's backward nodes end in "Backward").
CATEGORY_PATTERNS = (
    (
        "recurrence",
        re.compile(
            r"_RecurrenceFunction|_LoopFunction|recurrence_(fwd|bwd)_kernel|indrnn_recurrence"
            r"|aten::(lstm|gru|rnn_tanh|rnn_relu)\b|_cudnn_rnn|CudnnRnn|mkldnn_rnn|MkldnnRnn|\bRNN_|LSTM|GRU|\bSRU"
        ),
    ),
    ("normalisation", re.compile(r"batch_norm|BatchNorm|layer_norm|LayerNorm|bn_fw|bn_bw|welford", re.IGNORECASE)),
    ("loss", re.compile(r"mse_loss|MseLoss")),
    (
        "input projection GEMM",
        re.compile(r"aten::(mm|addmm|bmm|baddbmm|matmul|linear)$|(Mm|Addmm|Bmm)Backward|gemm|gemv|cutlass|xmma|cublas"),
    ),
    ("optimiser or autograd glue", re.compile(r"AccumulateGrad|[Oo]ptimizer|zero_grad")),
)
# Where no name matched, the phase decides: the loss phase holds the head and the loss only.
FALLBACK_OF_PHASE = {
    "zero_grad": "optimiser or autograd glue",
    "loss": "loss",
    "backward": "optimiser or autograd glue",
}
PHASE_PREFIX = "bench::"  # profiler ranges of the step's phases, told apart from torch's own ops
NVTX_STEPS = "profiled_steps"  # the NVTX start/end range around the steps after the warm-up
TOP = 15
# The axes that say what a step is (a profile does not time it, so a timing axis is left out).
SHAPE_AXES = tuple(f.name for f in fields(SweepConfig) if f.default is MISSING)


def categorise(chain: list[str], phase: str | None) -> str:
    """The category of a piece of work from its call chain (outermost first) and its phase."""
    if phase == "loss":
        return "loss"
    for name in chain:
        for category, pattern in CATEGORY_PATTERNS:
            if pattern.search(name):
                if category != "recurrence":
                    return category
                backward = phase == "backward" or any("Backward" in n or "bwd" in n for n in chain)
                return "recurrence backward" if backward else "recurrence forward"
    return FALLBACK_OF_PHASE.get(phase or "", "other")


# ---------------------------------------------------------------------------- running the step


class PhaseRanges:
    """Names each phase of the step: a profiler range when `profiled`, an NVTX range while `nvtx`
    is on (switched on after the warm-up, so that `ncu --nvtx-include` skips autotuning)."""

    def __init__(self, profiled: bool, nvtx: bool = False) -> None:
        self.profiled, self.nvtx = profiled, nvtx

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        nvtx = self.nvtx
        if nvtx:
            torch.cuda.nvtx.range_push(name)
        try:
            if self.profiled:
                with torch.profiler.record_function(PHASE_PREFIX + name):
                    yield
            else:
                yield
        finally:
            if nvtx:
                torch.cuda.nvtx.range_pop()


def build_step(cfg: SweepConfig, device: torch.device, phase: Callable[[str], object]) -> Callable[[], None]:
    """The sweep's step of cfg with each phase wrapped in `phase(name)`. In recurrence mode the
    step is the bare recurrence's forward then its backward, set up as the sweep sets them up."""
    provider = PROVIDERS[cfg.provider]
    reason = provider.unavailable(cfg, device)
    if reason:
        raise UsageError(f"{cfg.provider} cannot run {cfg.label()} here: {reason}")
    if cfg.mode != "recurrence":
        built = provider.build(cfg, device)
        built.model.train(cfg.mode == "train")
        return model_step(built, cfg, device, phase)
    calls = dict(
        (name, fn)
        for name, fn, _ in recurrence_phases(
            *recurrence_inputs(cfg, device), provider.recurrence_backend, provider.schedule
        )
    )

    def recurrence() -> None:
        with phase("forward"):
            calls["fwd"]()
        with phase("backward"):
            calls["bwd"]()

    return recurrence


# ---------------------------------------------------------------------------- the breakdown


@dataclass(frozen=True)
class Piece:
    """One kernel (GPU) or op's self time (CPU) of the profiled steps."""

    name: str
    category: str
    us: float


@dataclass(frozen=True)
class Profile:
    """What the profiled steps of one config spent, per step."""

    cfg: SweepConfig
    device: str
    steps: int
    unit: str  # "kernels" (GPU: device time) or "ops" (CPU: self time)
    pieces: tuple[Piece, ...]  # over all profiled steps
    wall_ms: float  # per step, under the profiler
    busy_ms: float  # per step: GPU busy (union of device intervals) or CPU time inside ops

    def by_category(self) -> list[dict]:
        """One record per category: ms per step, share of the categorised time, pieces per step."""
        total = sum(p.us for p in self.pieces) or 1.0
        out = []
        for category in CATEGORIES:
            mine = [p for p in self.pieces if p.category == category]
            us = sum(p.us for p in mine)
            out.append(
                dict(category=category, ms=us / 1e3 / self.steps, share=us / total, launches=len(mine) / self.steps)
            )
        return out

    def top(self, n: int = TOP) -> list[dict]:
        """The n pieces with the most time per step, grouped by name and category."""
        groups: dict[tuple[str, str], list[float]] = {}
        for p in self.pieces:
            groups.setdefault((p.name, p.category), []).append(p.us)
        total = sum(p.us for p in self.pieces) or 1.0
        rows = [
            dict(name=name, category=cat, ms=sum(v) / 1e3 / self.steps, calls=len(v) / self.steps, share=sum(v) / total)
            for (name, cat), v in groups.items()
        ]
        return sorted(rows, key=lambda r: -r["ms"])[:n]


def _chain(event) -> list[str]:
    """Names of the ops around event, outermost first, then its own; the phase ranges left out."""
    names = []
    while event is not None:
        if not event.name.startswith(PHASE_PREFIX):
            names.append(event.name)
        event = event.cpu_parent
    return names[::-1]


def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals: time the device had any work."""
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


def _pieces(events, cuda: bool) -> tuple[list[Piece], float]:
    """(pieces, busy microseconds) of a profiler's events."""
    from torch.autograd import DeviceType

    cpu = [e for e in events if e.device_type == DeviceType.CPU and not e.is_async]
    phases = sorted(
        (e.time_range.start, e.time_range.end, e.name[len(PHASE_PREFIX) :])
        for e in cpu
        if e.name.startswith(PHASE_PREFIX)
    )

    def phase_at(t: float) -> str | None:
        # Backward ops of a GPU run on autograd's device thread: their phase is found by time,
        # not by their parents.
        return next((name for start, end, name in phases if start <= t <= end), None)

    if not cuda:
        # A phase range's own self time is the Python between the ops of that phase.
        pieces = [
            Piece(
                f"Python in {e.name[len(PHASE_PREFIX) :]}" if e.name.startswith(PHASE_PREFIX) else e.name,
                categorise(_chain(e), phase_at(e.time_range.start)),
                float(e.self_cpu_time_total),
            )
            for e in cpu
        ]
        busy = sum(e.self_cpu_time_total for e in cpu if not e.name.startswith(PHASE_PREFIX))
        return pieces, busy
    launcher = {e.id: e for e in cpu if getattr(e, "linked_correlation_id", 0) == 0}
    device = [e for e in events if e.device_type == DeviceType.CUDA]
    pieces = []
    for k in device:
        op = launcher.get(getattr(k, "linked_correlation_id", 0))
        chain = [*(_chain(op) if op is not None else []), k.name]
        when = op.time_range.start if op is not None else k.time_range.start
        pieces.append(Piece(k.name, categorise(chain, phase_at(when)), float(k.time_range.elapsed_us())))
    return pieces, _union_us([(k.time_range.start, k.time_range.end) for k in device])


def profile_config(
    cfg: SweepConfig, device: torch.device, steps: int = 5, warmup: int = 2, trace: Path | None = None
) -> Profile:
    """Profile `steps` calls of cfg's step after `warmup` untimed ones (which also compile and
    autotune); with `trace`, the Chrome trace is written there."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    step = build_step(cfg, device, PhaseRanges(profiled=True, nvtx=cuda))
    for _ in range(warmup):
        step()
    env.synchronize(device)
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    wall = 0.0
    with profile(activities=activities) as prof:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            env.synchronize(device)
            wall += time.perf_counter() - start
    if trace is not None:
        trace.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace))
    pieces, busy_us = _pieces(prof.events(), cuda)
    return Profile(
        cfg,
        env.device_name(device),
        steps,
        "kernels" if cuda else "ops",
        tuple(pieces),
        wall * 1e3 / steps,
        busy_us / 1e3 / steps,
    )


def run_nvtx_only(cfg: SweepConfig, device: torch.device, steps: int, warmup: int) -> None:
    """The steps with NVTX ranges alone (no torch.profiler), for ncu and nsys. The warm-up
    (autotuning included) runs outside any range, so `--nvtx-include` skips it."""
    cuda = device.type == "cuda"
    ranges = PhaseRanges(profiled=False)
    step = build_step(cfg, device, ranges)
    for _ in range(warmup):
        step()
    env.synchronize(device)
    ranges.nvtx = cuda
    handle = torch.cuda.nvtx.range_start(NVTX_STEPS) if cuda else None
    for _ in range(steps):
        step()
    env.synchronize(device)
    if handle is not None:
        torch.cuda.nvtx.range_end(handle)


# ---------------------------------------------------------------------------- sweeps: Fig. 2


def is_fig2_config(cfg: SweepConfig) -> bool:
    """A training step of Deep IndRNN's Fig. 2: H=128, B=32, T from the paper's figure, the
    IndRNN at 1 or 2 layers or the 1-layer LSTM."""
    if cfg.mode != "train" or cfg.hidden != FIG2_HIDDEN or cfg.batch != FIG2_BATCH:
        return False
    if cfg.seq_len not in set(int(t) for t in read_paper_fig2()[0]["seq_len"]):
        return False
    return (role_of(cfg.provider) == "indrnn" and cfg.depth in FIG2_LAYERS) or (
        cfg.provider == "lstm" and cfg.depth == 1
    )


PROFILE_COLUMNS = (*SHAPE_AXES, "category", "ms", "share", "launches")


def breakdown_rows(result: Profile) -> list[dict]:
    """The sidecar rows of one profiled config (one per category), see PROFILE_COLUMNS."""
    return [{**_shape(result.cfg), **rec} for rec in result.by_category()]


def _shape(record) -> dict:
    get = record.get if isinstance(record, dict) else lambda a: getattr(record, a)
    return {a: get(a) for a in SHAPE_AXES}


def profile_fig2(configs: list[SweepConfig], out_csv: str | Path, device: torch.device, steps: int = 3) -> Path:
    """Profile the Fig. 2 configs of a sweep that were measured ok in out_csv, appending their
    breakdown to the `<stem>.profile.csv` sidecar (flushed per config). A config already there
    (a resumed run) is not profiled again; one whose profile fails is left out with a warning."""
    path = profile_path(out_csv)
    done = {key_of(r, SHAPE_AXES) for r in rowfile.read_rows(path)[1]} if path.is_file() else set()
    ok = read_results(out_csv)
    ok = {key_of(r, SHAPE_AXES) for r in ok[ok["status"] == "ok"].to_dict("records")}
    todo = {key_of(_shape(c), SHAPE_AXES): c for c in configs if is_fig2_config(c)}
    todo = [c for key, c in todo.items() if key in ok and key not in done]
    breakdown = None  # opened at the first profile that succeeds: no sidecar without a row
    try:
        for cfg in todo:
            try:
                rows = breakdown_rows(profile_config(cfg, device, steps=steps))
            except Exception as e:  # noqa: BLE001 - the timed rows are written; a profile is an extra
                print(f"profile of {cfg.label()} failed: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            breakdown = breakdown or CsvAppender(path, PROFILE_COLUMNS)
            for row in rows:
                breakdown.append(row)
            gc.collect()
    finally:
        if breakdown is not None:
            breakdown.close()
    return path
