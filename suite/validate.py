"""`run_bench.py validate`: turn any CUDA machine into committed evidence in one bounded run.

Order: the GPU tests, the copy bandwidth, the recurrence kernel at the targets' sizes, the
`paper` preset, then the report and the plots, all into one folder named after the device
and the date. The plan is made up front from coarse per-config estimates; when it would
exceed the budget the lowest-priority work is dropped first, and the plan says which. A
failing step is recorded and the run goes on: only a crash of the machine stops it.

Without CUDA there is nothing to validate: it runs the CPU-side checks it can (interpreter
tests, the kernel compile report), says so in one line and exits 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from suite.errors import UsageError
from suite.presets import load_preset
from suite.schema import SweepConfig

ROOT = Path(__file__).resolve().parents[1]

# The kernel targets of the recurrence (issue: Triton IndRNN kernels): sizes and thresholds.
BIG = (1024, 256, 2048)  # T, B, H: bandwidth target
PAPER = (1024, 32, 128)  # T, B, H: the paper's size, latency target
TARGET_PCT = {"fwd": 85.0, "bwd": 75.0}  # % of the measured copy bandwidth at BIG, fp32
TARGET_NS_PER_STEP = 100.0  # forward, at PAPER

GPU_TESTS = ["tests/test_gpu.py", "tests/test_recurrence.py", "tests/test_layers.py"]
TESTS_TIMEOUT_S = 300
CPU_CHECKS = [
    ("interpreter tests", [sys.executable, "-m", "pytest", "-q", "tests/test_recurrence.py", "tests/test_aot.py"]),
    ("kernel compile report", [sys.executable, "run_bench.py", "kernel-report"]),
]


@dataclass(frozen=True)
class PlanItem:
    """One unit of work: a fixed step (configs empty) or a group of sweep configs.

    priority 0 is never dropped; among the rest the highest number goes first."""

    name: str
    priority: int
    estimate_s: float
    configs: tuple[SweepConfig, ...] = ()


def estimate_config_s(cfg: SweepConfig) -> float:
    """A coarse planning guess of one config's wall time on one GPU, not a measurement: model
    build, correctness gate and do_bench (~0.2 s of timed work) plus what each provider adds.
    The Triton providers autotune each new shape (33 configs of the two kernels, ~0.125 s of
    do_bench each; compiling them is counted once, in COMPILE_SPACE_S); the eager torch loop
    launches a few kernels per step, per layer, per timed call."""
    seconds = 3.0
    if cfg.provider == "indrnn_triton":
        seconds += 8.0
    if cfg.provider == "indrnn_torch":
        seconds += 2e-3 * cfg.seq_len * cfg.depth
    return seconds


# Compiling the whole autotune space of both kernels once per dtype, before any shape is tuned.
COMPILE_SPACE_S = 45.0


def build_plan() -> list[PlanItem]:
    """Everything validate would do with an unlimited budget, in execution order."""
    recurrence = [
        SweepConfig(
            provider="indrnn_triton",
            mode="recurrence",
            seq_len=t,
            depth=1,
            batch=b,
            hidden=h,
            dtype=dtype,
            input_size=h,
        )
        for (t, b, h) in (BIG, PAPER)
        for dtype in ("float32", "bfloat16")
    ]
    paper = load_preset("paper")
    figure = tuple(c for c in paper if c.batch == 32 and c.provider != "indrnn_torch")
    eager = tuple(c for c in paper if c.batch == 32 and c.provider == "indrnn_torch")
    batch_sweep = tuple(c for c in paper if c.batch != 32)

    def group(name: str, priority: int, configs, first_compile: bool = False) -> PlanItem:
        configs = tuple(configs)
        seconds = sum(estimate_config_s(c) for c in configs) + (COMPILE_SPACE_S if first_compile else 0.0)
        return PlanItem(name, priority, seconds, configs)

    return [
        PlanItem("GPU tests", 0, 150.0),
        group("recurrence fp32 (kernel targets)", 0, [c for c in recurrence if c.dtype == "float32"], True),
        group("recurrence bf16", 2, [c for c in recurrence if c.dtype == "bfloat16"], True),
        group("paper preset: Fig. 2 (batch 32)", 1, figure),
        group("paper preset: batch sweep", 3, batch_sweep),
        group("paper preset: eager torch loop", 4, eager),
        PlanItem("report and plots", 0, 30.0),
    ]


def fit_to_budget(items: list[PlanItem], budget_s: float) -> tuple[list[PlanItem], list[PlanItem]]:
    """Drop items until the estimates fit the budget: highest priority number first, and within
    a priority the most expensive first. Priority 0 is never dropped. Returns (kept, dropped)."""
    kept = list(items)
    dropped: list[PlanItem] = []
    droppable = sorted((i for i in items if i.priority > 0), key=lambda i: (-i.priority, -i.estimate_s))
    for item in droppable:
        if sum(i.estimate_s for i in kept) <= budget_s:
            break
        kept.remove(item)
        dropped.append(item)
    return kept, dropped


def print_plan(kept: list[PlanItem], dropped: list[PlanItem], budget_s: float) -> None:
    rows = [[i.name, i.priority, len(i.configs) or "-", f"{i.estimate_s:.0f}"] for i in kept]
    print(tabulate(rows, ["step", "priority", "configs", "estimate s"], tablefmt="github"))
    total = sum(i.estimate_s for i in kept)
    print(f"estimated {total / 60:.1f} min of a {budget_s / 60:.1f} min budget")
    for item in dropped:
        print(f"dropped to fit the budget: {item.name} (priority {item.priority}, ~{item.estimate_s:.0f} s)")
    if total > budget_s:
        print("warning: the steps that are never dropped alone exceed the budget")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def output_folder(device_name: str, day: dt.date, root: Path = ROOT / "results") -> Path:
    """results/<device>-<date>/: everything of one validation, committable as it is."""
    return root / f"{slug(device_name)}-{day.isoformat()}"


def parse_pytest_counts(output: str) -> dict[str, int]:
    """passed/failed/skipped/error counts from pytest's closing line."""
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output):
        counts["error" if word.startswith("error") else word] += int(number)
    return counts


