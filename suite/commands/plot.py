"""The `plot` command: the figures of a results file as PNGs, drawn by the renderer its files need:
a converge run's (suite.converge.plots) or a sweep's (suite.render.plots)."""

from __future__ import annotations

import argparse

from suite.converge.files import is_converge_results
from suite.converge.plots import plot_converge
from suite.core.paths import results_in
from suite.render.plots import plot_all
from suite.sweep.providers import lineup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", help="results CSV written by `run` (its .meta.json beside it), or a folder: its newest one"
    )
    parser.add_argument(
        "--out-dir",
        metavar="DIR",
        help="where to write the PNGs (default: plots/<stem>/ for a run in results/, else <stem>-plots/ beside it)",
    )


def run(args: argparse.Namespace) -> int:
    path = results_in(args.results)
    if is_converge_results(path):  # a converge run has figures of its own
        for written in plot_converge(path, args.out_dir):
            print(written)
        return 0
    plots = plot_all(path, lineup(), args.out_dir)
    for path in plots.written:
        print(path)
    for line in plots.skipped:
        print(f"not drawn: {line}")
    return 0
