"""The cost model: how many seconds the configs of a sweep take, for `run --dry-run`'s estimate,
validate's plan and the balance of shards.

A config costs what it cost before, where an earlier run on this kind of device (a results file in
results/) holds it: its timed calls plus three (warm-up, correctness gate) times their median,
plus compile seconds, scaled up to the file's recorded wall time where it has one (building models
and the gate's reference are not in the rows). A config no earlier run holds counts at the mean of
those that one does; with no earlier run at all, at a coarse prior (`prior_s`), which on a GPU
counts what grows with the sequence length too (`length_s`): the step-by-step loop that gates an
IndRNN, and the timed calls themselves once each outlasts the timer's budgets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from suite.core import paths
from suite.core.errors import ResultsError
from suite.core.paths import meta_path
from suite.core.schema import SweepConfig
from suite.core.store import read_meta, read_results
from suite.sweep.providers import PROVIDERS

# Where no earlier CPU run can be timed from: a flat guess per config.
CPU_GUESS_S = 2.0
# A config is matched with an earlier row on everything but the timing method and phase.
ESTIMATE_KEY = ("provider", "mode", "seq_len", "depth", "batch", "hidden", "dtype", "input_size")

# What grows with T on a GPU: planning figures for one GPU of the H100 class, not measurements.
LAUNCH_S = 5e-6  # one eager PyTorch op issued from Python, as a step-by-step loop issues them
WALK_STEP_S = 50e-9  # one step of the sequential Triton walk over few columns (its static model: ~51 ns)
CUDNN_STEP_S = 5e-6  # one step of one cuDNN LSTM or GRU layer, forward: the latency of a small GEMM
COPY_BYTES_PER_S = 2.5e12  # device copy bandwidth, the walk's floor over many columns
# A call that outlasts do_bench's warm-up and repetition budgets is still made about 7 times (5 to
# estimate it, one warm-up, one timed), once more for the peak memory and once in the gate.
LONG_CALLS = 9
# Ops per step and layer of the torch backend's sequential loop, the gate's reference.
LOOP_OPS = {"fwd": 2, "bwd": 2}


def prior_s(cfg: SweepConfig, device_kind: str) -> float:
    """A coarse planning guess of one config's wall time, not a measurement. On a CPU, a flat
    CPU_GUESS_S. On one GPU: model build, correctness gate and do_bench (~0.2 s of timed work)
    plus what each provider adds. The Triton providers autotune each new shape (the configs of the
    two kernels of the sequential walk, ~0.125 s of do_bench each; validate's plan counts compiling
    them once per dtype; the scan's kernels are not autotuned); the
    eager torch loop (any torch-backend IndRNN not pinned to the scan) launches a few kernels per
    step, per layer, per timed call; a CUDA graph is captured once; and `length_s`."""
    if device_kind != "cuda":
        return CPU_GUESS_S
    backend, schedule = _recurrence_of(cfg)
    seconds = 3.0
    if backend == "triton" and schedule != "scan" and cfg.timing == "auto":
        seconds += 8.0
    if backend == "torch" and schedule != "scan":
        seconds += 2e-3 * cfg.seq_len * cfg.depth
    if cfg.timing == "cuda_graph":
        seconds += 2.0
    return seconds + length_s(cfg)


def _recurrence_of(cfg: SweepConfig) -> tuple[str | None, str]:
    """The backend and schedule of a plain IndRNN provider's recurrences; (None, "auto") for others."""
    provider = PROVIDERS.get(cfg.provider)
    return (None, "auto") if provider is None else (provider.recurrence_backend, provider.schedule)


def length_s(cfg: SweepConfig) -> float:
    """The seconds of one config on a GPU that grow with T and that `prior_s`'s fixed figures leave
    out: the gate's step-by-step loop for an IndRNN that is not that loop itself, and the timed calls
    of the Triton kernels and of cuDNN's LSTM and GRU (the eager loop's calls are in its own figure).
    Seconds at short T, minutes at a million steps."""
    backend, schedule = _recurrence_of(cfg)
    passes = ("fwd",) if cfg.mode == "infer" else ("fwd", "bwd")
    steps = cfg.seq_len * cfg.depth
    seconds = 0.0
    if backend is not None:
        if not (backend == "torch" and schedule == "sequential"):  # the loop is its own reference
            seconds += sum(LOOP_OPS[p] for p in passes) * steps * LAUNCH_S
        if backend == "triton":
            moved = steps * cfg.batch * cfg.hidden * (2 if cfg.dtype != "float32" else 4)  # bytes of x
            walk = {p: max(steps * WALK_STEP_S, n * moved / COPY_BYTES_PER_S) for p, n in (("fwd", 2), ("bwd", 3))}
            seconds += LONG_CALLS * sum(walk[p] for p in passes)
    if cfg.provider in ("lstm", "gru"):
        seconds += LONG_CALLS * steps * CUDNN_STEP_S * (1 if cfg.mode == "infer" else 3)
    return seconds


@dataclass(frozen=True)
class CostModel:
    """Seconds per config on one kind of device, from the earlier runs in `sources` (none: the prior)."""

    device_kind: str
    measured: dict[tuple, float]  # ESTIMATE_KEY values -> seconds its rows cost, the newest file's
    sources: tuple[str, ...] = ()  # file names the measured costs come from, oldest first
    scaled: bool = True  # every source recorded its wall time, and its rows' costs were scaled to it

    @classmethod
    def from_results(cls, device_kind: str, folder: Path | None = None) -> CostModel:
        """The costs in the results files of this kind of device in `folder` (default: results/);
        where several hold a config, the newest wins."""
        measured, sources, scaled = {}, [], True
        folder = paths.RESULTS_DIR if folder is None else folder
        for path in sorted(folder.glob("*.csv"), key=lambda p: p.stat().st_mtime):
            try:
                meta = read_meta(path) if meta_path(path).is_file() else {}
                if meta.get("device_kind") != device_kind:
                    continue
                rows = read_results(path)
            except ResultsError:  # another command's files (converge, profile) or a damaged one
                continue
            cost = (rows["n_samples"].fillna(0) + 3) * rows["p50_ms"].fillna(0) / 1e3 + rows["compile_s"].fillna(0)
            wall_s = meta.get("wall_s")
            scaled &= bool(wall_s)
            cost *= wall_s / cost.sum() if wall_s and cost.sum() > 0 else 1.0
            measured.update(rows.assign(cost=cost).groupby(list(ESTIMATE_KEY))["cost"].sum().to_dict())
            sources.append(path.name)
        return cls(device_kind, measured, tuple(sources), scaled)

    def seconds(self, cfg: SweepConfig) -> float:
        """One config's estimated seconds: measured, else the mean of the measured, else the prior."""
        key = tuple(getattr(cfg, a) for a in ESTIMATE_KEY)
        if key in self.measured:
            return self.measured[key]
        if self.measured:
            return sum(self.measured.values()) / len(self.measured)
        return prior_s(cfg, self.device_kind)

    def total(self, configs: Iterable[SweepConfig]) -> float:
        return sum(self.seconds(c) for c in configs)

    def basis(self, configs: list[SweepConfig]) -> str:
        """What an estimate of these configs rests on, in words."""
        if not self.measured:
            guess = (
                f"a flat guess of {CPU_GUESS_S:g} s per config"
                if self.device_kind != "cuda"
                else "a coarse guess per config (build, gate, timed calls, autotuning, what grows with T)"
            )
            return f"{guess}: no earlier {self.device_kind} run in results/"
        found = sum(tuple(getattr(c, a) for a in ESTIMATE_KEY) in self.measured for c in configs)
        basis = f"{found} of {len(configs)} configs timed as in {', '.join(self.sources)}, the rest at their mean"
        if not self.scaled:
            basis += "; timed calls and compiles only (no wall time recorded), so the run takes longer"
        return basis
