"""`submit`: a preset's sweep as N shards run through submitit (a Slurm job array, or local
processes: one per visible GPU, one after another on a CPU), then merged into one results file
with its report and plots.

Each shard job is the command `run --preset P --shard K/N --out FILE`, so a shard measures
exactly as one started by hand and its log is that command's output. The output folder keeps
`submit.json` (per shard: its file, job id, status and log), so `--resume` launches only the
shards that did not finish, continuing their files. submitit is optional: imported only here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from suite.commands.merge import print_merged
from suite.core import env, paths
from suite.core.errors import ResultsError, UsageError
from suite.core.paths import meta_path
from suite.core.schema import missing_configs, plan_hash
from suite.core.store import existing_keys, read_meta
from suite.sweep.merge import merge
from suite.sweep.presets import PRESETS, load_preset
from suite.sweep.providers import lineup
from suite.sweep.shards import Shard, shard_of

STATE = "submit.json"
EXECUTORS = ("slurm", "local")


@dataclass
class ShardJob:
    """One shard's launch, as submit.json records it."""

    shard: str  # "K/N"
    csv: str  # the shard's results file
    status: str = "pending"  # pending | running | done | failed
    job_id: str = ""
    log: str = ""  # the job's stderr file, once launched


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UsageError("submit runs its jobs through submitit: pip install submitit") from None
    return submitit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, metavar="NAME", help=f"one of {', '.join(PRESETS)}")
    parser.add_argument("--shards", required=True, type=int, metavar="N", help="how many parts to split the grid in")
    parser.add_argument("--executor", required=True, choices=EXECUTORS, help="a Slurm job array, or local processes")
    parser.add_argument(
        "--out-dir",
        metavar="DIR",
        help="shards, logs and the merged results (default: results/<preset>-submit-<time>/)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="launch only the unfinished shards of --out-dir (default: the newest)"
    )
    parser.add_argument("--slurm-partition", metavar="P", help="Slurm partition of the jobs")
    parser.add_argument("--gpus-per-task", type=int, default=1, metavar="G", help="Slurm: GPUs per shard job (1)")
    parser.add_argument("--timeout-min", type=int, default=240, metavar="M", help="time limit of a shard job (240)")
    parser.add_argument("--warmup", metavar="N", help="passed to every shard's `run`")
    parser.add_argument("--repeats", metavar="N", help="passed to every shard's `run`")
    parser.add_argument("--keep-denormals", action="store_true", help="passed to every shard's `run`")
    parser.add_argument("--poll-s", type=float, default=10.0, metavar="S", help="seconds between progress checks (10)")


def executor_parameters(args: argparse.Namespace) -> dict:
    """submitit's parameters for the shard jobs (Slurm keys are ignored by the local executor)."""
    params = {"timeout_min": args.timeout_min, "name": f"indrnn-{args.preset}"}
    if args.executor == "slurm":
        params.update(nodes=1, tasks_per_node=1, gpus_per_node=args.gpus_per_task, slurm_array_parallelism=args.shards)
        if args.slurm_partition:
            params["slurm_partition"] = args.slurm_partition
    return params


def local_slots() -> list[str]:
    """CUDA_VISIBLE_DEVICES of each local shard at a time: one visible GPU each, or one CPU run
    (no GPU visible) so that shards never time each other's load."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return [""]
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[:count] if visible else [str(i) for i in range(count)]


def shard_command(args: argparse.Namespace, job: ShardJob) -> list[str]:
    """The `run` command of one shard; it continues the shard's file when one was started."""
    command = [sys.executable, str(paths.REPO_ROOT / "run_bench.py"), "run", "--preset", args.preset]
    command += ["--shard", job.shard, "--out", job.csv]
    if Path(job.csv).is_file() and Path(job.csv).stat().st_size > 0:
        command.append("--resume")
    for flag in ("warmup", "repeats"):
        if getattr(args, flag) is not None:
            command += [f"--{flag}", getattr(args, flag)]
    if args.keep_denormals:
        command.append("--keep-denormals")
    return command


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out_dir:
        return Path(args.out_dir)
    if args.resume:
        folders = sorted(p.parent for p in paths.RESULTS_DIR.glob(f"{args.preset}-submit-*/{STATE}"))
        if not folders:
            raise UsageError(f"--resume: no earlier submit of {args.preset} in results/; pass --out-dir DIR")
        return folders[-1]
    return paths.RESULTS_DIR / f"{args.preset}-submit-{env.utc_now():%Y%m%dT%H%M%SZ}"


def _load_state(folder: Path, args: argparse.Namespace, plan_id: str) -> dict[str, ShardJob]:
    """The shards to launch: all of them, or with --resume those submit.json does not call done."""
    state_path = folder / STATE
    fresh = {
        str(s): ShardJob(str(s), str(folder / f"{args.preset}.{s.suffix}.csv"))
        for s in (Shard(k, args.shards) for k in range(1, args.shards + 1))
    }
    if not args.resume:
        if state_path.exists():
            raise UsageError(f"{folder} holds an earlier submit; pass --resume to finish it, or another --out-dir")
        return fresh
    if not state_path.exists():
        raise UsageError(f"--resume: {state_path} does not exist")
    state = json.loads(state_path.read_text())
    if (state["preset"], state["shards"], state["plan_hash"]) != (args.preset, args.shards, plan_id):
        raise UsageError(
            f"cannot resume {folder}: it ran preset {state['preset']} in {state['shards']} shards "
            f"(plan {state['plan_hash']}), not {args.preset} in {args.shards} (plan {plan_id})"
        )
    return {name: ShardJob(**job) for name, job in state["jobs"].items()}


