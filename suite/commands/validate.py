"""`run_bench.py validate`: turn any CUDA machine into committed evidence in one bounded run.

A GPU is lent rarely and briefly, often on a stock image where nothing can be installed, and
the run may be cut off hard at the end of its slot. So validate

- checks first what every step needs (preflight: CUDA and free memory, imports, a C compiler
  for Triton's launcher, disk space, supported torch/triton), one line per failure;
- plans at most PLAN_FRACTION of the budget, start-up included, from coarse per-step
  estimates, dropping the lowest-priority work first and saying which;
- runs, in order: the GPU tests, the recurrence kernel at the targets' sizes, the `paper`
  preset (eager and CUDA-graph rows), then the report and the plots, into a folder of its own
  (`results/<device>-<UTC time>/`); a failing step is recorded and the run goes on;
- rewrites `summary.md` before and after every step (marked incomplete, naming the step it
  stopped in, until the end) and flushes every console line, so a cut at any moment leaves a
  readable summary; each step's estimated and actual seconds are in it, to calibrate the next.

`--rehearse` runs the same orchestration on a CPU with stand-ins for the GPU work (a small test
file, tiny configs on the torch backend), so it can be tested, killed and inspected without a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tabulate import tabulate

from suite.core import env, paths
from suite.core.errors import UsageError
from suite.core.schema import SweepConfig
from suite.sweep.cost import CostModel
from suite.sweep.presets import load_preset
from suite.sweep.providers import lineup

ROOT = paths.REPO_ROOT

# The kernel targets of the recurrence: sizes and thresholds (fp32, L2 flushed between calls).
BIG = (1024, 256, 2048)  # T, B, H: bandwidth target
PAPER = (1024, 32, 128)  # T, B, H: the paper's size, latency target
TARGET_PCT = {"fwd": 85.0, "bwd": 75.0}  # % of the copy bandwidth measured in the same run, at BIG
TARGET_NS_PER_STEP = {"fwd": 15.0, "bwd": 30.0}  # at PAPER

SUPPORTED = {"torch": (2, 11), "triton": (3, 6)}  # the oldest versions the suite is known to run on
PLAN_FRACTION = 0.85  # of the budget; the rest absorbs estimates that were too low
STARTUP_S = 30.0  # process start, imports and CUDA initialisation, before the first step
MIN_FREE_GPU_GIB = 4.0
MIN_FREE_DISK_GIB = 2.0  # results, plots, and Triton's kernel cache

GPU_TESTS = ["tests/test_gpu.py", "tests/test_recurrence.py", "tests/test_layers.py"]
REHEARSAL_TESTS = ["tests/test_constraint.py"]
TESTS_TIMEOUT_S = 240
CPU_CHECKS = [
    (
        "interpreter tests",
        [sys.executable, "-m", "pytest", "-q", "--slow", "tests/test_recurrence.py", "tests/test_aot.py"],
    ),
    ("kernel compile report", [sys.executable, "run_bench.py", "kernel-report"]),
]


def say(text: str) -> None:
    """Every console line goes out at once: a run cut off hard keeps its log up to that line."""
    print(text, flush=True)


# ---------------------------------------------------------------------------- preflight


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fatal: bool = True  # a failed fatal check stops the run before any step


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text.split("+")[0])[:2])


def preflight(folder: Path, rehearse: bool = False) -> list[Check]:
    """What every step needs, checked before any of them runs."""
    checks = []
    if rehearse:
        checks.append(Check("CUDA device", True, "rehearsal on the CPU: no GPU needed"))
    elif not torch.cuda.is_available():
        checks.append(Check("CUDA device", False, "no CUDA device is visible to torch"))
    else:
        free, total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name(0)
        enough = free / 2**30 >= MIN_FREE_GPU_GIB
        detail = f"{name}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free"
        checks.append(Check("CUDA device", enough, detail + ("" if enough else f" (needs {MIN_FREE_GPU_GIB:g})")))
    missing = [
        m for m in ("triton", "pandas", "matplotlib", "tabulate", "pytest") if importlib.util.find_spec(m) is None
    ]
    checks.append(Check("imports", not missing, "missing: " + ", ".join(missing) if missing else "all present"))
    compilers = [c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)]
    checks.append(
        Check(
            "C compiler",
            bool(compilers) or rehearse,
            f"{compilers[0]} (Triton builds its launcher with it)"
            if compilers
            else "none of $CC, cc, gcc, clang found: Triton cannot build its kernel launcher",
        )
    )
    free_disk = shutil.disk_usage(folder if folder.exists() else folder.parent).free / 2**30
    checks.append(
        Check("disk", free_disk >= MIN_FREE_DISK_GIB, f"{free_disk:.1f} GiB free (needs {MIN_FREE_DISK_GIB:g})")
    )
    import triton

    for package, version in (("torch", torch.__version__), ("triton", triton.__version__)):
        oldest = SUPPORTED[package]
        ok = _version_tuple(version) >= oldest
        detail = f"{version}" + ("" if ok else f": older than the oldest supported {oldest[0]}.{oldest[1]}")
        checks.append(Check(package, ok, detail, fatal=False))  # may still work: the run is evidence
    return checks


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PlanItem:
    """One unit of work: a fixed step (configs empty) or a group of sweep configs.

    priority 0 is never dropped; among the rest the highest number goes first."""

    name: str
    priority: int
    estimate_s: float
    configs: tuple[SweepConfig, ...] = ()


# Compiling the whole autotune space of both kernels once per dtype, before any shape is tuned.
COMPILE_SPACE_S = 45.0


def _recurrence(t: int, b: int, h: int, dtype: str) -> SweepConfig:
    return SweepConfig(
        provider="indrnn_triton", mode="recurrence", seq_len=t, depth=1, batch=b, hidden=h, dtype=dtype, input_size=h
    )


def build_plan() -> list[PlanItem]:
    """Everything validate would do with an unlimited budget, in execution order."""
    recurrence = [_recurrence(*size, dtype) for size in (BIG, PAPER) for dtype in ("float32", "bfloat16")]
    paper = load_preset("paper")
    eager_fig = tuple(c for c in paper if c.batch == 32 and c.provider != "indrnn_torch" and c.timing == "auto")
    graph_fig = tuple(c for c in paper if c.batch == 32 and c.timing == "cuda_graph")
    eager_loop = tuple(c for c in paper if c.batch == 32 and c.provider == "indrnn_torch")
    batch_sweep = tuple(c for c in paper if c.batch != 32)
    costs = CostModel.from_results("cuda")

    def group(name: str, priority: int, configs, first_compile: bool = False) -> PlanItem:
        configs = tuple(configs)
        seconds = costs.total(configs) + (COMPILE_SPACE_S if first_compile else 0.0)
        return PlanItem(name, priority, seconds, configs)

    return [
        PlanItem("GPU tests", 0, 120.0),
        group("recurrence fp32 (kernel targets)", 0, [c for c in recurrence if c.dtype == "float32"], True),
        group("paper preset: Fig. 2 (batch 32)", 0, eager_fig),
        group("paper preset: Fig. 2 in CUDA graphs", 1, graph_fig),
        group("recurrence bf16", 2, [c for c in recurrence if c.dtype == "bfloat16"], True),
        group("paper preset: batch sweep", 3, batch_sweep),
        group("paper preset: eager torch loop", 4, eager_loop),
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


def plan_for(budget_s: float) -> tuple[list[PlanItem], list[PlanItem], float]:
    """The plan for a wall-time budget: steps fitted to PLAN_FRACTION of it after start-up.
    Returns (kept, dropped, seconds the steps may take)."""
    steps_s = PLAN_FRACTION * budget_s - STARTUP_S
    kept, dropped = fit_to_budget(build_plan(), steps_s)
    return kept, dropped, steps_s


def print_plan(kept: list[PlanItem], dropped: list[PlanItem], budget_s: float) -> None:
    rows = [[i.name, i.priority, len(i.configs) or "-", f"{i.estimate_s:.0f}"] for i in kept]
    say(tabulate(rows, ["step", "priority", "configs", "estimate s"], tablefmt="github"))
    total = STARTUP_S + sum(i.estimate_s for i in kept)
    say(
        f"estimated {total / 60:.1f} min with {STARTUP_S:.0f} s of start-up, planned within "
        f"{PLAN_FRACTION:.0%} of the {budget_s / 60:.1f} min budget"
    )
    for item in dropped:
        say(f"dropped to fit the budget: {item.name} (priority {item.priority}, ~{item.estimate_s:.0f} s)")
    if total > PLAN_FRACTION * budget_s:
        say("warning: the steps that are never dropped alone exceed the planned share of the budget")


def rehearsal_config(cfg: SweepConfig) -> SweepConfig:
    """A CPU stand-in for a GPU config: the torch backend at a tiny size, same mode and shape of grid."""
    provider = "indrnn_torch" if cfg.provider == "indrnn_triton" else cfg.provider
    small = dict(seq_len=min(cfg.seq_len, 16), batch=min(cfg.batch, 2), hidden=min(cfg.hidden, 8))
    input_size = small["hidden"] if cfg.mode == "recurrence" else min(cfg.input_size, 8)
    return replace(cfg, provider=provider, input_size=input_size, **small)


def rehearsal_plan(items: list[PlanItem]) -> list[PlanItem]:
    """The same steps with CPU stand-ins (duplicates dropped: two GPU configs can shrink to one)."""
    return [replace(i, configs=tuple(dict.fromkeys(rehearsal_config(c) for c in i.configs))) for i in items]


# ---------------------------------------------------------------------------- the steps


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def output_folder(device_name: str, now, root: Path | None = None) -> Path:
    """results/<device>-<UTC time>/: everything of one validation, committable as it is."""
    return (paths.RESULTS_DIR if root is None else root) / f"{slug(device_name)}-{now:%Y%m%dT%H%M%SZ}"


def parse_pytest_counts(output: str) -> dict[str, int]:
    """passed/failed/skipped/error counts from pytest's closing line."""
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output):
        counts["error" if word.startswith("error") else word] += int(number)
    return counts


