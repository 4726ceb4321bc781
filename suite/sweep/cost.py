"""The cost model: how many seconds the configs of a sweep take, for `run --dry-run`'s estimate,
validate's plan and the balance of shards.

A config costs what it cost before, where an earlier run on this kind of device (a results file in
results/) holds it: its timed calls plus three (warm-up, correctness gate) times their median,
plus compile seconds, scaled up to the file's recorded wall time where it has one (building models
and the gate's reference are not in the rows). A config no earlier run holds counts at the mean of
those that one does; with no earlier run at all, at a coarse prior (`prior_s`), which on a GPU
counts what grows with the sequence length too (`length_s`): the step-by-step loop that gates an
IndRNN, and the timed calls themselves once each outlasts the timer's budgets. The prior leaves out
the autotuning of keys that triton's on-disk autotune cache already holds (`tuned_keys`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import triton

from kernels.sequential import autotune_configs, recurrence_bwd_kernel, recurrence_fwd_kernel, time_bucket
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
# Autotuning one config of a walk kernel's space for a new key: do_bench's 0.125 s of budgets, its
# estimate calls and the launches around them.
TUNE_CONFIG_S = 0.5


def prior_s(cfg: SweepConfig, device_kind: str, tuned: frozenset[TuningKey] = frozenset()) -> float:
    """A coarse planning guess of one config's wall time, not a measurement. On a CPU, a flat
    CPU_GUESS_S. On one GPU: model build, correctness gate and do_bench (~0.2 s of timed work)
    plus what each provider adds. The Triton walk autotunes each of its keys that is not `tuned`
    (`tuning_s`; validate's plan counts compiling the space once per dtype where a key is cold; the
    scan's kernels are not autotuned); the eager torch loop (any torch-backend IndRNN not pinned to
    the scan) launches a few kernels per step, per layer, per timed call; a CUDA graph is captured
    once; and `length_s`."""
    if device_kind != "cuda":
        return CPU_GUESS_S
    backend, schedule = _recurrence_of(cfg)
    seconds = 3.0 + tuning_s(cfg, tuned)
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


# ---------------------------------------------------------------------------- autotuning

# The sequential walk's kernels (kernels/sequential.py) are autotuned with triton's `cache_results`:
# the timings of each key are kept as <triton cache dir>/<hash>/<kernel name>.autotune.json, holding
# {"key": [the autotuner's key values..., the dtype of each tensor argument...], "configs_timings":
# [[config, timings], ...]}. The hash covers triton, the GPU target, the kernel's source, the key and
# the space; it is not recomputed here (that needs the GPU's target), so a file is taken as warm when
# its space is today's, whichever GPU or kernel source it was tuned for.
WALK_KERNELS = {"fwd": recurrence_fwd_kernel, "bwd": recurrence_bwd_kernel}


@dataclass(frozen=True)
class TuningKey:
    """What a planned config's autotuning is matched on: the kernel, B*H columns, the length bucket
    and x's dtype (the bias, h0, lengths, reverse and activation flags of the key are not told apart)."""

    kernel: str  # "fwd" | "bwd"
    n_cols: int
    t_bucket: int
    dtype: str  # "float32", "bfloat16", ...


def _space(kernel: str) -> set[tuple]:
    return {
        (c.kwargs["BLOCK"], c.kwargs["CHUNK"], c.num_warps)
        for c in autotune_configs(single=False, backward=kernel == "bwd")
    }


def tuning_keys(cfg: SweepConfig) -> tuple[TuningKey, ...]:
    """The keys of the walk kernels that cfg autotunes: a Triton IndRNN not pinned to the scan
    ("auto" may walk), timed eagerly (a CUDA-graph row follows its eager twin, tuned by then); the
    forward kernel, and the backward unless the mode is inference."""
    backend, schedule = _recurrence_of(cfg)
    if backend != "triton" or schedule == "scan" or cfg.timing != "auto":
        return ()
    kernels = ("fwd",) if cfg.mode == "infer" else ("fwd", "bwd")
    return tuple(TuningKey(k, cfg.batch * cfg.hidden, time_bucket(cfg.seq_len), cfg.dtype) for k in kernels)


def tuning_s(cfg: SweepConfig, tuned: frozenset[TuningKey] = frozenset()) -> float:
    """Seconds cfg spends autotuning: every config of the space for each of its keys not `tuned`."""
    return sum(TUNE_CONFIG_S * len(_space(k.kernel)) for k in tuning_keys(cfg) if k not in tuned)


