"""The `run` command: pick the preset and device, parse axis overrides, run the sweep
(suite.sweep.sweep), with --profile profile its Fig. 2 steps once it is done, then print the
summary and write the report and the plots."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tabulate import tabulate

from suite.commands import flags
from suite.core import env, paths
from suite.core.errors import UsageError
from suite.core.schema import AXES, SweepConfig
from suite.core.store import read_meta, read_results
from suite.sweep.cost import CostModel
from suite.sweep.presets import PRESETS, default_preset, load_preset, preset_description
from suite.sweep.profiling import profile_fig2
from suite.sweep.providers import PROVIDERS, lineup
from suite.sweep.shards import Shard, shard_of
from suite.sweep.sweep import run_sweep


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", metavar="NAME", help=f"one of {', '.join(PRESETS)} (default: paper on a GPU, quick on a CPU)"
    )
    parser.add_argument("--list", action="store_true", help="list presets and providers, then exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the preset, device, an estimated duration and the grid; measure nothing",
    )
    parser.add_argument("--out", metavar="PATH", help="results CSV (default: results/<preset>-<device>-<UTC time>.csv)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue --out (default: the newest run of this preset and device) with the grid recorded in its metadata",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="with --resume: measure failed and oom configs again"
    )
    flags.add_device(parser)
    parser.add_argument("--cuda-graph", action="store_true", help="GPU: time CUDA-graph replays (rows say cuda_graph)")
    parser.add_argument("--warmup", metavar="N", help="CPU: untimed calls (2); GPU: do_bench warm-up ms (25)")
    parser.add_argument("--repeats", metavar="N", help="CPU: timed calls (10, at most 2 s); GPU: do_bench ms (100)")
    parser.add_argument(
        "--keep-denormals",
        action="store_true",
        help="CPU: time with denormal floats as they come (default: flushed to zero while timing, for every provider)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after timing, profile the grid's Fig. 2 training steps into <stem>.profile.csv (see `profile`)",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="measure only the K-th of N parts of the grid (whole comparisons per part); `merge` joins the parts",
    )
    axes = parser.add_argument_group("axis overrides (replace the preset's values in every grid)")
    for axis in AXES:
        axes.add_argument(f"--{axis.replace('_', '-')}", nargs="+", metavar="V", help=f"{axis} values")


def _number(flag: str, text: str | None, minimum: float) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} needs a number, got {text!r}") from None
    if value < minimum:
        raise UsageError(f"{flag} must be at least {minimum:g}, got {text}")
    return value


def _output_path(args: argparse.Namespace, preset: str, device: torch.device, shard: Shard | None) -> Path:
    if args.out:
        return flags.given_out(args.out, args.resume)
    suffix = f".{shard.suffix}" if shard else ""
    if args.resume:
        runs = sorted(paths.RESULTS_DIR.glob(f"{preset}-{device.type}-*{suffix}.csv"))
        runs = [r for r in runs if shard or ".shard-" not in r.name]  # a whole run never continues a shard's file
        if not runs:
            raise UsageError(f"--resume: no earlier {preset} run on {device.type} in results/; pass --out PATH")
        return runs[-1]
    return paths.RESULTS_DIR / f"{preset}-{device.type}-{env.utc_now():%Y%m%dT%H%M%SZ}{suffix}.csv"


def print_list(device: torch.device) -> None:
    print(
        tabulate(
            [[n, len(load_preset(n)), preset_description(n)] for n in PRESETS], ["preset", "configs", "description"]
        )
    )
    print()
    rows = []
    for name, p in PROVIDERS.items():
        # The smallest config: only whether the provider can run here at all.
        probe = SweepConfig(
            provider=name, mode=p.modes[0], seq_len=8, depth=1, batch=1, hidden=8, dtype="float32", input_size=8
        )
        rows.append([name, ", ".join(p.modes), p.unavailable(probe, device) or "yes", p.description])
    print(tabulate(rows, ["provider", "modes", f"runs on {device.type}", "description"]))


def estimate_duration(configs: list[SweepConfig], device: torch.device) -> str:
    """A coarse, stated estimate of how long the grid takes, by the cost model (suite.sweep.cost)."""
    costs = CostModel.from_results(device.type)
    return f"estimated duration: about {_minutes(costs.total(configs))} (an estimate: {costs.basis(configs)})"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def print_grid(configs: list[SweepConfig]) -> None:
    print(tabulate([list(asdict(c).values()) for c in configs], list(AXES)))
    print(f"{len(configs)} configs")


# results column -> summary table header
SUMMARY_COLUMNS = {
    "provider": "provider",
    "mode": "mode",
    "phase": "phase",
    "seq_len": "T",
    "depth": "L",
    "batch": "B",
    "hidden": "H",
    "dtype": "dtype",
    "status": "status",
    "p50_ms": "p50 ms",
    "tokens_per_s": "tokens/s",
    "reason": "reason",
}


def print_summary(out: Path) -> None:
    table = read_results(out)[list(SUMMARY_COLUMNS)]
    table = table.assign(reason=table["reason"].str.slice(0, 60)).astype(object)
    rows = table.where(table.notna(), None).values.tolist()  # None prints as "-"
    print(tabulate(rows, list(SUMMARY_COLUMNS.values()), floatfmt=".4g", missingval="-"))


def _write_report_and_plots(out: Path) -> None:
    # Both modules read only the results file; a missing one must not cost the measurements.
    try:
        from suite.render.report import write_report
    except ImportError as e:
        print(f"report not written: {e}")
    else:
        print(f"report: {write_report(out, lineup())}")
    try:
        from suite.render.plots import plot_all
    except ImportError as e:
        print(f"plots not written: {e}")
    else:
        print(f"plots: {len(plot_all(out, lineup()).written)} figures")


CUSTOM = "custom"  # the preset name of a sweep whose axes were overridden on the command line


def _recorded_grid(out: Path, asked: list[SweepConfig] | None) -> list[SweepConfig]:
    """The grid a resumed file was started with (from its metadata). A grid asked for on the
    command line must be that same grid: a resume never continues one sweep into another's file."""
    try:
        recorded = [SweepConfig(**c) for c in read_meta(out).get("configs", [])]
    except TypeError as e:
        raise UsageError(f"cannot resume {out}: its metadata records a grid this suite cannot read ({e})") from None
    if not recorded:
        raise UsageError(f"cannot resume {out}: its metadata records no grid (written by an older version); use --out")
    if asked is not None and asked != recorded:
        raise UsageError(
            f"cannot resume {out}: its grid ({len(recorded)} configs) is not the one asked for "
            f"({len(asked)} configs); resume without --preset and axis flags, or use a new --out"
        )
    return recorded


