"""The `history` command: the runs of one preset and device in commit order (suite.render.history),
as a markdown report, trend figures and, with --json-out, github-action-benchmark JSON.

With --measure it first runs the preset at the commits named (suite.sweep.commits), each with its
own code, into the folder given; commits measured before are kept, and --resume continues a
measurement that was cut. Commit times that old files do not record are looked up in git here,
so that the renderer reads nothing but files and what it is handed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from suite.commands import flags
from suite.converge.files import is_converge_results
from suite.core import env
from suite.core.errors import UsageError
from suite.core.paths import HISTORY_RECORD, meta_path, plots_dir
from suite.core.store import read_meta
from suite.render.compare import DEFAULT_THRESHOLD, METRICS
from suite.render.history import benchmark_json, build_history, to_markdown
from suite.render.history_plots import plot_history
from suite.sweep.commits import commits_of, measure_commits
from suite.sweep.providers import lineup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="DIR | FILES",
        help="a folder of results files (each with its .meta.json), or results files",
    )
    parser.add_argument("--preset", metavar="NAME", help="only the runs of this preset; with --measure, the one to run")
    parser.add_argument(
        "--measure",
        nargs="+",
        metavar="REV",
        help="first run --preset at these commits into DIR, each with its own code "
        "(A..B: the first-parent commits after A up to B; commits measured before are kept)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="with --measure: continue the run of a commit that was cut"
    )
    parser.add_argument(
        "--out", metavar="PATH", help="markdown report (default: history-<preset>.md in DIR or beside the newest run)"
    )
    parser.add_argument(
        "--plots-dir", metavar="DIR", help="trend figures (default: <report stem>-plots/ beside the report)"
    )
    parser.add_argument(
        "--json-out",
        metavar="PATH",
        help="the newest run's speedups as github-action-benchmark customBiggerIsBetter JSON",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="smallest relative change flagged, if also outside the noise (default: %(default)s)",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="time",
        help="what a change is flagged on: config medians (time) or IndRNN-vs-baseline speedups (default: time)",
    )
    flags.add_allow_mixing(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _results_files(paths: list[str], preset: str | None) -> list[Path]:
    """The sweep results files of `paths` (folders: every CSV with its metadata beside it), of
    `preset` when given."""
    files = []
    for given in map(Path, paths):
        if given.is_dir():
            files += sorted(p for p in given.glob("*.csv") if meta_path(p).is_file() and not is_converge_results(p))
        elif given.is_file():
            files.append(given)
        else:
            raise UsageError(f"{given} is neither a results file nor a folder")
    if preset is not None:
        files = [p for p in files if read_meta(p).get("preset") == preset]
    if not files:
        raise UsageError(f"no results files{f' of preset {preset}' if preset else ''} in {' '.join(paths)}")
    return files


def _commit_times(files: list[Path]) -> dict[str, str]:
    """Commit -> committer date from git, for files whose metadata predates recording it."""
    times = {}
    for path in files:
        meta = read_meta(path)
        commit = meta.get("git_commit")
        if commit and not meta.get("git_commit_time") and commit not in times:
            when = env.commit_time(commit)
            if when:
                times[commit] = when
    return times


def _measure(args: argparse.Namespace) -> Path:
    if len(args.paths) != 1 or Path(args.paths[0]).is_file():
        raise UsageError("--measure writes into one folder: pass it as the only DIR")
    if args.preset is None:
        raise UsageError("--measure needs --preset: the preset to run at each commit")
    folder = Path(args.paths[0])
    commits = commits_of(args.measure)
    print(f"measuring preset {args.preset} at {len(commits)} commit(s) into {folder}", file=sys.stderr)
    try:
        record = measure_commits(
            commits, folder, args.preset, resume=args.resume, progress=not args.no_progress, argv=sys.argv
        )
    except KeyboardInterrupt:
        again = (
            f"python run_bench.py history {folder} --preset {args.preset} --measure {' '.join(args.measure)} --resume"
        )
        raise KeyboardInterrupt(f"the commits measured so far are in {folder}; continue with `{again}`") from None
    for entry in record["commits"]:
        if entry["commit"] in commits and entry["status"] == "failed":
            print(
                f"commit {entry['commit'][:12]} could not run the preset (exit {entry['exit_code']}): see {folder / entry['log']}"
            )
    return folder


def run(args: argparse.Namespace) -> int:
    if not args.paths:
        raise UsageError("history needs a folder of results files or the files themselves")
    if args.resume and not args.measure:
        raise UsageError("--resume continues a measurement: pass it with --measure")
    folder = _measure(args) if args.measure else None
    files = _results_files(args.paths, args.preset)
    if folder is None and len(args.paths) == 1 and Path(args.paths[0]).is_dir():
        folder = Path(args.paths[0])
    history = build_history(
        files,
        lineup(),
        commit_times=_commit_times(files),
        threshold=args.threshold,
        metric=args.metric,
        allow=flags.allowed_mixing(args),
        measured_record=folder / HISTORY_RECORD if folder else None,
    )
    newest = history.runs[-1]
    out = Path(args.out) if args.out else (folder or newest.res.path.parent) / f"history-{newest.field('preset')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(history))
    figures = plot_history(history, args.plots_dir or plots_dir(out))
    flagged = sum(len(step.flagged) for step in history.steps)
    print(f"history of {len(history.runs)} runs: {flagged} change(s) flagged between consecutive runs")
    print(f"report: {out}")
    print(f"plots: {len(figures.written)} figures")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(benchmark_json(history), indent=2) + "\n")
        print(f"benchmark JSON: {args.json_out}")
    return 0
