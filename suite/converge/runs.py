"""Every run of a converge preset trained into its files (suite.converge.files), with the run's
metadata beside them. With resume, finished runs are kept and not redone; a run that was
interrupted is started again from scratch and its partial curve is removed first. A resumed
file continues on the same device with the same settings, and notes when it was continued.

On a CPU every run trains with denormal floats flushed to zero (suite.core.denormals), as the
sweep times its configs: time to target is training time, and a baseline's backward decaying
into denormals would otherwise time the CPU's slow path for them, not the model's learning.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from suite.converge.files import (
    CURVE_COLUMNS,
    SUMMARY_COLUMNS,
    CurvePoint,
    RunKey,
    Settings,
    drop_unfinished_curves,
    finished_runs,
)
from suite.converge.models import MODELS
from suite.converge.presets import Preset
from suite.converge.training import held_out_set, train_to_target
from suite.core import denormals, env, machine, paths
from suite.core.errors import UsageError
from suite.core.progress import Progress
from suite.core.rowfile import CsvAppender
from suite.core.schema import RunMeta
from suite.core.store import read_meta, write_meta

TIMING = "train_wallclock"  # perf_counter around the training steps, synchronised on CUDA


@dataclass(frozen=True)
class _RunStatus:
    """The progress line during a run: the run and its latest evaluation."""

    key: RunKey
    point: CurvePoint

    def label(self) -> str:
        return f"{self.key.label()} step {self.point.step} test MSE {self.point.test_mse:.3g}"


def _run_meta(
    out: Path, resume: bool, fresh: Callable[[], RunMeta], device: torch.device, settings: Settings, denormal: str
) -> RunMeta:
    """A fresh metadata record, or for --resume the file's own, noting when it was continued and
    with which commit. A resumed file must continue on the same device with the same settings
    and treatment of denormal floats: one file never mixes them."""
    if not resume:
        return fresh()
    try:
        old = RunMeta(**read_meta(out))
    except (ValueError, TypeError):  # no or unreadable metadata: start a new record
        return fresh()
    if old.device != env.device_name(device):
        raise UsageError(f"cannot resume {out}: it ran on {old.device}, this run is on {env.device_name(device)}")
    had, wanted = old.notes.get("settings", {}), asdict(settings)
    if had != wanted:
        changed = ", ".join(f"{k} {had.get(k)} -> {v}" for k, v in wanted.items() if had.get(k) != v)
        raise UsageError(f"cannot resume {out} with other settings ({changed}); use a new --out")
    denormals.check_resumable(out, old.denormals, denormal)
    return env.resumed(old)


def run_converge(
    preset: Preset,
    out_csv: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    progress: bool = True,
    argv: list[str] | None = None,
    flush_denormals: bool = True,
) -> Path:
    """Train every run of the preset not already finished in out_csv (on a CPU with denormal
    floats flushed unless `flush_denormals` is False); returns the CSV path."""
    out = Path(out_csv)
    settings = preset.settings
    cpu = device.type == "cpu"
    denormal = denormals.describe(flush_denormals) if cpu else ""

    def fresh_meta() -> RunMeta:
        recipes = {
            name: {
                "optimizer": s.optimizer.__name__,
                "lr": s.lr,
                "grad_clip": s.grad_clip,
                "description": s.description,
            }
            for name, s in MODELS.items()
        }
        notes = {
            "task": "adding problem",
            "settings": asdict(settings),
            "models": recipes,
            # Others' work on a shared machine slows every timed step: say how busy it was.
            "load_average": [machine.load_average()],
        }
        if device.type == "cuda":  # fp32 GEMMs and cuDNN RNNs may use TF32: say which did
            notes.update(
                matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            )
        return env.collect_meta(
            preset=preset.name,
            device=device,
            timing=TIMING,
            copy_gbytes_per_s=None,
            argv=argv,
            notes=notes,
            denormals=denormal,
        )

    meta = _run_meta(out, resume, fresh_meta, device, settings, denormal)
    finished = finished_runs(out) if resume else set()
    dropped = drop_unfinished_curves(out, finished) if resume else 0
    if dropped:
        print(f"resume: removed {dropped} curve rows of unfinished runs; they start again from scratch")
    todo = [k for k in preset.runs if k not in finished]
    write_meta(out, meta)
    curves = CsvAppender(out, CURVE_COLUMNS)
    summary = CsvAppender(paths.summary_path(out), SUMMARY_COLUMNS)
    bar = Progress(len(todo), progress)
    test_sets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    try:
        for i, key in enumerate(todo):
            if key.seq_len not in test_sets:
                test_sets = {key.seq_len: held_out_set(key.seq_len, settings.test_size, device)}

            def record(point: CurvePoint, key: RunKey = key, i: int = i) -> None:
                curves.append({"run_id": meta.run_id, **asdict(key), **asdict(point)})
                bar.show(i, _RunStatus(key, point))

            with denormals.denormal_mode(flush_denormals) if cpu else nullcontext():
                outcome = train_to_target(key, settings, device, test_sets[key.seq_len], record)
            spec = MODELS[key.model]
            summary.append(
                {
                    "run_id": meta.run_id,
                    "preset": preset.name,
                    "device": meta.device,
                    **asdict(key),
                    **asdict(outcome),
                    **asdict(settings),
                    "optimizer": spec.optimizer.__name__,
                    "lr": spec.lr,
                    "grad_clip": spec.grad_clip,
                }
            )
    finally:
        bar.close()
        curves.close()
        summary.close()
    write_meta(
        out,
        replace(meta, notes={**meta.notes, "load_average": [*meta.notes["load_average"][:1], machine.load_average()]}),
    )
    return out
