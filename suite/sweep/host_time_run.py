"""The host-time benchmark run: a preset's sizes, schedules and steps (presets/host-time/*.json)
measured into a CSV of rows (suite.core.host_rows) with its metadata beside it.

At each size, every step of every schedule is built once on the meta device and counted
(round 0: the counts of one call, no time), then built on CPU tensors and timed: in each of the
preset's rounds, `calls` calls of each timed step one after the other, in alternating order from
round to round, so that a drift of the machine (another job, a clock) falls on all of them. Each
row is flushed to disk as it comes; a run that was cut continues with `resume`, measuring only the
rows it lacks. Set OMP_NUM_THREADS=1 for steady figures: the metadata records the threads and the
machine's load at the start and the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from suite.core import env, machine
from suite.core.errors import PresetError, UsageError
from suite.core.host_rows import COLUMNS, HOST_TIMING, key_of
from suite.core.progress import Progress
from suite.core.rowfile import CsvAppender, read_rows
from suite.core.schema import RunMeta
from suite.core.store import read_meta, write_meta
from suite.sweep.host_time import (
    GPU_SMS,
    SCHEDULES,
    STEPS,
    Size,
    Step,
    auto_schedule,
    count_call,
    stubbed_launches,
    timed_call,
)

PRESET_DIR = Path(__file__).with_name("presets") / "host-time"


@dataclass(frozen=True)
class HostTimePlan:
    """What a host-time run measures. `target`: the most the layer may cost, as a multiple of its
    schedule's minimal Function, for the launch path to count as lean."""

    preset: str
    description: str
    target: float
    sizes: tuple[Size, ...]
    schedules: tuple[str, ...]
    timed_steps: tuple[str, ...]
    counted_steps: tuple[str, ...]
    calls: int
    rounds: int

    def steps(self) -> tuple[str, ...]:
        return (*self.timed_steps, *self.counted_steps)


def host_time_presets() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.json")))


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PresetError(f"{name} must be a positive integer, got {value!r}")
    return value


def _names(name: str, values, known) -> tuple[str, ...]:
    unknown = [v for v in values if v not in known]
    if not values or unknown:
        raise PresetError(f"{name} must name some of {', '.join(known)}; got {', '.join(map(str, unknown or values))}")
    return tuple(values)


def load_plan(name: str, calls: int | None = None, rounds: int | None = None) -> HostTimePlan:
    """The preset `name` with `calls` and `rounds` overridden where given; PresetError if it cannot
    describe a run."""
    if name not in host_time_presets():
        raise PresetError(f"unknown host-time preset {name!r}; presets: {', '.join(host_time_presets())}")
    data = json.loads((PRESET_DIR / f"{name}.json").read_text())
    sizes = data["sizes"]
    if not sizes or any(len(s) != 3 for s in sizes):
        raise PresetError(f"sizes must be [T, B, H] triples, got {sizes!r}")
    target = data["target"]
    if not isinstance(target, int | float) or target <= 1:
        raise PresetError(f"target must be a number above 1, got {target!r}")
    timed = _names("timed_steps", data["timed_steps"], STEPS)
    if "minimal" not in timed or "indrec" not in timed:
        raise PresetError("timed_steps must hold minimal and indrec: the layer is judged against the minimal Function")
    return HostTimePlan(
        preset=name,
        description=data["description"],
        target=float(target),
        sizes=tuple(tuple(_positive("a size", n) for n in s) for s in sizes),
        schedules=_names("schedules", data["schedules"], SCHEDULES),
        timed_steps=timed,
        counted_steps=_names("counted_steps", data["counted_steps"], STEPS) if data["counted_steps"] else (),
        calls=_positive("--calls", data["calls"] if calls is None else calls),
        rounds=_positive("--rounds", data["rounds"] if rounds is None else rounds),
    )


def _round_rows(plan: HostTimePlan, r: int) -> list[tuple[str, str]]:
    """(schedule, step) of each row of round r: round 0 counts every step, the others time the timed ones."""
    return [(s, step) for s in plan.schedules for step in (plan.steps() if r == 0 else plan.timed_steps)]


def _row_key(size: Size, schedule: str, step: str, r: int) -> tuple:
    T, B, H = size
    return key_of({"seq_len": T, "batch": B, "hidden": H, "schedule": schedule, "step": step, "round": r})


