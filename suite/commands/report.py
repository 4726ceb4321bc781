"""The `report` command: the markdown report of a results file, written by the renderer its files
need: a converge run's (suite.converge.report), a host-time run's (suite.render.host_time) or a
sweep's (suite.render.report)."""

from __future__ import annotations

import argparse

from suite.converge.files import is_converge_results
from suite.converge.report import write_converge_report
from suite.core.host_rows import is_host_time_results
from suite.core.paths import results_in
from suite.render.host_time import write_host_time_report
from suite.render.report import write_report
from suite.sweep.providers import lineup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", help="results CSV written by `run` (its .meta.json beside it), or a folder: its newest one"
    )
    parser.add_argument("--out", metavar="PATH", help="markdown file to write (default: beside the results, .md)")


def run(args: argparse.Namespace) -> int:
    path = results_in(args.results)
    # A converge run (curves + summary) and a host-time run have their own reports; a sweep's results have this one.
    if is_converge_results(path):
        print(write_converge_report(path, args.out))
    elif is_host_time_results(path):
        print(write_host_time_report(path, args.out))
    else:
        print(write_report(path, lineup(), args.out))
    return 0