def run_tests(folder: Path, files: list[str] = GPU_TESTS) -> dict[str, int]:
    """The GPU tests, their output kept in the folder as it comes."""
    # One kernel config instead of autotuning every shape the tests touch (minutes on a fresh
    # GPU); the autotuned configs are checked later by the correctness gate of every timed config.
    child_env = {**os.environ, "INDRNN_AUTOTUNE": "0"}
    # --slow: the deep pipelines and long runs too, which only the interpreter makes slow.
    argv = [sys.executable, "-m", "pytest", "-q", "--slow", "-p", "no:cacheprovider", *files]
    with open(folder / "tests.txt", "w") as log:
        try:
            done = subprocess.run(
                argv, cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT, timeout=TESTS_TIMEOUT_S
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            log.write(f"\ntimed out after {TESTS_TIMEOUT_S} s\n")
            code = -1
    counts = parse_pytest_counts((folder / "tests.txt").read_text())
    counts["exit"] = code
    return counts


def kernel_target_rows(df) -> list[list]:
    """One line per recurrence measurement of the Triton kernel with the target it is held to."""
    rows = []
    rec = df[(df["mode"] == "recurrence") & (df["provider"] == "indrnn_triton")]
    for r in rec.itertuples():
        size = (int(r.seq_len), int(r.batch), int(r.hidden))
        target, met = "", ""
        if r.status == "ok" and r.dtype == "float32" and r.timing != "cuda_graph":
            if size == BIG:
                target = f">= {TARGET_PCT[r.phase]:g}% of copy"
                met = "met" if r.pct_copy_bw >= TARGET_PCT[r.phase] else "missed"
            elif size == PAPER:
                target = f"<= {TARGET_NS_PER_STEP[r.phase]:g} ns/step"
                met = "met" if r.ns_per_step <= TARGET_NS_PER_STEP[r.phase] else "missed"
        ok = r.status == "ok"
        rows.append(
            [
                f"T={size[0]} B={size[1]} H={size[2]}",
                r.dtype,
                r.phase,
                f"{r.gbytes_per_s:.0f}" if ok else r.status,
                f"{r.pct_copy_bw:.1f}" if ok and r.pct_copy_bw == r.pct_copy_bw else "",
                f"{r.ns_per_step:.1f}" if ok else "",
                target,
                met,
            ]
        )
    return rows


@dataclass
class StepRecord:
    name: str
    priority: int
    estimate_s: float
    status: str = "planned"  # planned | running | done | failed | skipped (budget) | dropped (plan)
    actual_s: float | None = None
    detail: str = ""


@dataclass
class Validation:
    """The state of one validation, written to summary.md (and state.json) after every change."""

    folder: Path
    budget_s: float
    steps: list[StepRecord]
    started: float = field(default_factory=lambda: time.monotonic())  # looked up at call time (tests fake it)
    checks: list[Check] = field(default_factory=list)
    tests: dict | None = None
    finished: bool = False

    @property
    def csv_path(self) -> Path:
        return self.folder / "run.csv"

    def current(self) -> StepRecord | None:
        return next((s for s in self.steps if s.status == "running"), None)


def _sections_from_results(v: Validation) -> list[str]:
    """The kernel targets and Fig. 2 from run.csv, each part on its own so one broken part
    (a file cut mid-row, say) does not cost the others."""
    from suite.core.store import read_results
    from suite.render import analysis
    from suite.render.report import fig2_table

    lines: list[str] = []
    try:
        df = read_results(v.csv_path)
        headers = ["size", "dtype", "pass", "GB/s", "% of copy", "ns/step", "target", ""]
        lines += ["## Recurrence kernel", "", tabulate(kernel_target_rows(df), headers, tablefmt="github"), ""]
    except Exception as error:  # noqa: BLE001 - the summary must be written whatever the file holds
        lines += ["## Recurrence kernel", "", f"Could not be read: {type(error).__name__}: {error}", ""]
    try:
        summary = analysis.summarise(analysis.load(v.csv_path, lineup()))
        lines += ["## Deep IndRNN Fig. 2: training step, hidden 128", "", fig2_table(summary.fig2), ""]
        lines += [f"Verdict on '>10x faster than LSTM': **{summary.fig2.verdict}**. {summary.fig2.summary}", ""]
        if summary.fig2_graph is not None:
            graph = summary.fig2_graph
            lines += ["### Captured in CUDA graphs", "", fig2_table(graph), ""]
            lines += [f"Verdict (CUDA graph): **{graph.verdict}**. {graph.summary}", ""]
    except Exception as error:  # noqa: BLE001
        lines += ["## Deep IndRNN Fig. 2", "", f"Could not be built: {type(error).__name__}: {error}", ""]
    return lines


def summary_markdown(v: Validation) -> str:
    """The summary as it stands: complete at the end, marked incomplete before."""
    minutes = (time.monotonic() - v.started) / 60
    meta = {}
    if v.csv_path.with_name("run.meta.json").exists():
        meta = json.loads(v.csv_path.with_name("run.meta.json").read_text())
    device = meta.get("device") or (torch.cuda.get_device_name(0) if torch.cuda.is_available() else env.cpu_name())
    lines = [f"# Validation on {device}", ""]
    if not v.finished:
        running = v.current()
        where = f"during step '{running.name}'" if running else "between steps"
        lines += [
            f"**Incomplete**: this summary was written {where}, {minutes:.1f} min in; the run did not finish.",
            "",
        ]
    if meta:
        lines += [
            f"{meta['timestamp']}, commit {meta['git_commit'][:12]}{' (dirty)' if meta['git_dirty'] else ''}, "
            f"torch {meta['torch']}, triton {meta['triton']}, CUDA {meta.get('cuda')}, driver {meta.get('driver')}; "
            f"{minutes:.1f} min of a {v.budget_s / 60:.0f} min budget. "
            f"Copy bandwidth measured in this run: {meta['copy_gbytes_per_s']:.0f} GB/s.",
            "",
        ]
    if v.checks:
        lines += ["## Preflight", ""]
        lines += [f"- {c.name}: {'ok' if c.ok else 'FAILED'}, {c.detail}" for c in v.checks] + [""]
    rows = [
        [
            s.name,
            s.priority,
            f"{s.estimate_s:.0f}",
            "" if s.actual_s is None else f"{s.actual_s:.0f}",
            s.status,
            s.detail,
        ]
        for s in v.steps
    ]
    lines += ["## Steps", "", "Estimated and actual seconds of each step, to calibrate the next run's plan.", ""]
    lines += [tabulate(rows, ["step", "priority", "estimate s", "actual s", "status", "detail"], tablefmt="github"), ""]
    lines += ["## Tests", ""]
    if v.tests is None:
        lines += ["Not run (yet).", ""]
    else:
        t = v.tests
        lines += [
            f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped, {t['error']} errors "
            f"(exit {t['exit']}); output in [tests.txt](tests.txt).",
            "",
        ]
    if v.csv_path.exists():
        lines += _sections_from_results(v)
        lines += ["Full report: [run.md](run.md); plots in [plots/](plots/); every row in [run.csv](run.csv).", ""]
    return "\n".join(lines)


def write_summary(v: Validation) -> None:
    """summary.md and state.json, each replaced whole (never half written)."""
    for name, text in (
        ("summary.md", summary_markdown(v)),
        ("state.json", json.dumps([dataclasses.asdict(s) for s in v.steps], indent=2) + "\n"),
    ):
        tmp = v.folder / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, v.folder / name)


