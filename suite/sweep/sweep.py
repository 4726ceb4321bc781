"""The `run` sweep: measure every config of a grid (suite.sweep.measure) and append one row per
phase to a results file, with the run's metadata beside it.

Rows are flushed one by one, so an interrupted sweep loses nothing and `resume` continues it:
configs whose rows are all present are not measured again. One file never mixes devices,
timing methods, or CPU times taken with denormal floats flushed and kept. A progress line on
stderr shows i/n, the config, elapsed time and ETA.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from suite.core import denormals, env, machine
from suite.core.errors import UsageError
from suite.core.progress import Progress
from suite.core.schema import ResultRow, RunMeta, SweepConfig, expected_keys, key_of, plan_hash, timing_of
from suite.core.store import ResultsWriter, SamplesWriter, existing_keys, read_meta, write_meta
from suite.sweep.measure import measure
from suite.sweep.providers import role_of
from suite.sweep.timing import copy_bandwidth_gbps, make_timer


def _row(cfg: SweepConfig, meta: RunMeta, timing: str, **fields) -> ResultRow:
    return ResultRow(
        **{**asdict(cfg), "timing": timing},
        role=role_of(cfg.provider),
        device=meta.device,
        preset=meta.preset,
        run_id=meta.run_id,
        **fields,
    )


def _meta_for(
    out: Path, resume: bool, fresh: Callable[[], RunMeta], device: str, timing: str, denormal: str
) -> RunMeta:
    """A resumed run keeps its run id and copy bandwidth (so its rows stay comparable) and
    notes when it was continued. It must continue on the same device, with the same timing
    method, the same treatment of denormal floats and the same commit: one file never mixes them."""
    if resume and out.exists():
        try:
            old = RunMeta(**read_meta(out))
        except (ValueError, TypeError):  # no or unreadable metadata: start a new record
            return fresh()
        if (old.device, old.timing) != (device, timing):
            raise UsageError(
                f"cannot resume {out}: it was measured on {old.device} with {old.timing}, "
                f"this run is on {device} with {timing}; use a new --out"
            )
        denormals.check_resumable(out, old.denormals, denormal)
        commit, _ = env.git_state()
        if old.git_commit != commit:
            raise UsageError(
                f"cannot resume {out}: it was measured with commit {old.git_commit[:12]}, "
                f"this is {commit[:12]}; use a new --out"
            )
        return env.resumed(old)
    return fresh()


def run_sweep(
    configs: Iterable[SweepConfig],
    out_csv: str | Path,
    *,
    preset: str,
    resume: bool = False,
    timing: str = "auto",
    progress: bool = True,
    device: str | torch.device = "auto",
    warmup: float | None = None,
    repeats: float | None = None,
    argv: list[str] | None = None,
    retry_failed: bool = False,
    notes: dict | None = None,
    plan: list[SweepConfig] | None = None,
    shard: str = "",
    flush_denormals: bool = True,
) -> Path:
    """Measure every config into out_csv (rows appended, flushed per row) with its metadata
    beside it. With resume, configs whose rows are all present are not measured again, and a
    partly written config only gets its missing rows; failed and oom rows count as present
    unless `retry_failed`, which measures them again (the newer row wins on reading). When the
    configs are shard `shard` ("K/N") of a larger `plan`, the metadata records both. On a CPU
    configs are timed with denormal floats flushed to zero unless `flush_denormals` is False.
    Returns the CSV path."""
    out = Path(out_csv)
    device = env.pick_device(device) if isinstance(device, str) else device
    timer = make_timer(device, timing, warmup, repeats, flush_denormals)
    denormal = denormals.describe(flush_denormals) if device.type == "cpu" else ""
    timers = {timer.method: timer}  # the run's default, and CUDA-graph replays for configs that ask
    if device.type == "cuda" and timer.method != "cuda_graph":
        timers["cuda_graph"] = make_timer(device, "cuda_graph", warmup, repeats)
    configs = list(configs)
    done = existing_keys(out, statuses=None if not retry_failed else ("ok", "skipped")) if resume else set()
    started = time.perf_counter()

    def fresh_meta() -> RunMeta:
        run_notes = {"timer": asdict(timer), **(notes or {})}
        if device.type == "cuda":  # fp32 GEMMs and cuDNN RNNs may use TF32: say which did
            run_notes.update(
                matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            )
        return env.collect_meta(
            preset=preset,
            device=device,
            timing=timer.method,
            copy_gbytes_per_s=copy_bandwidth_gbps(device),
            argv=argv,
            notes=run_notes,
            configs=[asdict(c) for c in configs],
            plan_hash=plan_hash(configs if plan is None else plan),
            shard=shard,
            plan=[] if plan is None else [asdict(c) for c in plan],
            denormals=denormal,
        )

    meta = _meta_for(out, resume, fresh_meta, env.device_name(device), timer.method, denormal)
    # Merged: `machine` holds other records too (GPU clocks). A resumed run's
    # record says the latest session's state.
    meta = replace(meta, machine=machine.record(meta.machine, "start", device))
    todo = [c for c in configs if not set(expected_keys(c, timer.method)) <= done]
    with ResultsWriter(out) as writer, SamplesWriter(out) as samples:
        write_meta(out, meta)
        bar = Progress(len(todo), progress)
        finished = False
        try:
            for i, cfg in enumerate(todo):
                bar.show(i, cfg)
                used = timing_of(cfg, timer.method)
                for fields in measure(cfg, device, timers.get(used), meta.copy_gbytes_per_s):
                    samples_ms = fields.pop("samples_ms", None)  # kept beside the row, not in it
                    row = _row(cfg, meta, used, **fields)
                    key = key_of(asdict(row))
                    if key not in done:
                        writer.append(row)
                        if samples_ms:
                            samples.append(row, samples_ms)
                        done.add(key)
            finished = True
        finally:
            bar.close()
            # The sweep's own seconds, summed over every session that resumed it.
            meta = replace(meta, wall_s=(meta.wall_s or 0.0) + time.perf_counter() - started)
            # The state at the end (read before the copy, which loads the machine itself), then
            # the copy again: far from the start's, the machine changed meanwhile. Not after a
            # Ctrl-C or an error, which measuring could delay or mask.
            state = machine.record(meta.machine, "end", device)
            if finished:
                state["copy_gbytes_per_s_end"] = copy_bandwidth_gbps(device)
            meta = replace(meta, machine=state)
            write_meta(out, meta)
    return out