def _save_state(folder: Path, args: argparse.Namespace, plan_id: str, jobs: dict[str, ShardJob]) -> None:
    state = {
        "preset": args.preset,
        "shards": args.shards,
        "executor": args.executor,
        "plan_hash": plan_id,
        "jobs": {name: asdict(job) for name, job in jobs.items()},
    }
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, folder / STATE)


def _configs_done(job: ShardJob, configs: list) -> int | None:
    """How many of the shard's configs its file holds every row of (None before it has any)."""
    try:
        timing = read_meta(job.csv).get("timing", "")
        return len(configs) - len(missing_configs(configs, existing_keys(job.csv), timing))
    except ResultsError:  # not started yet, or a row being written: the next check counts it
        return None


def _last_line(log: str) -> str:
    """The last line a failed job wrote: its command's one-line error or the end of its traceback."""
    path = Path(log)
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()] if path.is_file() else []
    lines = [line for line in lines if line]
    return lines[-1].split("FailedJobError: ", 1)[-1] if lines else "no log written"


def _launch_and_wait(args, folder: Path, plan_id: str, jobs: dict[str, ShardJob], plan: list) -> None:
    """Launch the unfinished shards and wait for them, printing a line per shard when it
    changes; submit.json is rewritten on every change."""
    submitit = _submitit()
    try:
        executor = submitit.AutoExecutor(folder=folder / "logs", cluster=args.executor)
    except RuntimeError as e:  # e.g. no srun: not on a Slurm cluster
        raise UsageError(f"--executor {args.executor}: {e}") from None
    executor.update_parameters(**executor_parameters(args))
    todo = [job for job in jobs.values() if job.status != "done" or not Path(job.csv).is_file()]
    configs = {name: shard_of(plan, Shard.parse(name)) for name in jobs}
    slots = local_slots() if args.executor == "local" else []
    running: dict[str, tuple] = {}  # shard -> (submitit job, local slot)
    shown: dict[str, tuple] = {}

    def start(batch: list[ShardJob], slot: str | None) -> None:
        env_of = None if slot is None else {**os.environ, "CUDA_VISIBLE_DEVICES": slot}
        fns = [submitit.helpers.CommandFunction(shard_command(args, j), cwd=paths.REPO_ROOT, env=env_of) for j in batch]
        for job, handle in zip(batch, executor.submit_array(fns), strict=True):
            job.status, job.job_id, job.log = "running", str(handle.job_id), str(handle.paths.stderr)
            running[job.shard] = (handle, slot)

    print(f"{folder}: {len(todo)} of {len(jobs)} shards to run ({args.executor})")
    if args.executor == "slurm" and todo:
        start(todo, None)
        todo = []
    try:
        while todo or running:
            while todo and slots:
                start([todo.pop(0)], slots.pop(0))
            for name, (handle, slot) in list(running.items()):
                job = jobs[name]
                if handle.done():
                    try:
                        handle.result()
                        job.status = "done"
                    except Exception:  # the job's failure, whatever it was: kept in its log
                        job.status = "failed"
                        print(f"shard {name} failed: {_last_line(job.log)}; log: {job.log}")
                    del running[name]
                    if slot is not None:
                        slots.append(slot)
                # While it runs, the scheduler's word for it (Slurm: PENDING, RUNNING, ...).
                line = (handle.state.lower() if name in running else job.status, _configs_done(job, configs[name]))
                if shown.get(name) != line:
                    shown[name] = line
                    done = "?" if line[1] is None else line[1]
                    print(f"shard {name} (job {job.job_id}): {line[0]}, {done}/{len(configs[name])} configs")
            _save_state(folder, args, plan_id, jobs)
            if running:
                time.sleep(args.poll_s)
    except KeyboardInterrupt:
        for handle, slot in running.values():
            if slot is not None:  # local jobs die with the submit; Slurm jobs keep running
                handle.cancel()
        raise KeyboardInterrupt(
            f"shard files and state are in {folder}; finish with --resume --out-dir {folder}"
        ) from None


def run(args: argparse.Namespace) -> int:
    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; presets: {', '.join(PRESETS)}")
    if args.shards < 1:
        raise UsageError(f"--shards must be at least 1, got {args.shards}")
    _submitit()  # say how to install it before anything starts
    plan = load_preset(args.preset)
    plan_id = plan_hash(plan)
    folder = _out_dir(args)
    jobs = _load_state(folder, args, plan_id)
    folder.mkdir(parents=True, exist_ok=True)
    _launch_and_wait(args, folder, plan_id, jobs, plan)

    failed = [job for job in jobs.values() if job.status != "done"]
    # Every shard that started measuring: a failed one's rows so far count, its lost configs are listed.
    delivered = [job.csv for job in jobs.values() if meta_path(job.csv).is_file()]
    if not delivered:
        raise ResultsError(f"no shard wrote results; see the logs in {folder / 'logs'}")
    merged = merge(delivered, folder / f"{args.preset}-merged.csv")
    print_merged(merged)
    from suite.render.plots import plot_all
    from suite.render.report import write_report

    print(f"report: {write_report(merged.out, lineup())}")
    print(f"plots: {len(plot_all(merged.out, lineup()).written)} figures")
    if failed:
        print(
            f"{len(failed)} shard(s) did not finish ({', '.join(j.shard for j in failed)}); after fixing the cause: "
            f"python run_bench.py submit --preset {args.preset} --shards {args.shards} --executor {args.executor} "
            f"--resume --out-dir {folder}"
        )
        return 1
    return 0
