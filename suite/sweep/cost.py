"""The cost model: how many seconds the configs of a sweep take, for `run --dry-run`'s estimate,
validate's plan and the balance of shards.

A config costs what it cost before, where an earlier run on this kind of device (a results file in
results/) holds it: its timed calls plus three (warm-up, correctness gate) times their median,
plus compile seconds, scaled up to the file's recorded wall time where it has one (building models
and the gate's reference are not in the rows). A config no earlier run holds counts at the mean of
those that one does; with no earlier run at all, at a coarse prior (`prior_s`).
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

# Where no earlier CPU run can be timed from: a flat guess per config.
CPU_GUESS_S = 2.0
# A config is matched with an earlier row on everything but the timing method and phase.
ESTIMATE_KEY = ("provider", "mode", "seq_len", "depth", "batch", "hidden", "dtype", "input_size")


def prior_s(cfg: SweepConfig, device_kind: str) -> float:
    """A coarse planning guess of one config's wall time, not a measurement. On a CPU, a flat
    CPU_GUESS_S. On one GPU: model build, correctness gate and do_bench (~0.2 s of timed work)
    plus what each provider adds. The Triton providers autotune each new shape (the configs of the
    two kernels, ~0.125 s of do_bench each; validate's plan counts compiling them once per dtype); the
    eager torch loop launches a few kernels per step, per layer, per timed call; a CUDA graph is
    captured once."""
    if device_kind != "cuda":
        return CPU_GUESS_S
    seconds = 3.0
    if cfg.provider == "indrnn_triton" and cfg.timing == "auto":
        seconds += 8.0
    if cfg.provider == "indrnn_torch":
        seconds += 2e-3 * cfg.seq_len * cfg.depth
    if cfg.timing == "cuda_graph":
        seconds += 2.0
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
                else "a coarse guess per config (build, gate, timed calls, autotuning)"
            )
            return f"{guess}: no earlier {self.device_kind} run in results/"
        found = sum(tuple(getattr(c, a) for a in ESTIMATE_KEY) in self.measured for c in configs)
        basis = f"{found} of {len(configs)} configs timed as in {', '.join(self.sources)}, the rest at their mean"
        if not self.scaled:
            basis += "; timed calls and compiles only (no wall time recorded), so the run takes longer"
        return basis