def done_keys(out: Path) -> set[tuple]:
    """The keys of the rows already in `out` (none when it does not exist)."""
    if not out.is_file() or out.stat().st_size == 0:
        return set()
    return {key_of(row) for row in read_rows(out)[1]}


def _notes(plan: HostTimePlan) -> dict:
    return {
        "plan": json.loads(json.dumps(asdict(plan))),  # as it reads back: lists, not tuples
        "gpu_sms": GPU_SMS,
        "auto_schedule": {"x".join(map(str, size)): auto_schedule(size) for size in plan.sizes},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def _meta(out: Path, plan: HostTimePlan, resume: bool, argv: list[str]) -> RunMeta:
    """A fresh record, or the file's own for `resume`, which must continue the same plan on the same CPU."""
    cpu = torch.device("cpu")
    if not resume:
        meta = env.collect_meta(
            preset=plan.preset, device=cpu, timing=HOST_TIMING, copy_gbytes_per_s=None, argv=argv, notes=_notes(plan)
        )
    else:
        old = RunMeta(**read_meta(out))
        if old.notes.get("plan") != _notes(plan)["plan"]:
            raise UsageError(f"cannot resume {out}: it measures another plan (preset, sizes, calls or rounds)")
        if old.device != env.device_name(cpu):
            raise UsageError(f"cannot resume {out}: it ran on {old.device}, this run is on {env.device_name(cpu)}")
        meta = env.resumed(old)
    return RunMeta(**{**asdict(meta), "machine": machine.record(meta.machine, "start", cpu)})


@dataclass(frozen=True)
class _Round:
    size: Size
    round: int
    rounds: int

    def label(self) -> str:
        T, B, H = self.size
        return f"T={T} B={B} H={H} " + ("counts" if self.round == 0 else f"round {self.round}/{self.rounds}")


def _timed_steps(plan: HostTimePlan, size: Size) -> dict[tuple[str, str], Step]:
    """Each timed step of each schedule at `size` on CPU tensors, called once: caches filled, the
    autograd graph's first build done."""
    steps = {(s, step): STEPS[step](size, "cpu", s) for s, step in _round_rows(plan, 1)}
    with stubbed_launches():
        for step in steps.values():
            step()
    return steps


def measure_host_time(plan: HostTimePlan, out: Path, *, resume: bool, progress: bool, argv: list[str]) -> RunMeta:
    """Every row of `plan` missing from `out`, appended as it is measured; the metadata is written
    before the first row and again, with the machine's state at the end, after the last."""
    meta = _meta(out, plan, resume, argv)
    write_meta(out, meta)
    done = done_keys(out) if resume else set()
    todo = [
        (size, r, missing)
        for size in plan.sizes
        for r in range(plan.rounds + 1)
        if (missing := [(s, step) for s, step in _round_rows(plan, r) if _row_key(size, s, step, r) not in done])
    ]
    started = time.perf_counter()
    bar = Progress(len(todo), progress)
    timed_size, timed = None, {}
    with CsvAppender(out, COLUMNS) as rows:
        for i, (size, r, missing) in enumerate(todo):
            bar.show(i, _Round(size, r, plan.rounds))
            T, B, H = size
            where = {"run_id": meta.run_id, "preset": plan.preset, "seq_len": T, "batch": B, "hidden": H, "round": r}
            if r == 0:
                for schedule, step in missing:
                    counts = count_call(STEPS[step](size, "meta", schedule))
                    rows.append({**where, "schedule": schedule, "step": step, **asdict(counts)})
                continue
            if timed_size != size:
                timed_size, timed = size, _timed_steps(plan, size)
            with stubbed_launches():
                for schedule, step in missing if r % 2 else reversed(missing):
                    seconds = timed_call(timed[schedule, step], plan.calls)
                    rows.append(
                        {**where, "schedule": schedule, "step": step, "calls": plan.calls, "us_per_call": 1e6 * seconds}
                    )
    bar.close()
    wall = (meta.wall_s or 0.0) + time.perf_counter() - started
    meta = RunMeta(
        **{
            **asdict(meta),
            "wall_s": round(wall, 1),
            "machine": machine.record(meta.machine, "end", torch.device("cpu")),
        }
    )
    write_meta(out, meta)
    return meta
