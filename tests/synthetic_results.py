"""Small synthetic results files for the report and plot tests, written through the suite's own
store so they have exactly the format a real run produces, and read back as the `report` command
reads them. Times follow simple made-up cost models (not measurements) chosen so that each test
knows which side should win where."""

from __future__ import annotations

from pathlib import Path

from suite.core.schema import ResultRow, RunMeta
from suite.core.store import ResultsWriter, write_meta
from suite.render import report
from suite.sweep.providers import lineup, role_of

DEVICE = "Synthetic GPU 80GB"
PHASE = {"train": "fwd+bwd", "infer": "fwd"}
# Where auto takes the scan on the synthetic GPU (132 SMs), as a run's metadata records it.
SCAN_RULE = {"min_steps": 256, "max_columns": 16895}


def row(
    provider: str,
    ms: float | None,
    *,
    mode: str = "train",
    seq_len: int = 256,
    depth: int = 1,
    batch: int = 32,
    hidden: int = 128,
    dtype: str = "float32",
    status: str = "ok",
    reason: str = "",
    phase: str | None = None,
    timing: str = "do_bench",
    **extra,
) -> ResultRow:
    """One row; an ok row gets p20/p50/p80 = 0.95/1/1.05 x `ms`."""
    timed = {}
    if status == "ok":
        timed = {
            "p20_ms": 0.95 * ms,
            "p50_ms": ms,
            "p80_ms": 1.05 * ms,
            "n_samples": 20,
            "tokens_per_s": seq_len * batch / ms * 1e3,
            "peak_mem_mb": 0.01 * seq_len * batch * depth,
            "params": depth * hidden * (hidden + 2),
        }
    timed.update(extra)
    return ResultRow(
        provider=provider,
        role=role_of(provider),
        mode=mode,
        phase=phase or PHASE.get(mode, "fwd"),
        seq_len=seq_len,
        depth=depth,
        batch=batch,
        hidden=hidden,
        dtype=dtype,
        status=status,
        reason=reason,
        device=DEVICE,
        timing=timing,
        preset="synthetic",
        run_id="synthetic-1",
        **timed,
    )


def write(path: Path, rows: list[ResultRow], with_meta: bool = True, **meta) -> Path:
    with ResultsWriter(path) as writer:
        for r in rows:
            writer.append(r)
    if with_meta:
        fields = dict(
            run_id="synthetic-1",
            preset="synthetic",
            timestamp="2025-01-01T00:00:00Z",
            device=DEVICE,
            device_kind="cuda",
            timing="do_bench",
            git_commit="abc1234",
            git_dirty=False,
            python="3.11",
            torch="2.13",
            triton="3.9",
            cpu="Synthetic CPU",
            threads=16,
            cuda="12.8",
            driver="570.00",
            copy_gbytes_per_s=2000.0,
            notes={"scan_rule": SCAN_RULE},
        )
        fields.update(meta)
        write_meta(path, RunMeta(**fields))
    return path


# Made-up cost models (ms): the IndRNN grows slowly with T, the LSTM linearly and steeply,
# the transformer quadratically (so it is fastest at short T and overtaken as T grows).
def indrnn_ms(t: int, depth: int = 1, batch: int = 32) -> float:
    return depth * (0.5 + 0.0035 * t) * (batch / 32) ** 0.5


def lstm_ms(t: int, depth: int = 1, batch: int = 32) -> float:
    return depth * 0.05 * t * (batch / 32) ** 0.3


def transformer_ms(t: int, depth: int = 1, batch: int = 32) -> float:
    return depth * (0.2 + 2e-5 * t * t) * (batch / 32)


# The two schedules of the recurrence (ms): the walk pays a step's latency T times, or the bytes of
# x and h once the columns fill the device; the scan pays 14 bytes an element and two more launches.
SCAN_SIZES = ((1, 128), (8, 128), (64, 1024))  # (B, H): 128, 1024 and 65536 columns
BYTES_PER_MS = 2e9