def run_tests(folder: Path) -> dict[str, int]:
    """The GPU tests, output kept in the folder."""
    # One kernel config instead of autotuning every shape the tests touch (minutes on a fresh
    # GPU); the autotuned configs are checked later by the correctness gate of every timed config.
    env = {**os.environ, "INDRNN_AUTOTUNE": "0"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TESTS_TIMEOUT_S)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:  # its captured output is bytes, whatever `text` says
        partial = b"".join(part or b"" for part in (e.stdout, e.stderr)).decode(errors="replace")
        output, code = f"{partial}\ntimed out after {TESTS_TIMEOUT_S} s", -1
    (folder / "tests.txt").write_text(output)
    counts = parse_pytest_counts(output)
    counts["exit"] = code
    return counts


def kernel_target_rows(df) -> list[list]:
    """One line per recurrence measurement with the target it is held to, if any."""
    rows = []
    rec = df[(df["mode"] == "recurrence") & (df["provider"] == "indrnn_triton")]
    for r in rec.itertuples():
        size = (int(r.seq_len), int(r.batch), int(r.hidden))
        target, met = "", ""
        if r.status == "ok" and r.dtype == "float32":
            if size == BIG:
                target = f">= {TARGET_PCT[r.phase]:g}% of copy"
                met = "met" if r.pct_copy_bw >= TARGET_PCT[r.phase] else "missed"
            elif size == PAPER and r.phase == "fwd":
                target = f"<= {TARGET_NS_PER_STEP:g} ns/step"
                met = "met" if r.ns_per_step <= TARGET_NS_PER_STEP else "missed"
        rows.append(
            [
                f"T={size[0]} B={size[1]} H={size[2]}",
                r.dtype,
                r.phase,
                r.status if r.status != "ok" else f"{r.gbytes_per_s:.0f}",
                "" if r.status != "ok" else f"{r.pct_copy_bw:.1f}",
                "" if r.status != "ok" else f"{r.ns_per_step:.1f}",
                target,
                met,
            ]
        )
    return rows


