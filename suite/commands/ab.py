"""The `ab` command: BASE_REF and HEAD_REF measured side by side, alternately, each with its own
code (suite.sweep.ab), then compare's verdict on the pair (suite.render.ab): its report, a figure
of the drift, and exit 1 when the gate --fail-on names fails. --resume continues a cut A/B."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from suite.commands import flags
from suite.core import env, paths
from suite.core.errors import UsageError
from suite.render.ab import build_ab, plot_drift, to_markdown_ab
from suite.render.compare import DEFAULT_THRESHOLD, FAIL_ON, METRICS, benchmark_json
from suite.sweep.ab import measure_ab, new_record, read_ab, save_ab
from suite.sweep.commits import resolve
from suite.sweep.presets import PRESETS, default_preset
from suite.sweep.providers import lineup

DEFAULT_ROUNDS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", nargs="?", metavar="BASE_REF", help="the commit to compare against (any git revision)")
    parser.add_argument("head", nargs="?", metavar="HEAD_REF", help="the commit of the change (default: HEAD)")
    parser.add_argument(
        "--preset", metavar="NAME", help=f"one of {', '.join(PRESETS)} (default: paper on a GPU, quick on a CPU)"
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="runs of each side, alternating (default: %(default)s)"
    )
    parser.add_argument(
        "--out-dir", metavar="DIR", help="where the A/B's files go (default: results/ab-<preset>-<device>-<UTC time>/)"
    )
    parser.add_argument("--resume", action="store_true", help="continue a cut A/B (--out-dir, default: the newest one)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="smallest relative change that counts, if also outside the noise (default: %(default)s)",
    )
    parser.add_argument("--metric", choices=METRICS, default="time", help="time (default) or speedup, as compare")
    parser.add_argument(
        "--fail-on", choices=FAIL_ON, default="regression", help="the gate, as compare (default: regression)"
    )
    flags.add_allow_mixing(parser)
    parser.add_argument(
        "--json-out", metavar="PATH", help="github-action-benchmark customSmallerIsBetter JSON, as compare"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _device_kind() -> str:
    return env.pick_device("auto").type


def _resumed(args: argparse.Namespace) -> tuple[Path, dict]:
    if args.out_dir:
        folder = Path(args.out_dir)
    else:
        folders = sorted(p.parent for p in paths.RESULTS_DIR.glob(f"ab-*/{paths.AB_RECORD}"))
        if not folders:
            raise UsageError("--resume: no earlier A/B in results/; pass --out-dir DIR")
        folder = folders[-1]
    record = read_ab(folder)
    for given, side in ((args.base, "base"), (args.head, "head")):
        if given is not None and resolve(given) != record[side]["commit"]:
            raise UsageError(f"cannot resume {folder}: its {side} is {record[side]['commit'][:12]}, not {given}")
    if args.preset is not None and args.preset != record["preset"]:
        raise UsageError(f"cannot resume {folder}: it measures preset {record['preset']}, not {args.preset}")
    print(f"resuming the A/B in {folder}", file=sys.stderr)
    return folder, record


def _started(args: argparse.Namespace) -> tuple[Path, dict]:
    if args.base is None:
        raise UsageError("ab needs BASE_REF: the commit to compare against")
    preset = args.preset or default_preset(_device_kind())
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {args.rounds}")
    refs = (args.base, args.head or "HEAD")
    base, head = resolve(refs[0]), resolve(refs[1])
    folder = Path(args.out_dir or paths.RESULTS_DIR / f"ab-{preset}-{_device_kind()}-{env.utc_now():%Y%m%dT%H%M%SZ}")
    if (folder / paths.AB_RECORD).exists():
        raise UsageError(f"{folder} already holds an A/B; pass --resume to continue it, or another --out-dir")
    settings = {
        "threshold": args.threshold,
        "metric": args.metric,
        "fail_on": args.fail_on,
        "allow": sorted(flags.allowed_mixing(args)),
    }
    record = new_record(base, head, refs, preset, args.rounds, settings, sys.argv)
    folder.mkdir(parents=True, exist_ok=True)
    save_ab(folder, record)
    return folder, record


def run(args: argparse.Namespace) -> int:
    folder, record = _resumed(args) if args.resume else _started(args)
    try:
        measure_ab(folder, record, progress=not args.no_progress, allow=set(record["settings"]["allow"]))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"the finished turns are kept in {folder}; continue with `python run_bench.py ab --resume --out-dir {folder}`"
        ) from None
    ab = build_ab(folder, lineup())
    report = folder / "ab.md"
    report.write_text(to_markdown_ab(ab))
    print(report.read_text())
    print(f"report: {report}")
    print(f"drift figure: {plot_drift(ab, paths.plots_dir(report))}")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(benchmark_json(ab.comparison), indent=2) + "\n")
    return 1 if ab.comparison.fails(record["settings"]["fail_on"]) else 0