def execute(
    kept: list[PlanItem],
    dropped: list[PlanItem],
    budget_s: float,
    folder: Path,
    *,
    rehearse: bool = False,
    retry_failed: bool = False,
    checks: list[Check] | None = None,
) -> int:
    """Run the plan into `folder`; 0 when the tests passed and no step failed."""
    from suite.render.plots import plot_all
    from suite.render.report import write_report
    from suite.sweep.sweep import run_sweep

    folder.mkdir(parents=True, exist_ok=True)
    steps = [StepRecord(i.name, i.priority, i.estimate_s) for i in kept]
    steps += [
        StepRecord(i.name, i.priority, i.estimate_s, status="dropped", detail="did not fit the plan") for i in dropped
    ]
    v = Validation(folder, budget_s, steps, checks=list(checks or []))
    sweep = dict(device="cpu", warmup=0, repeats=2) if rehearse else {}
    say(f"writing into {folder}")
    write_summary(v)
    for item, step in zip(kept, steps, strict=False):
        spent = time.monotonic() - v.started + STARTUP_S
        if item.priority > 0 and spent + item.estimate_s > budget_s * PLAN_FRACTION:
            step.status, step.detail = "skipped", f"budget spent ({spent:.0f} s)"
            say(f"skipped, the budget is spent ({spent:.0f} s): {item.name}")
            write_summary(v)
            continue
        step.status = "running"
        write_summary(v)  # before the step says it started: a cut from here on names it
        say(f"== {item.name} (estimate {item.estimate_s:.0f} s)")
        begun = time.monotonic()
        try:
            if item.name == "GPU tests":
                v.tests = run_tests(folder, REHEARSAL_TESTS if rehearse else GPU_TESTS)
                t = v.tests
                step.detail = f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
                step.status = "done" if t["exit"] == 0 else "failed"
            elif item.configs:
                # One file for the whole validation: later steps continue it (same device, commit).
                run_sweep(
                    item.configs,
                    v.csv_path,
                    preset="validate",
                    resume=True,
                    retry_failed=retry_failed,
                    argv=sys.argv,
                    **sweep,
                )
                step.status = "done"
            else:
                if v.csv_path.exists():
                    write_report(v.csv_path, lineup())
                    plot_all(v.csv_path, lineup(), folder / "plots")
                step.status = "done"
        except Exception as error:  # noqa: BLE001 - validate stops at nothing but a crash
            step.status, step.detail = "failed", f"{type(error).__name__}: {error}"[:300]
        step.actual_s = time.monotonic() - begun
        say(f"   {step.status} in {step.actual_s:.0f} s" + (f": {step.detail}" if step.detail else ""))
        write_summary(v)
    v.finished = True
    write_summary(v)
    say((folder / "summary.md").read_text())
    if not v.csv_path.exists():
        say("validate: no measurement was made")
        return 1
    failed = [s.name for s in steps if s.status == "failed"]
    if failed:
        say("validate: failed steps: " + ", ".join(failed))
    return 0 if v.tests is not None and v.tests["exit"] == 0 and not failed else 1