def walk_ms(t: int, columns: int) -> float:
    return 0.005 + max(t * 5e-5, t * columns * 8 / BYTES_PER_MS)


def scan_ms(t: int, columns: int) -> float:
    return 0.015 + t * columns * 14 / BYTES_PER_MS


def scan_rows(backend: str = "triton", seq_lens=(256, 1024, 4096), sizes=SCAN_SIZES, **fields) -> list[ResultRow]:
    """Recurrence rows of an IndRNN pinned to each schedule (forward; the backward 1.5x as long)."""
    rows = []
    for t in seq_lens:
        for batch, hidden in sizes:
            for schedule, short, ms in (("sequential", "seq", walk_ms), ("scan", "scan", scan_ms)):
                for phase, factor in (("fwd", 1.0), ("bwd", 1.5)):
                    notes = f"backend={backend};schedule_asked={schedule}"
                    if schedule == "scan":
                        notes += ";gate_max_rel_err=2.50e-07"
                    rows.append(
                        row(
                            f"indrnn_{backend}_{short}",
                            factor * ms(t, batch * hidden),
                            mode="recurrence",
                            phase=phase,
                            seq_len=t,
                            batch=batch,
                            hidden=hidden,
                            schedule=schedule,
                            extra=notes,
                            **fields,
                        )
                    )
    return rows


def sweep_rows(
    indrnn: str = "indrnn_triton", lstm=lstm_ms, baselines=("lstm", "gru", "transformer", "sru")
) -> list[ResultRow]:
    """A small `paper`-like sweep: T at H=128 B=32 (depth 1 and 2), batch and depth sweeps at T=512,
    an infer mode, recurrence rows (the IndRNN's, and each schedule's over T x B*H), and one row of
    each failing status."""
    models = {
        "lstm": lstm,
        "gru": lambda t, d=1, b=32: 0.8 * lstm(t, d, b),
        "transformer": transformer_ms,
        "sru": lambda t, d=1, b=32: 0.3 * lstm(t, d, b),
    }
    rows = []
    for t in (64, 256, 512, 1024):
        for depth in (1, 2):
            rows.append(row(indrnn, indrnn_ms(t, depth), seq_len=t, depth=depth))
            for b in baselines:
                rows.append(row(b, models[b](t, depth), seq_len=t, depth=depth))
        rows.append(row(indrnn, 0.5 * indrnn_ms(t), mode="infer", seq_len=t))
        rows.append(row("lstm", 0.5 * lstm(t), mode="infer", seq_len=t))
    for batch in (8, 128):
        rows.append(row(indrnn, indrnn_ms(512, 1, batch), seq_len=512, batch=batch))
        for b in baselines:
            rows.append(row(b, models[b](512, 1, batch), seq_len=512, batch=batch))
    for depth in (4,):
        rows.append(row(indrnn, indrnn_ms(512, depth), seq_len=512, depth=depth))
        rows.append(row("lstm", lstm(512, depth), seq_len=512, depth=depth))
    for t in (256, 1024):
        for phase, pct in (("fwd", 80.0), ("bwd", 60.0)):
            rows.append(
                row(
                    indrnn,
                    0.01 * t / 256,
                    mode="recurrence",
                    phase=phase,
                    seq_len=t,
                    batch=32,
                    hidden=4096,
                    gbytes_per_s=20 * pct,
                    pct_copy_bw=pct,
                    ns_per_step=40.0,
                )
            )
    rows += scan_rows()
    rows.append(row("transformer", None, seq_len=4096, status="oom", reason="CUDA out of memory (tried 12 GiB)"))
    rows.append(row(indrnn, None, seq_len=4096, status="oom", reason="CUDA out of memory"))
    rows.append(row("hgrn", None, status="skipped", reason="fla not installed"))
    rows.append(row("indrnn_compile", None, status="failed", reason="correctness gate: max abs err 0.3 > 1e-3"))
    return rows


def build_report(csv_path: Path) -> str:
    """The sweep report of a results file as the `report` command builds it: with the registry's lineup."""
    return report.build_report(csv_path, lineup())
