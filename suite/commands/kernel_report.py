"""Kernel facts without a GPU: compile every Triton kernel for sm_80 and sm_90 in every dtype and
report what the generated code looks like; check it against a committed baseline.

The figures are deterministic for a given Triton (no timing, no noise), so CI can hold them to
a baseline strictly. A change fails the check when it makes the code slower-shaped:

- more spill bytes: LOCAL, or STACK, which is where this ptxas puts spills in a kernel with no
  calls (a forced spill shows up as STACK with LOCAL 0);
- narrower global loads or stores (e.g. 128-bit v4 down to 32-bit scalar);
- a large jump in any PTX instruction count: more than INSTRUCTION_GROWTH and by more than
  INSTRUCTION_SLACK instructions, so a branch or two more is not a failure.

Register, shared-memory and small count changes, new kernels and another Triton version are
notes. `--update` rewrites the baseline (commit it with the change that explains it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import triton
from tabulate import tabulate

from kernels.aot import DTYPES, KERNELS, PTX_KINDS, REPORT_CONFIG, KernelFacts, compile_facts
from kernels.sequential import PAPER_SIZE_CONFIGS, autotune_configs
from suite.core import paths
from suite.core.errors import UsageError

CCS = (80, 90)
DEFAULT_BASELINE = paths.RESULTS_DIR / "kernel_baseline.json"
INSTRUCTION_GROWTH = 0.25  # a kind whose count grows by more than this fraction fails...
INSTRUCTION_SLACK = 4  # ...when it also grows by more than this many instructions
REGISTER_NOTE = 0.25  # register changes beyond this fraction are worth a note (occupancy)


def report_jobs() -> list[dict]:
    """Every kernel x dtype x target, in the report's order (REPORT_CONFIG each)."""
    return [dict(name=n, dtype=d, cc=cc) for n in KERNELS for d in DTYPES for cc in CCS]


def collect() -> list[KernelFacts]:
    return compile_facts(report_jobs())


def chosen_configs() -> dict:
    """The autotune space of each kernel and the configs meant for the paper's size."""
    space = {
        kernel: [{**c.kwargs, "num_warps": c.num_warps} for c in autotune_configs(single=False, backward=backward)]
        for kernel, backward in (("recurrence_fwd", False), ("recurrence_bwd", True))
    }
    paper = {"recurrence_fwd": PAPER_SIZE_CONFIGS["fwd"], "recurrence_bwd": PAPER_SIZE_CONFIGS["bwd"]}
    return {"autotune_space": space, "paper_size_configs": paper}


def make_report(facts: list[KernelFacts]) -> dict:
    """The JSON record of a set of facts: what made them, the configs the kernels are tuned over,
    and one entry per compilation."""
    return {
        "triton": triton.__version__,
        "config": REPORT_CONFIG,
        **chosen_configs(),
        "kernels": [dataclasses.asdict(f) for f in facts],
    }


def _target(entry: dict) -> str:
    return f"{entry['kernel']} {entry['dtype']} sm_{entry['cc']}"


def _by_target(report: dict) -> dict[tuple, dict]:
    return {(e["kernel"], e["dtype"], int(e["cc"])): e for e in report["kernels"]}


@dataclass(frozen=True)
class CheckResult:
    failures: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


def _entry_check(base: dict, new: dict) -> tuple[list[str], list[str]]:
    where = _target(new)
    failures, notes = [], []
    for figure, label in (("spill_bytes", "spill (LOCAL) bytes"), ("stack_bytes", "stack (spill) bytes")):
        if new[figure] > base[figure]:
            failures.append(f"{where}: {label} {base[figure]} -> {new[figure]}: registers spill to memory")
    for figure, label in (("load_width_bits", "global load"), ("store_width_bits", "global store")):
        if new[figure] < base[figure]:
            failures.append(f"{where}: widest {label} {base[figure]} -> {new[figure]} bits: narrower memory access")
    for kind in PTX_KINDS:
        b, n = base["ptx_counts"].get(kind, 0), new["ptx_counts"].get(kind, 0)
        if n - b > INSTRUCTION_SLACK and n > b * (1 + INSTRUCTION_GROWTH):
            growth = f"+{n / b - 1:.0%}" if b else "new"
            failures.append(f"{where}: PTX {kind} count {b} -> {n} ({growth}): large jump in instructions")
    b, n = base["registers"], new["registers"]
    if abs(n - b) > REGISTER_NOTE * b:
        notes.append(f"{where}: registers {b} -> {n}")
    if new["shared_bytes"] != base["shared_bytes"]:
        notes.append(f"{where}: shared bytes {base['shared_bytes']} -> {new['shared_bytes']}")
    return failures, notes


