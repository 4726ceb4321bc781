"""The `host-time` command: the host time of one layer's forward + backward with the kernel
launches stubbed, each schedule against its minimal autograd.Function (suite.sweep.host_time_run),
then its report from the files alone (suite.render.host_time). --resume continues a cut run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.commands import flags
from suite.core import env, paths
from suite.core.errors import PresetError, UsageError
from suite.render.host_time import write_host_time_report
from suite.sweep.host_time_run import host_time_presets, load_plan, measure_host_time

DEFAULT_PRESET = "standard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        metavar="NAME",
        help=f"one of {', '.join(host_time_presets())} (default: %(default)s)",
    )
    parser.add_argument("--calls", type=int, metavar="N", help="calls of a step timed together (default: the preset's)")
    parser.add_argument("--rounds", type=int, metavar="N", help="interleaved rounds (default: the preset's)")
    parser.add_argument(
        "--out", metavar="PATH", help="rows CSV (default: results/host-time-<preset>-cpu-<UTC time>.csv)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue --out (default: the newest host-time run of the preset)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def output_path(args: argparse.Namespace) -> Path:
    if args.out:
        return flags.given_out(args.out, args.resume)
    if args.resume:
        runs = sorted(paths.RESULTS_DIR.glob(f"host-time-{args.preset}-cpu-*.csv"))
        if not runs:
            raise UsageError(f"--resume: no earlier host-time {args.preset} run in results/; pass --out")
        return runs[-1]
    return paths.RESULTS_DIR / f"host-time-{args.preset}-cpu-{env.utc_now():%Y%m%dT%H%M%SZ}.csv"


def run(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.preset, args.calls, args.rounds)
    except PresetError as e:
        raise UsageError(str(e)) from None
    out = output_path(args)
    try:
        measure_host_time(plan, out, resume=args.resume, progress=not args.no_progress, argv=sys.argv)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"the rows so far are in {out}; continue with `python run_bench.py host-time --resume --out {out}`"
            " and the same flags"
        ) from None
    report = write_host_time_report(out)
    print(report.read_text())
    print(f"results: {out}\nreport: {report}")
    return 0