def run(args: argparse.Namespace) -> int:
    # A dry run measures nothing, so it plans for a GPU on a machine without one too.
    planning_only = args.dry_run and args.device == "cuda" and not torch.cuda.is_available()
    device = torch.device("cuda") if planning_only else flags.device_from(args.device)
    if args.list:
        print_list(device)
        return 0
    if args.preset is not None and args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; presets: {', '.join(PRESETS)}")
    if args.cuda_graph and device.type != "cuda":
        raise UsageError("--cuda-graph needs a CUDA device")
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed continues a run: pass it with --resume")
    base = args.preset or default_preset(device.type)
    overrides = flags.axis_overrides(args)
    configs = load_preset(base, overrides)
    if not configs:
        raise UsageError("the grid is empty: no provider in it supports the requested modes")
    # A sweep with overridden axes is not the preset: its files and rows say "custom".
    preset = CUSTOM if overrides else base
    warmup = _number("--warmup", args.warmup, 0)
    repeats = _number("--repeats", args.repeats, 1)
    shard = Shard.parse(args.shard) if args.shard else None
    plan, configs = (configs, shard_of(configs, shard)) if shard else (None, configs)
    if args.dry_run:
        chosen = "given" if args.preset else f"the default on {device.type}"
        custom = f"; custom: {', '.join(overrides)} overridden" if overrides else ""
        name = "none on this machine: planned only" if planning_only else env.device_name(device)
        print(f"preset: {base} ({chosen}{custom}); device: {device.type} ({name})")
        print(estimate_duration(configs, device))
        print_grid(configs)
        return 0
    out = _output_path(args, preset, device, shard)
    if args.resume:
        read_results(out)  # a file that is not a results file is refused as such, first
        asked = configs if (args.preset or overrides) else None
        configs = _recorded_grid(out, asked)
        recorded = read_meta(out)
        preset = recorded.get("preset", preset)
        if shard and recorded.get("shard") != str(shard):
            raise UsageError(f"cannot resume {out}: it holds shard {recorded.get('shard') or 'none'}, not {shard}")
        print(f"resuming {out} ({len(configs)} configs in its grid)")
    started = time.perf_counter()
    try:
        run_sweep(
            configs,
            out,
            preset=preset,
            resume=args.resume,
            retry_failed=args.retry_failed,
            timing="cuda_graph" if args.cuda_graph else "auto",
            progress=not args.no_progress,
            device=device,
            warmup=warmup,
            repeats=repeats,
            notes={"base_preset": base, "overrides": overrides} if preset == CUSTOM else None,
            plan=plan,
            shard=str(shard) if shard else "",
            flush_denormals=not args.keep_denormals,
        )
        if args.profile:  # after the sweep, whose wall time and end state are then its own
            profile_fig2(configs, out, device)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"the rows measured so far are in {out}; continue with `python run_bench.py --resume --out {out}`"
        ) from None
    print_summary(out)
    print(f"results: {out} ({time.perf_counter() - started:.0f} s)")
    if shard:  # one shard's comparisons are not the plan's: the report is written for the merged file
        print(f"shard {shard}: join the shards with `python run_bench.py merge SHARD.csv ... -o OUT.csv`")
        return 0
    _write_report_and_plots(out)
    return 0
