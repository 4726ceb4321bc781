"""The shape of every number this suite writes: one long-format row per measured config, and
one metadata record per run. Reports, plots and compare read nothing else, so a results file
alone is enough to rebuild any of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

STATUSES = ("ok", "oom", "failed", "skipped")
# Each mode and the phases it is timed in, one row per phase: train times forward + loss +
# backward as one step, infer the forward alone, recurrence the bare kernel's two directions.
# bidir and packed time train's step too: bidir of bidirectional models, packed on a
# PackedSequence of variable lengths (suite.sweep.measure.packed_lengths).
PHASES_OF_MODE = {
    "train": ("fwd+bwd",),
    "infer": ("fwd",),
    "recurrence": ("fwd", "bwd"),
    "bidir": ("fwd+bwd",),
    "packed": ("fwd+bwd",),
}
MODES = tuple(PHASES_OF_MODE)
DTYPES = ("float32", "float16", "bfloat16")
# What a provider is to the analysis (suite.sweep.providers gives each provider one):
#   indrnn        a plain IndRNN stack, the subject of every speedup; the most preferred one that
#                 ran is "the IndRNN" of a results file
#   variant       another implementation of that same model (e.g. compiled by torch.compile):
#                 compared with the IndRNN, never counted as a baseline
#   architecture  an IndRNN of another architecture (residual, dense): another model, so its
#                 times are reported but no speedup is computed against it
#   baseline      a different model the IndRNN is compared against (LSTM, GRU, Transformer, ...)
ROLES = ("indrnn", "variant", "architecture", "baseline")


@dataclass(frozen=True)
class Lineup:
    """What reading a results file needs to know of the providers: their order (tables and legends
    list them so), each one's role, and which IndRNN is preferred. The sweep's registry holds it
    (suite.sweep.providers.lineup) and the command that reads a file hands it over, so that a
    report is rebuilt from files without running anything. A provider the lineup does not know
    (from an older or another results file) is a baseline, the role that claims least."""

    roles: Mapping[str, str]  # provider -> role, in display order
    preferences: Mapping[str, int]  # the indrnn role's providers: 0 is preferred over 1, ...

    def role_of(self, provider: str) -> str:
        return self.roles.get(provider, "baseline")

    def order(self, providers: Iterable[str]) -> list[str]:
        """The lineup's order; providers it does not know after, by name."""
        rank = {name: i for i, name in enumerate(self.roles)}
        return sorted(providers, key=lambda p: (rank.get(p, len(rank)), p))

    def preference(self, provider: str) -> tuple:
        """Sorts the more preferred IndRNN first; every other provider after them, by name."""
        return self.preferences.get(provider, len(self.roles)), provider

    def preferred_indrnn(self) -> str:
        """The IndRNN provider this suite prefers, for notes about a config nobody measured."""
        return min(self.preferences, key=self.preference)


@dataclass(frozen=True)
class SweepConfig:
    """One point of a sweep: what to build and how big. Rows add the phase and the timing."""

    provider: str
    mode: str
    seq_len: int
    depth: int
    batch: int
    hidden: int
    dtype: str
    input_size: int
    # "auto": the device's default timer (do_bench on a GPU, wall clock on a CPU); "cuda_graph":
    # replays of a captured CUDA graph, which hide launch overhead. A row records the method used.
    timing: str = "auto"

    def label(self) -> str:
        graph = " cuda_graph" if self.timing == "cuda_graph" else ""
        return (
            f"{self.provider} {self.mode} T={self.seq_len} L={self.depth} B={self.batch} "
            f"H={self.hidden} I={self.input_size} {self.dtype}{graph}"
        )


# The axes of a sweep are the fields of SweepConfig; these are the integer ones.
AXES = tuple(f.name for f in dataclasses.fields(SweepConfig))
INT_AXES = tuple(f.name for f in dataclasses.fields(SweepConfig) if f.type in ("int", int))
CONFIG_TIMINGS = ("auto", "cuda_graph")
# A measured config: the sweep axes plus the phase, with the timing axis holding the method
# actually used (do_bench, cuda_graph or cpu_wallclock). A results file holds at most one row
# per key; compare, resume and the analysis all match rows on it.
KEY_COLUMNS = (*AXES[:2], "phase", *AXES[2:])  # provider, mode, phase, seq_len, ..., timing
# The key without the provider: rows that agree on it may be compared with each other.
CONFIG_COLUMNS = tuple(c for c in KEY_COLUMNS if c != "provider")