def triton_cache_dir() -> Path:
    """Where triton keeps its caches: $TRITON_CACHE_DIR, by default ~/.triton/cache."""
    return Path(triton.knobs.cache.dir)


def tuned_keys(cache_dir: Path) -> frozenset[TuningKey]:
    """The keys of the walk kernels that triton's autotune cache in `cache_dir` holds for today's
    space (files of another space, or unreadable ones, are left out)."""
    found = set()
    for kernel, fn in WALK_KERNELS.items():
        for path in cache_dir.glob(f"*/{fn.base_fn.__name__}.autotune.json"):
            try:
                record = json.loads(path.read_text())
                key, timings = record["key"], record["configs_timings"]
                space = {(c["kwargs"]["BLOCK"], c["kwargs"]["CHUNK"], c["num_warps"]) for c, _ in timings}
                dtype = str(key[len(fn.keys)]).removeprefix("torch.")
                n_cols, t_bucket = int(key[0]), int(key[1])
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue
            if space == _space(kernel):
                found.add(TuningKey(kernel, n_cols, t_bucket, dtype))
    return frozenset(found)


@dataclass(frozen=True)
class CostModel:
    """Seconds per config on one kind of device, from the earlier runs in `sources` (none: the prior)."""

    device_kind: str
    measured: dict[tuple, float]  # ESTIMATE_KEY values -> seconds its rows cost, the newest file's
    sources: tuple[str, ...] = ()  # file names the measured costs come from, oldest first
    scaled: bool = True  # every source recorded its wall time, and its rows' costs were scaled to it
    tuned: frozenset[TuningKey] = field(default_factory=frozenset)  # keys triton's autotune cache holds
    cache_dir: Path | None = None  # where they were looked for (on a GPU only)

    @classmethod
    def from_results(cls, device_kind: str, folder: Path | None = None, cache_dir: Path | None = None) -> CostModel:
        """The costs in the results files of this kind of device in `folder` (default: results/);
        where several hold a config, the newest wins. On a GPU, the keys already tuned in triton's
        autotune cache (`cache_dir`, default: triton's) too."""
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
        if device_kind != "cuda":
            return cls(device_kind, measured, tuple(sources), scaled)
        cache_dir = triton_cache_dir() if cache_dir is None else cache_dir
        return cls(device_kind, measured, tuple(sources), scaled, tuned_keys(cache_dir), cache_dir)

    def seconds(self, cfg: SweepConfig) -> float:
        """One config's estimated seconds: measured, else the mean of the measured, else the prior."""
        key = tuple(getattr(cfg, a) for a in ESTIMATE_KEY)
        if key in self.measured:
            return self.measured[key]
        if self.measured:
            return sum(self.measured.values()) / len(self.measured)
        return prior_s(cfg, self.device_kind, self.tuned)

    def total(self, configs: Iterable[SweepConfig]) -> float:
        return sum(self.seconds(c) for c in configs)

    def cold(self, configs: Iterable[SweepConfig]) -> bool:
        """Whether any of these configs autotunes a key the cache does not hold."""
        return any(k not in self.tuned for c in configs for k in tuning_keys(c))

    def tuning_note(self, configs: Iterable[SweepConfig]) -> str:
        """How many of the distinct keys these configs autotune were found in the cache, in words
        (empty where they tune none)."""
        keys = {k for c in configs for k in tuning_keys(c)}
        if not keys:
            return ""
        warm = len(keys & self.tuned)
        return (
            f"{warm} of the {len(keys)} autotune keys of the walk kernels are already in triton's cache "
            f"({self.cache_dir}): tuning is counted for the other {len(keys) - warm}"
        )

    def basis(self, configs: list[SweepConfig]) -> str:
        """What an estimate of these configs rests on, in words."""
        if not self.measured:
            guess = (
                f"a flat guess of {CPU_GUESS_S:g} s per config"
                if self.device_kind != "cuda"
                else "a coarse guess per config (build, gate, timed calls, autotuning, what grows with T)"
            )
            note = self.tuning_note(configs)
            return f"{guess}: no earlier {self.device_kind} run in results/" + (f"; {note}" if note else "")
        found = sum(tuple(getattr(c, a) for a in ESTIMATE_KEY) in self.measured for c in configs)
        basis = f"{found} of {len(configs)} configs timed as in {', '.join(self.sources)}, the rest at their mean"
        if not self.scaled:
            basis += "; timed calls and compiles only (no wall time recorded), so the run takes longer"
        return basis