def run_cpu_checks() -> int:
    """What can be checked without a GPU; returns how many checks failed."""
    failed = 0
    for name, argv in CPU_CHECKS:
        done = subprocess.run(argv, cwd=ROOT)
        say(f"{name}: {'passed' if done.returncode == 0 else 'FAILED'}")
        failed += done.returncode != 0
    return failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-min", type=float, default=10.0, help="wall-time budget in minutes (default 10)")
    parser.add_argument(
        "--out-dir", metavar="DIR", help="folder for everything (default: results/<device>-<UTC time>/)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument(
        "--retry-failed", action="store_true", help="with --out-dir of an earlier run: measure its failed rows again"
    )
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="run the whole orchestration on the CPU with stand-ins for the GPU work (default folder: a temp dir)",
    )


def run(args: argparse.Namespace) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a hard cut keeps every line printed so far
        sys.stdout.reconfigure(line_buffering=True)
    if args.budget_min <= 0:
        raise UsageError(f"--budget-min must be positive, got {args.budget_min}")
    budget_s = args.budget_min * 60
    kept, dropped, _ = plan_for(budget_s)
    if args.dry_run:
        print_plan(kept, dropped, budget_s)
        return 0
    if not args.rehearse and not torch.cuda.is_available():
        say("validate: no CUDA device here, so nothing to validate on a GPU; running the CPU-side checks instead")
        failed = run_cpu_checks()
        say(
            f"validate: exit 1 because there is no CUDA device to validate on ({failed} of {len(CPU_CHECKS)} "
            "CPU-side checks failed); `validate --rehearse` runs the orchestration on this CPU"
        )
        return 1
    if args.rehearse:
        kept, dropped = rehearsal_plan(kept), rehearsal_plan(dropped)
        default = Path(tempfile.mkdtemp(prefix="validate-rehearsal-"))
    else:
        default = output_folder(torch.cuda.get_device_name(0), env.utc_now())
    folder = Path(args.out_dir) if args.out_dir else default
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out-dir {folder} is a file, not a folder")
    checks = preflight(folder, args.rehearse)
    for c in checks:
        say(f"preflight {c.name}: {'ok' if c.ok else 'FAILED'}, {c.detail}")
    fatal = [c for c in checks if c.fatal and not c.ok]
    if fatal:
        say("validate: stopping before any step: " + "; ".join(f"{c.name}: {c.detail}" for c in fatal))
        return 1
    print_plan(kept, dropped, budget_s)
    return execute(
        kept, dropped, budget_s, folder, rehearse=args.rehearse, retry_failed=args.retry_failed, checks=checks
    )