def summary_markdown(folder: Path, csv_path: Path, tests: dict | None, dropped: list[PlanItem], minutes: float) -> str:
    """The final summary: tests, kernel targets, the Fig. 2 ratios beside the paper's, the verdict."""
    from suite import analysis
    from suite.report import fig2_table
    from suite.store import read_meta, read_results

    meta = read_meta(csv_path)
    df = read_results(csv_path)
    lines = [
        f"# Validation on {meta['device']}",
        "",
        f"{meta['timestamp']}, commit {meta['git_commit'][:12]}{' (dirty)' if meta['git_dirty'] else ''}, "
        f"torch {meta['torch']}, triton {meta['triton']}, CUDA {meta.get('cuda')}, driver {meta.get('driver')}; "
        f"{minutes:.1f} min. Copy bandwidth measured in this run: {meta['copy_gbytes_per_s']:.0f} GB/s.",
        "",
        "## Tests",
        "",
    ]
    if tests is None:
        lines.append("Not run.")
    else:
        lines.append(
            f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped, {tests['error']} errors "
            f"(exit {tests['exit']}); output in [tests.txt](tests.txt)."
        )
    lines += ["", "## Recurrence kernel", ""]
    headers = ["size", "dtype", "pass", "GB/s", "% of copy", "ns/step", "target", ""]
    lines.append(tabulate(kernel_target_rows(df), headers, tablefmt="github"))
    fig = analysis.summarise(csv_path).fig2
    lines += ["", "## Deep IndRNN Fig. 2: training step, hidden 128", "", fig2_table(fig)]
    lines += ["", f"Verdict on '>10x faster than LSTM': **{fig.verdict}**. {fig.summary}"]
    if dropped:
        lines += ["", "Dropped to fit the budget: " + ", ".join(i.name for i in dropped) + "."]
    lines += ["", f"Full report: [{csv_path.stem}.md]({csv_path.stem}.md); plots in [plots/](plots/)."]
    return "\n".join(lines) + "\n"


def run_cpu_checks() -> int:
    """What can be checked without a GPU; returns how many checks failed."""
    failed = 0
    for name, argv in CPU_CHECKS:
        done = subprocess.run(argv, cwd=ROOT)
        print(f"{name}: {'passed' if done.returncode == 0 else 'FAILED'}")
        failed += done.returncode != 0
    return failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-min", type=float, default=10.0, help="wall-time budget in minutes (default 10)")
    parser.add_argument("--out-dir", metavar="DIR", help="folder for everything (default: results/<device>-<date>/)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")


def run(args: argparse.Namespace) -> int:
    if args.budget_min <= 0:
        raise UsageError(f"--budget-min must be positive, got {args.budget_min}")
    budget_s = args.budget_min * 60
    kept, dropped = fit_to_budget(build_plan(), budget_s)
    if args.dry_run:
        print_plan(kept, dropped, budget_s)
        return 0
    if not torch.cuda.is_available():
        print("validate: no CUDA device here, so nothing to validate on a GPU; running the CPU-side checks instead")
        run_cpu_checks()
        return 1
    print_plan(kept, dropped, budget_s)
    return execute(kept, dropped, budget_s, Path(args.out_dir) if args.out_dir else None)


def execute(kept: list[PlanItem], dropped: list[PlanItem], budget_s: float, folder: Path | None) -> int:
    from suite.bench import run_sweep
    from suite.plots import plot_all
    from suite.report import write_report

    start = time.monotonic()
    device_name = torch.cuda.get_device_name(0)
    folder = folder or output_folder(device_name, dt.datetime.now(dt.timezone.utc).date())
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "run.csv"
    print(f"writing into {folder}")
    tests = None
    late = list(dropped)
    failures: list[str] = []  # a failing step is recorded and the run goes on
    for item in kept:
        spent = time.monotonic() - start
        if item.priority > 0 and spent + item.estimate_s > budget_s:
            print(f"skipped, the budget is spent ({spent:.0f} s): {item.name}")
            late.append(item)
            continue
        print(f"== {item.name}")
        try:
            if item.name == "GPU tests":
                tests = run_tests(folder)
                print(f"tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped")
            elif item.configs:
                # resume: a rerun on the same day continues the folder instead of repeating rows
                run_sweep(item.configs, csv_path, preset="validate", resume=True, argv=sys.argv)
            elif csv_path.exists():
                write_report(csv_path)
                plot_all(csv_path, folder / "plots")
        except Exception as error:  # noqa: BLE001 - validate stops at nothing but a crash
            failures.append(f"{item.name}: {type(error).__name__}: {error}")
            print(f"validate: step failed, going on: {failures[-1]}")
    if not csv_path.exists():
        print("validate: no measurement was made")
        return 1
    minutes = (time.monotonic() - start) / 60
    try:
        summary = summary_markdown(folder, csv_path, tests, late, minutes)
    except Exception as error:  # noqa: BLE001
        failures.append(f"summary: {type(error).__name__}: {error}")
        summary = f"# Validation\n\nThe summary could not be built; the results are in {csv_path.name}.\n"
    if failures:
        summary += "\n## Failed steps\n\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    (folder / "summary.md").write_text(summary)
    print(summary)
    return 0 if tests is not None and tests["exit"] == 0 and not failures else 1