def plan_hash(configs: Iterable[SweepConfig]) -> str:
    """A short fingerprint of a sweep's whole grid, in order: two files hold parts of the same
    plan exactly when their hashes agree (resume, shards)."""
    text = json.dumps([dataclasses.asdict(c) for c in configs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_of(record: Mapping, columns: tuple[str, ...] = KEY_COLUMNS) -> tuple:
    """The key of a row, a speedup pair or any record holding `columns`, with integers as int
    and everything else as str, so keys from a CSV, a dataclass and a DataFrame compare equal."""
    return tuple(int(record[c]) if c in INT_AXES else str(record[c]) for c in columns)


def timing_of(cfg: SweepConfig, default: str) -> str:
    """The timing method a config is measured with: the run's default unless it asks for graphs."""
    return default if cfg.timing == "auto" else cfg.timing


def expected_keys(cfg: SweepConfig, timing: str) -> list[tuple]:
    """The row keys a config produces (one per phase) in a run whose default timing is `timing`."""
    used = timing_of(cfg, timing)
    return [key_of({**dataclasses.asdict(cfg), "phase": p, "timing": used}) for p in PHASES_OF_MODE[cfg.mode]]


def missing_configs(plan: Iterable[SweepConfig], keys: set[tuple], timing: str) -> list[SweepConfig]:
    """The configs of a plan with a row missing from `keys` (row keys of a file whose default
    timing method is `timing`), in plan order: what a shard or an interrupted run did not deliver."""
    return [cfg for cfg in plan if not set(expected_keys(cfg, timing)) <= keys]


@dataclass(frozen=True)
class ResultRow:
    """One measured (or skipped/failed) config. Times in milliseconds, memory in MiB."""

    provider: str  # e.g. indrnn_triton, indrnn_torch, lstm, gru, transformer, sru
    role: str  # one of ROLES: what the provider is to the analysis
    mode: str  # train | infer | recurrence | bidir | packed
    phase: str  # fwd | bwd | fwd+bwd: train, bidir and packed are fwd+bwd, infer fwd, recurrence fwd or bwd
    seq_len: int
    depth: int
    batch: int
    hidden: int
    dtype: str  # float32 | float16 | bfloat16
    status: str  # ok | oom | failed | skipped
    reason: str = ""  # why a row is not ok; empty when ok
    device: str = ""  # device name, e.g. "NVIDIA H100 80GB HBM3" or the CPU model
    timing: str = ""  # do_bench | cuda_graph | cpu_wallclock
    p20_ms: float | None = None
    p50_ms: float | None = None
    p80_ms: float | None = None
    n_samples: int | None = None
    tokens_per_s: float | None = None  # seq_len * batch / median time
    gbytes_per_s: float | None = None  # recurrence mode only: bytes moved / median time
    pct_copy_bw: float | None = None  # recurrence mode only: % of the run's copy bandwidth
    ns_per_step: float | None = None  # recurrence mode only: median time / seq_len
    peak_mem_mb: float | None = None  # GPU only: torch.cuda.max_memory_allocated
    params: int | None = None  # trainable parameters of the model timed
    compile_s: float | None = None  # providers that compile (torch.compile): first-call seconds
    input_size: int | None = None
    preset: str = ""
    run_id: str = ""  # ties the row to its metadata record
    extra: str = ""  # provider-specific notes, "key=value;key=value" (e.g. arch=residual)
    # How the number was taken (suite.core.method): the cache flushed before each timed call or not
    # (yes | no), the step launched eagerly or replayed from a CUDA graph (eager | cuda_graph), and
    # for a cuDNN RNN the algorithm PyTorch picks at this config ("" for every other provider).
    l2_flush: str = ""
    launch: str = ""
    cudnn_algo: str = ""


COLUMNS = tuple(f.name for f in dataclasses.fields(ResultRow))


@dataclass(frozen=True)
class RunMeta:
    """What produced a results file: written as JSON beside the CSV."""

    run_id: str
    preset: str
    timestamp: str  # ISO 8601, UTC
    device: str
    device_kind: str  # cuda | cpu
    timing: str
    git_commit: str
    git_dirty: bool
    python: str
    torch: str
    triton: str
    cpu: str
    threads: int
    cuda: str | None = None  # CUDA runtime version torch was built with
    driver: str | None = None
    copy_gbytes_per_s: float | None = None  # device-to-device copy bandwidth measured this run
    # CPU runs: denormal floats while configs were timed, suite.core.denormals.describe ("flushed",
    # "kept", ...); "" on a GPU, and in files from before the suite recorded it (which kept them).
    denormals: str = ""
    argv: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    configs: list = field(default_factory=list)  # the grid, as SweepConfig dicts in run order
    plan_hash: str = ""  # plan_hash(configs) of the whole plan (of every shard, when sharded)
    shard: str = ""  # "K/N" when the file holds the K-th of N shards of the plan (suite.sweep.shards)
    plan: list = field(default_factory=list)  # a shard's whole plan (SweepConfig dicts); [] when unsharded
    wall_s: float | None = None  # seconds the sweep ran, summed over resumed sessions
    machine: dict = field(default_factory=dict)  # the machine's state (clocks, load) at start and end
    git_commit_time: str = ""  # committer date of git_commit, ISO 8601 ("" in files made before it was kept)
