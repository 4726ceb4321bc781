"""The `converge` command: how long each model takes to *solve* the adding problem, as the time
to a target test MSE (suite.converge.training), IndRNN against its baselines.

The flags pick a preset (suite/converge/presets/) and override its runs and settings; every run
not already finished in the output is trained into its files (suite.converge.runs), then the
report and the figures are written from those files. `--resume` keeps finished runs and starts an
interrupted one again from scratch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch
from tabulate import tabulate

from suite.commands import flags
from suite.converge.files import RunKey, finished_runs
from suite.converge.models import MODELS
from suite.converge.presets import (
    SETTING_TYPES,
    Preset,
    check_axis,
    check_setting,
    converge_presets,
    default_preset,
    load_preset,
)
from suite.converge.runs import run_converge
from suite.core import env, paths
from suite.core.errors import PresetError, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help=f"one of {', '.join(converge_presets())} (default: paper on a GPU, quick on a CPU)",
    )
    parser.add_argument("--list", action="store_true", help="list presets and models, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and settings without training")
    parser.add_argument(
        "--out", metavar="PATH", help="curves CSV (default: results/converge-<preset>-<device>-<UTC time>.csv)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue --out (default: the newest converge run of this preset and device); "
        "finished runs are kept, an interrupted run starts again from scratch",
    )
    flags.add_device(parser)
    parser.add_argument(
        "--keep-denormals",
        action="store_true",
        help="CPU: train with denormal floats as they come (default: flushed to zero, for every model)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    grid = parser.add_argument_group("overrides (replace the preset's values)")
    grid.add_argument("--models", nargs="+", metavar="M", help=f"models: {', '.join(MODELS)}")
    grid.add_argument("--seq-len", nargs="+", metavar="T", help="sequence lengths (in every grid)")
    grid.add_argument("--seeds", nargs="+", metavar="S", help="seeds, one run each per model and T")
    grid.add_argument("--target", metavar="MSE", help="test MSE that counts as solved (0.01)")
    grid.add_argument("--max-steps", metavar="N", help="step budget per run")
    grid.add_argument("--max-seconds", metavar="S", help="training-seconds budget per run (checked at evaluations)")
    grid.add_argument("--eval-every", metavar="N", help="steps between evaluations of the held-out set")
    grid.add_argument("--batch", metavar="B", help="training batch size")
    grid.add_argument("--test-size", metavar="N", help="held-out sequences per T")


def overrides_from(args: argparse.Namespace) -> dict:
    """The command line's overrides of the runs and settings, parsed and checked (UsageError if bad)."""
    runs = {
        axis: (list if axis == "models" else flags.integers, partial(check_axis, axis), "integers")
        for axis in ("models", "seq_len", "seeds")
    }
    settings = {
        name: (kind, partial(check_setting, name), "an integer" if kind is int else "a number")
        for name, kind in SETTING_TYPES.items()
    }
    return flags.given(args, {**runs, **settings})


def output_path(args: argparse.Namespace, preset: str, device: torch.device) -> Path:
    if args.out:
        return flags.given_out(args.out, args.resume, paths.summary_path(Path(args.out)))
    if args.resume:
        runs = sorted(
            p
            for p in paths.RESULTS_DIR.glob(f"converge-{preset}-{device.type}-*.csv")
            if not p.name.endswith(".summary.csv")
        )
        if not runs:
            raise UsageError(f"--resume: no earlier converge {preset} run on {device.type} in results/; pass --out")
        return runs[-1]
    return paths.RESULTS_DIR / f"converge-{preset}-{device.type}-{env.utc_now():%Y%m%dT%H%M%SZ}.csv"


def print_list() -> None:
    rows = []
    for name in converge_presets():
        p = load_preset(name)
        rows.append([name, len(p.runs), p.description])
    print(tabulate(rows, ["preset", "runs", "description"]))
    print()
    models = [[s.name, s.optimizer.__name__, s.lr, s.grad_clip or "-", s.description] for s in MODELS.values()]
    print(tabulate(models, ["model", "optimizer", "lr", "grad clip", "description"]))


def print_runs(preset: Preset, keys: Iterable[RunKey]) -> None:
    print(", ".join(f"{k}={v}" for k, v in asdict(preset.settings).items()))
    print(tabulate([list(asdict(k).values()) for k in keys], ["model", "T", "seed"]))


def _write_report_and_plots(out: Path) -> None:
    # Both read only the files; a failure there must not cost the measurements already written.
    from suite.converge.plots import plot_converge
    from suite.converge.report import write_converge_report

    print(f"report: {write_converge_report(out)}")
    plots = plot_converge(out)
    print(f"plots: {', '.join(str(p) for p in plots)}")


def run(args: argparse.Namespace) -> int:
    device = flags.device_from(args.device)
    if args.list:
        print_list()
        return 0
    name = args.preset or default_preset(device.type)
    try:
        preset = load_preset(name, overrides_from(args))
    except PresetError as e:
        raise UsageError(str(e)) from None
    out = output_path(args, preset.name, device)
    if args.dry_run:  # with --resume: the runs still to do
        finished = finished_runs(out) if args.resume else set()
        print_runs(preset, [k for k in preset.runs if k not in finished])
        return 0
    started = time.perf_counter()
    try:
        run_converge(
            preset,
            out,
            device=device,
            resume=args.resume,
            progress=not args.no_progress,
            flush_denormals=not args.keep_denormals,
        )
    except KeyboardInterrupt:  # cli.main prints it: where the runs so far are, and how to continue
        raise KeyboardInterrupt(
            f"finished runs are in {out}; continue with `python run_bench.py converge --resume --out {out}`"
            " and the same flags"
        ) from None
    print(f"results: {out}, {paths.summary_path(out).name} ({time.perf_counter() - started:.0f} s)")
    _write_report_and_plots(out)
    return 0