def check(baseline: dict, current: dict) -> CheckResult:
    """Hold `current` to `baseline` (both as made by `make_report`)."""
    failures, notes = [], []
    if baseline.get("triton") != current.get("triton"):
        notes.append(
            f"baseline made with triton {baseline.get('triton')}, this is {current.get('triton')}: "
            "figures may move; only the rules decide"
        )
    if baseline.get("config") != current.get("config"):
        notes.append(f"report config changed: {baseline.get('config')} -> {current.get('config')}")
    for field in ("autotune_space", "paper_size_configs"):
        if baseline.get(field) != current.get(field):
            notes.append(f"{field.replace('_', ' ')} changed since the baseline")
    base, new = _by_target(baseline), _by_target(current)
    for key in sorted(base):
        if key not in new:
            failures.append(f"{_target(base[key])}: in the baseline but not compiled now (update the baseline?)")
            continue
        f, n = _entry_check(base[key], new[key])
        failures += f
        notes += n
    notes += [f"{_target(new[key])}: not in the baseline" for key in sorted(new.keys() - base.keys())]
    return CheckResult(tuple(failures), tuple(notes))


def to_markdown(report: dict) -> str:
    """Two tables: resources and access widths, then PTX instruction counts by kind."""
    config = ", ".join(f"{k}={v}" for k, v in report["config"].items())
    resources = [
        [
            e["kernel"],
            e["dtype"],
            f"sm_{e['cc']}",
            e["registers"],
            e["spill_bytes"],
            e["stack_bytes"],
            e["shared_bytes"],
            e["load_width_bits"],
            e["store_width_bits"],
        ]
        for e in report["kernels"]
    ]
    counts = [
        [e["kernel"], e["dtype"], f"sm_{e['cc']}", *(e["ptx_counts"].get(k, 0) for k in PTX_KINDS)]
        for e in report["kernels"]
    ]
    return "\n".join(
        [
            f"## Kernel facts (triton {report['triton']}, {config})",
            "",
            tabulate(
                resources,
                headers=[
                    "kernel",
                    "dtype",
                    "target",
                    "registers",
                    "spill B",
                    "stack B",
                    "shared B",
                    "load bits",
                    "store bits",
                ],
                tablefmt="github",
            ),
            "",
            "PTX instructions by kind (static counts):",
            "",
            tabulate(counts, headers=["kernel", "dtype", "target", *PTX_KINDS], tablefmt="github"),
            "",
            _configs_markdown(report),
        ]
    )


def _configs_markdown(report: dict) -> str:
    """The autotune space of each kernel, the paper-size configs marked."""
    rows = []
    for kernel, space in report.get("autotune_space", {}).items():
        paper = report.get("paper_size_configs", {}).get(kernel)
        for c in space:
            steps_ahead = (c["STAGES"] - 1) * c["CHUNK"]
            mark = "paper size" if c == paper else ""
            rows.append([kernel, c["BLOCK"], c["num_warps"], c["CHUNK"], c["STAGES"], steps_ahead, mark])
    headers = ["kernel", "BLOCK", "warps", "CHUNK", "STAGES", "steps loaded ahead", "meant for"]
    return "\n".join(["Autotune space:", "", tabulate(rows, headers=headers, tablefmt="github")])


def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no kernel baseline {path}; make one with `run_bench.py kernel-report --update {path}`")
    try:
        baseline = json.loads(path.read_text())
        _by_target(baseline)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"{path} is not a kernel baseline: {e}") from e
    return baseline


def write_report(path: str | Path, report: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json-out", metavar="PATH", help="write the facts as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--check",
        metavar="BASELINE",
        nargs="?",
        const=DEFAULT_BASELINE,
        help="exit 1 if the kernels got slower-shaped than BASELINE (default: results/kernel_baseline.json)",
    )
    which.add_argument(
        "--update",
        metavar="BASELINE",
        nargs="?",
        const=DEFAULT_BASELINE,
        help="write the facts as the new BASELINE (default: results/kernel_baseline.json)",
    )


def run(args: argparse.Namespace) -> int:
    baseline = read_baseline(args.check) if args.check else None  # a bad path fails before compiling
    report = make_report(collect())
    print(to_markdown(report))
    if args.json_out:
        write_report(args.json_out, report)
    if args.update:
        write_report(args.update, report)
        print(f"\nwrote the kernel baseline {args.update}")
    if baseline is None:
        return 0
    result = check(baseline, report)
    lines = [f"- note: {n}" for n in result.notes] + [f"- FAIL: {f}" for f in result.failures]
    print(f"\n## Check against {args.check}\n", *lines, sep="\n")
    print("PASS: no kernel got slower-shaped." if result.ok else f"FAIL: {len(result.failures)} figure(s) got worse.")
    return 0 if result.ok else 1
