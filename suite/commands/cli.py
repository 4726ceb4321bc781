"""Command line of run_bench.py. Each command lives in its own module, which provides
`add_arguments(parser)` and `run(args) -> int`; this file only dispatches and turns expected
errors (bad input, unreadable files) into one-line messages instead of tracebacks."""

from __future__ import annotations

import argparse
import importlib
import sys

from suite.core.errors import UsageError

# command -> (module, one-line help). `run` is the default when no command is given.
COMMANDS = {
    "run": ("suite.commands.run", "run a preset sweep, then write results, report and plots (default)"),
    "report": ("suite.commands.report", "write the markdown speedup report of a results file"),
    "plot": ("suite.commands.plot", "draw the figures of a results file into plots/"),
    "converge": (
        "suite.commands.converge",
        "train to a target on the adding problem: time to solve, IndRNN vs baselines",
    ),
    "profile": ("suite.commands.profile", "profile one config's step: time per category, launches, trace, ncu command"),
    "compare": ("suite.commands.compare", "compare two results files; exit 1 on a real regression"),
    "history": (
        "suite.commands.history",
        "the runs of one preset in commit order: trends, and the changes between consecutive runs",
    ),
    "ab": (
        "suite.commands.ab",
        "two commits measured side by side, alternately, each with its own code; exit 1 on a real regression",
    ),
    "merge": ("suite.commands.merge", "join the shards of a sweep (run --shard K/N) into one results file"),
    "submit": (
        "suite.commands.submit",
        "run a preset's shards through submitit (Slurm or local), then merge and report",
    ),
    "kernel-report": (
        "suite.commands.kernel_report",
        "compile every kernel for sm_80/sm_90 and report or check its facts",
    ),
    "validate": (
        "suite.commands.validate",
        "on a GPU: tests, bandwidth, kernel targets, paper preset, report, in one bounded run",
    ),
}


HELP_FLAGS = ("-h", "--help")


def _run_options() -> str:
    """The options of `run`, for the top-level help: they work without typing `run`."""
    run_parser = argparse.ArgumentParser(prog="run_bench.py", add_help=False)
    importlib.import_module(COMMANDS["run"][0]).add_arguments(run_parser)
    options = run_parser.format_help().split("\n\n", 1)[1]  # without its usage line
    return "`run` is the default command; its options work without typing `run`:\n\n" + options


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to add its arguments, so one command's
    heavy imports (matplotlib, triton) never slow down or break another."""
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="IndRNN Triton benchmark suite. Without a command: `run` with the device's default preset.",
        epilog=_run_options() if command in HELP_FLAGS else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in HELP_FLAGS):
        argv.insert(0, "run")
    args = build_parser(argv[0]).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except UsageError as e:  # PresetError and ResultsError too: the user's input, one line
        print(f"run_bench.py {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: the reader left, not an error
        sys.stderr.close()  # nothing more can be said on a closed pipe
        return 0
    except KeyboardInterrupt as e:  # a command may say where its work was kept
        where = str(e) or "rows written so far are kept (--resume continues)"
        print(f"run_bench.py {args.command}: interrupted; {where}", file=sys.stderr)
        return 130
