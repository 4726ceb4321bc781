"""The `compare` command: two results files compared (suite.render.compare), the markdown table
printed (and written with --markdown-out), github-action-benchmark JSON with --json-out; exit 1
when the gate --fail-on names fails."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from suite.render.compare import DEFAULT_THRESHOLD, FAIL_ON, METRICS, benchmark_json, compare_runs, to_markdown
from suite.sweep.providers import lineup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="BASE", help="results CSV to compare against")
    parser.add_argument("new", metavar="NEW", help="results CSV of the change")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="smallest relative change that counts, if also outside the noise (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="regression",
        help="exit 1 on: any config slower for real (regression, default); the geometric mean of all "
        "slower for real (overall: for noisy machines); never (none). A config that broke fails either gate",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="time",
        help="time: medians (same device); speedup: IndRNN-vs-baseline ratios within each run (default: time)",
    )
    parser.add_argument("--allow-device-mismatch", action="store_true", help="compare runs from different devices")
    parser.add_argument("--json-out", metavar="PATH", help="write github-action-benchmark customSmallerIsBetter JSON")
    parser.add_argument("--markdown-out", metavar="PATH", help="also write the markdown table to PATH")


def run(args: argparse.Namespace) -> int:
    cmp = compare_runs(
        args.base,
        args.new,
        lineup(),
        threshold=args.threshold,
        metric=args.metric,
        allow_device_mismatch=args.allow_device_mismatch,
    )
    text = to_markdown(cmp, args.fail_on)
    print(text)
    for path, content in (
        (args.markdown_out, text + "\n"),
        (args.json_out, json.dumps(benchmark_json(cmp), indent=2) + "\n"),
    ):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
    return 1 if cmp.fails(args.fail_on) else 0
