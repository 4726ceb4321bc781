"""The shape of every number this suite writes: one long-format row per measured config, and
one metadata record per run. Reports, plots and compare read nothing else, so a results file
alone is enough to rebuild any of them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

STATUSES = ("ok", "oom", "failed", "skipped")
MODES = ("train", "infer", "recurrence")

# The columns that identify a config: a results file holds at most one row per key.
KEY_COLUMNS = ("provider", "mode", "phase", "seq_len", "depth", "batch", "hidden", "input_size", "dtype", "timing")
PHASES = ("fwd", "bwd", "fwd+bwd")


@dataclass(frozen=True)
class ResultRow:
    """One measured (or skipped/failed) config. Times in milliseconds, memory in MiB."""

    provider: str  # e.g. indrnn_triton, indrnn_torch, lstm, gru, transformer, sru
    mode: str  # train | infer | recurrence
    phase: str  # fwd | bwd | fwd+bwd: train is fwd+bwd, infer fwd, recurrence fwd or bwd
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
    argv: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
