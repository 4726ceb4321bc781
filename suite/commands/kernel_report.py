"""Kernel facts without a GPU: compile every Triton kernel for sm_80 and sm_90 in every dtype, at the
config its work declaration meant for each size, report what the generated code looks like and
what the static speed model (kernels/speed.py) makes of its hot loop, and of each schedule (the
sequential walk, the chunked scan's three passes) as a whole; check it against a baseline.

The figures are deterministic for a given Triton (no timing, no noise), so CI can hold them to
a baseline strictly. A change fails the check when it makes the code slower-shaped:

- more spill bytes: LOCAL, or STACK, which is where this ptxas puts spills in a kernel with no
  calls (a forced spill shows up as STACK with LOCAL 0);
- narrower global loads or stores (e.g. 128-bit v4 down to 32-bit scalar);
- a large jump in any PTX instruction count: more than INSTRUCTION_GROWTH and by more than
  INSTRUCTION_SLACK instructions, so a branch or two more is not a failure;
- a modeled figure more than MODEL_WORSENING worse: ns per step up, or % of copy bandwidth down, of
  a kernel or of a schedule.

Each Triton release has its own ptxas, so the baseline holds one report per Triton version and a
run is held to its own version's (to the newest one, with a note, when its version has none).
Register, shared-memory, small count and hot-loop changes, new kernels and a missing version are
notes. `--update` writes the running version's report into the baseline, keeping the others
(commit it with the change that explains it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import triton
from tabulate import tabulate

from kernels.aot import (
    DTYPES,
    KERNELS,
    PTX_KINDS,
    SCHEDULES,
    WORK,
    KernelFacts,
    compile_facts,
    schedule_facts,
    takes_data,
)
from kernels.recurrence import scan_pays_on_gpu
from kernels.sequential import autotune_configs
from kernels.speed import GPUS, SIZES, assumptions
from suite.core import paths
from suite.core.errors import UsageError

CCS = (80, 90)
DEFAULT_BASELINE = paths.RESULTS_DIR / "kernel_baseline.json"
INSTRUCTION_GROWTH = 0.25  # a kind whose count grows by more than this fraction fails...
INSTRUCTION_SLACK = 4  # ...when it also grows by more than this many instructions
REGISTER_NOTE = 0.25  # register changes beyond this fraction are worth a note (occupancy)
MODEL_WORSENING = 0.10  # a modeled figure this much worse than the baseline's fails
# The modeled times held to the baseline as (figure, label), a kernel's and a schedule's (% of copy
# bandwidth beside them), and the hot-loop figures whose changes are noted.
KERNEL_TIMES = (("ns_per_step", "ns/step"), ("compute_ns_per_step", "compute ns/step"))
SCHEDULE_TIMES = (("ns_per_step", "ns/step"), ("l2_ns_per_step", "ns/step with L2 re-reads"))
LOOP_NOTES = ("instructions", "issue_cycles", "drain_distance")


def report_jobs() -> list[dict]:
    """Every kernel x dtype x target x size its work declares, in the report's order. A kernel that
    takes no data in the input dtype (the scan's carry: fp32 maps and states) compiles to the same
    code in every dtype: it is compiled in fp32 alone."""
    return [
        dict(name=n, dtype=d, cc=cc, size=size)
        for n in KERNELS
        for d in (DTYPES if takes_data(n) else DTYPES[:1])
        for cc in CCS
        for size in WORK[n].configs
    ]


def collect() -> list[KernelFacts]:
    return compile_facts(report_jobs())


def chosen_configs() -> dict:
    """The autotune space of each walk kernel and the configs meant for each size."""
    space = {
        kernel: [{**c.kwargs, "num_warps": c.num_warps} for c in autotune_configs(single=False, backward=backward)]
        for kernel, backward in (("recurrence_fwd", False), ("recurrence_bwd", True))
    }
    return {"autotune_space": space, "size_configs": {name: work.configs for name, work in WORK.items()}}


def make_report(facts: list[KernelFacts]) -> dict:
    """The JSON record of a set of facts: what made them, the configs the kernels are tuned over,
    the speed model's assumptions, one entry per compilation and one per schedule, GPU and size."""
    return {
        "triton": triton.__version__,
        **chosen_configs(),
        "assumptions": assumptions(),
        "kernels": [dataclasses.asdict(f) for f in facts],
        "schedules": schedule_facts(facts),
    }


def _target(entry: dict) -> str:
    size = f" {entry['size']} size" if entry.get("size") else ""
    return f"{entry['kernel']} {entry['dtype']} sm_{entry['cc']}{size}"


def _by_target(report: dict) -> dict[tuple, dict]:
    return {(e["kernel"], e["dtype"], int(e["cc"]), e.get("size") or ""): e for e in report["kernels"]}


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
    if base.get("config") != new.get("config"):
        notes.append(f"{where}: config {base.get('config')} -> {new.get('config')}")
    f, n = _model_check(where, base, new)
    return failures + f, notes + n


def _model_check(where: str, base: dict, new: dict) -> tuple[list[str], list[str]]:
    """Modeled figures more than MODEL_WORSENING worse fail; hot-loop changes are notes."""
    failures, notes = [], []
    new_by_gpu = {m["gpu"]: m for m in new.get("modeled", [])}
    for old in base.get("modeled", []):
        now = new_by_gpu.get(old["gpu"])
        if now is None:
            failures.append(f"{where}: no modeled figures for {old['gpu']} any more")
            continue
        failures += _slower(f"{where}: modeled {old['gpu']}", old, now, KERNEL_TIMES)
    old_loop, new_loop = base.get("loop") or {}, new.get("loop") or {}
    for figure in LOOP_NOTES:
        if old_loop.get(figure) != new_loop.get(figure):
            notes.append(
                f"{where}: hot loop {figure.replace('_', ' ')} {old_loop.get(figure)} -> {new_loop.get(figure)}"
            )
    return failures, notes


def _slower(prefix: str, old: dict, now: dict, times: tuple) -> list[str]:
    """A failure for each modeled time of `times` ((figure, label) pairs) more than MODEL_WORSENING
    higher than before, and for a % of copy bandwidth that much lower."""
    failures = [
        f"{prefix} {label} {old[figure]:.1f} -> {now[figure]:.1f}: slower"
        for figure, label in times
        if now[figure] > old[figure] * (1 + MODEL_WORSENING)
    ]
    if now["copy_percent"] < old["copy_percent"] * (1 - MODEL_WORSENING):
        failures.append(f"{prefix} % of copy bandwidth {old['copy_percent']:.0f} -> {now['copy_percent']:.0f}: slower")
    return failures


def check(baseline: dict, current: dict) -> CheckResult:
    """Hold `current` to `baseline` (both as made by `make_report`)."""
    failures, notes = [], []
    if baseline.get("triton") != current.get("triton"):
        notes.append(
            f"baseline made with triton {baseline.get('triton')}, this is {current.get('triton')}: "
            "figures may move; only the rules decide"
        )
    if baseline.get("assumptions") != current.get("assumptions"):
        notes.append("the speed model's assumptions changed since the baseline")
    for field in ("autotune_space", "size_configs"):
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
    f, n = _schedules_check(baseline.get("schedules", []), current.get("schedules", []))
    return CheckResult(tuple(failures + f), tuple(notes + n))


def _schedule_key(row: dict) -> tuple:
    return row["direction"], row["schedule"], row["dtype"], int(row["cc"]), row["size"], row["gpu"]


def _schedule_name(row: dict) -> str:
    return f"{row['schedule']} {row['direction']} {row['dtype']} sm_{row['cc']} {row['size']} size {row['gpu']}"


def _schedules_check(base_rows: list[dict], new_rows: list[dict]) -> tuple[list[str], list[str]]:
    """A schedule's modeled ns per step (from DRAM, or with re-reads from L2) more than
    MODEL_WORSENING higher, or its % of copy bandwidth that much lower, fails."""
    failures = []
    new = {_schedule_key(r): r for r in new_rows}
    for old in base_rows:
        now, where = new.get(_schedule_key(old)), _schedule_name(old)
        if now is None:
            failures.append(f"{where}: in the baseline but not modelled now (update the baseline?)")
            continue
        failures += _slower(f"{where}: modeled", old, now, SCHEDULE_TIMES)
    added = new.keys() - {_schedule_key(r) for r in base_rows}
    return failures, [f"{_schedule_name(new[key])}: not in the baseline" for key in sorted(added)]


def _row_head(e: dict) -> list:
    return [e["kernel"], e["dtype"], f"sm_{e['cc']}", e.get("size") or "-"]


def to_markdown(report: dict) -> str:
    """Tables: resources and access widths, PTX instruction counts by kind, the hot loop and the
    speed model's figures with its assumptions, and the autotune space."""
    head = ["kernel", "dtype", "target", "size"]
    resources = [
        [
            *_row_head(e),
            ", ".join(f"{k}={v}" for k, v in e["config"].items()),
            e["registers"],
            e["spill_bytes"],
            e["stack_bytes"],
            e["shared_bytes"],
            e["load_width_bits"],
            e["store_width_bits"],
        ]
        for e in report["kernels"]
    ]
    counts = [[*_row_head(e), *(e["ptx_counts"].get(k, 0) for k in PTX_KINDS)] for e in report["kernels"]]
    resource_headers = ["config", "registers", "spill B", "stack B", "shared B", "load bits", "store bits"]
    return "\n".join(
        [
            f"## Kernel facts (triton {report['triton']})",
            "",
            tabulate(resources, headers=[*head, *resource_headers], tablefmt="github"),
            "",
            "PTX instructions by kind (static counts):",
            "",
            tabulate(counts, headers=[*head, *PTX_KINDS], tablefmt="github"),
            "",
            _model_markdown(report),
            "",
            schedules_markdown(report),
            "",
            _configs_markdown(report),
        ]
    )


def _model_markdown(report: dict) -> str:
    """The hot loop of each compilation per unit of its work, and the modeled time at its size."""
    rows = []
    for e in report["kernels"]:
        loop, units = e["loop"], e["loop"]["units_per_iteration"]
        elements = units * loop["columns_per_thread"]
        sbs = " ".join(f"{sb}:{n}" for sb, n in loop["loads_by_scoreboard"].items())
        mix = loop["mix"]
        figures = [
            f"{m['gpu']} {m['ns_per_step']:.1f} ns/step ({m['bound']}; compute {m['compute_ns_per_step']:.1f}), "
            f"{m['copy_percent']:.0f}% copy"
            for m in e.get("modeled", [])
        ]
        rows.append(
            [
                *_row_head(e),
                loop["unit"] if loop["closed"] else f"{loop['unit']} (open pass)",
                f"{loop['instructions'] / units:.1f} / {loop['instructions'] / elements:.1f}",
                f"{loop['issue_cycles'] / units:.1f} / {loop['issue_cycles'] / elements:.1f}",
                f"{mix['int'] / units:.1f} / {mix['float'] / units:.1f} / {mix['move'] / units:.1f}",
                f"{loop['drain_distance']} ({loop['drained_by']})" if loop["drain_distance"] is not None else "-",
                sbs or "-",
                e["registers"],
                "; ".join(figures) or "-",
            ]
        )
    headers = [
        "unit",
        "instr per unit / per element",
        "issue cycles per unit / per element",
        "int/float/move per unit",
        "D",
        "loads by scoreboard",
        "regs",
    ]
    lines = [
        "Hot loop (the innermost loop with the most issue cycles, or a kernel without loops as one open pass",
        "over all its code; per unit of the work its kernel declares, and per element: a unit of one of the",
        "columns each thread holds; D: fewest issue cycles from a load to the wait that drains it, and that",
        "instruction) and the static speed model at the size each config is meant for:",
        "",
        tabulate(rows, headers=["kernel", "dtype", "target", "size", *headers, "modeled"], tablefmt="github"),
        "",
        "Assumptions of the model (estimates, not measurements):",
        "",
        *(f"- {line}" for line in report.get("assumptions", [])),
    ]
    return "\n".join(lines)


# The recurrence's targets, until a GPU measures it, per direction and size: (figure, bound). ns/step
# is at most its bound; % copy (of the bytes the recurrence must move, at the copy bandwidth) and x walk
# (the scan's speed over the walk's) at least.
TARGETS = {
    ("forward", "paper"): [("ns/step", 15.0)],
    ("backward", "paper"): [("ns/step", 30.0)],
    ("forward", "large"): [("% copy", 85.0)],
    ("backward", "large"): [("% copy", 75.0)],
    ("forward", "long"): [("% copy", 60.0), ("x walk", 20.0)],
    ("backward", "long"): [("% copy", 60.0), ("x walk", 20.0)],
}


def schedule_figures(report: dict, dtype: str = "fp32") -> list[dict]:
    """Each schedule's figures in `dtype` per GPU, direction and size (in the order of GPUS, SCHEDULES
    and SIZES), beside its targets: ns/step, % copy and (for the scan) x walk as (from DRAM, with L2
    re-reads) pairs; per target "met", "missed", or "met with L2 re-reads" where only the L2 figure
    meets it; and whether the auto rule (kernels.recurrence.scan_pays) picks it on that GPU."""
    rows = {_schedule_key(r): r for r in report.get("schedules", []) if r["dtype"] == dtype}
    out = []
    for gpu in GPUS:
        for direction, schedules in SCHEDULES.items():
            for size, shape in SIZES.items():
                walk = rows.get((direction, "walk", dtype, gpu.cc, size, gpu.name))
                picked = "scan" if scan_pays_on_gpu(shape.T, shape.B * shape.H, gpu.sms) else "walk"
                for schedule in schedules:
                    r = rows.get((direction, schedule, dtype, gpu.cc, size, gpu.name))
                    if r is None:
                        continue
                    figures = {
                        "ns/step": (r["ns_per_step"], r["l2_ns_per_step"]),
                        "% copy": (r["copy_percent"], r["l2_copy_percent"]),
                    }
                    if schedule != "walk" and walk:
                        figures["x walk"] = (
                            walk["ns_per_step"] / r["ns_per_step"],
                            walk["l2_ns_per_step"] / r["l2_ns_per_step"],
                        )
                    verdicts = [
                        (figure, bound, _verdict(figure, bound, figures[figure]))
                        for figure, bound in TARGETS.get((direction, size), [])
                        if figure in figures
                    ]
                    out.append({**r, "figures": figures, "targets": verdicts, "auto": picked == schedule})
    return out


def _verdict(figure: str, bound: float, values: tuple[float, float]) -> str:
    dram, l2 = (v <= bound if figure == "ns/step" else v >= bound for v in values)
    return "met" if dram and l2 else ("met with L2 re-reads" if l2 else "missed")


def auto_rule_disagreements(figures: list[dict]) -> list[str]:
    """Where the auto rule picks a schedule that the model has slower, from DRAM or with L2 re-reads."""
    lines = []
    picked = [r for r in figures if r["auto"]]
    for r in picked:
        for other in figures:
            same = [other[k] == r[k] for k in ("gpu", "direction", "size")]
            if other is r or not all(same):
                continue
            faster = [o < m for o, m in zip(other["figures"]["ns/step"], r["figures"]["ns/step"], strict=True)]
            if any(faster):
                where = (
                    "from DRAM and with L2 re-reads"
                    if all(faster)
                    else ("from DRAM" if faster[0] else "with L2 re-reads")
                )
                (ns, l2), (other_ns, other_l2) = r["figures"]["ns/step"], other["figures"]["ns/step"]
                lines.append(
                    f"{r['gpu']} {r['size']} size {r['direction']}: picks the {r['schedule']} ({_pair((ns, l2))} ns/step), "
                    f"the {other['schedule']} is faster {where} ({_pair((other_ns, other_l2))})"
                )
    return lines


def _pair(values: tuple[float, float], digits: int = 1) -> str:
    return f"{values[0]:.{digits}f} / {values[1]:.{digits}f}"


def schedules_markdown(report: dict) -> str:
    """The schedules side by side per GPU, direction and size (fp32), with the targets and the auto
    rule's pick, and the places where the rule picks the schedule the model has slower."""
    figures = schedule_figures(report)
    rows = [
        [
            r["gpu"],
            r["direction"],
            r["size"],
            r["schedule"],
            r["launches"],
            _pair(r["figures"]["ns/step"]),
            _pair(r["figures"]["% copy"], 0),
            _pair(r["figures"]["x walk"]) if "x walk" in r["figures"] else "-",
            "; ".join(f"{f} {'<=' if f == 'ns/step' else '>='} {b:g}: {v}" for f, b, v in r["targets"]) or "-",
            "picked" if r["auto"] else "",
        ]
        for r in figures
    ]
    headers = ["GPU", "direction", "size", "schedule", "launches", "ns/step (DRAM / L2)", "% copy (DRAM / L2)",
               "x walk (DRAM / L2)", "targets", "auto rule"]  # fmt: skip
    disagreements = auto_rule_disagreements(figures)
    lines = [
        "Schedules (fp32; the JSON and the check hold every dtype): the launches of each in sequence, one load",
        "latency of fill each; from DRAM, and with the bytes an earlier pass touched read from L2 as far as it",
        "holds them (an upper bound on reuse). % copy: a copy of what the recurrence must move (read its inputs,",
        "write its output once) over the modeled time. The auto rule (kernels.recurrence.scan_pays) at each",
        "GPU's SM count:",
        "",
        tabulate(rows, headers=headers, tablefmt="github"),
        "",
        *(f"- the auto rule at {line}" for line in disagreements),
        *([] if disagreements else ["- the auto rule picks the schedule the model has faster at every size and GPU."]),
    ]
    return "\n".join(lines)


def _configs_markdown(report: dict) -> str:
    """The autotune space of each kernel, the configs meant for a size marked."""
    rows = []
    for kernel, space in report.get("autotune_space", {}).items():
        sizes = report.get("size_configs", {}).get(kernel, {})
        for c in space:
            meant = ", ".join(size for size, config in sizes.items() if config == c)
            rows.append([kernel, c["BLOCK"], c["num_warps"], c["CHUNK"], meant])
    headers = ["kernel", "BLOCK", "warps", "CHUNK (steps loaded ahead)", "meant for"]
    return "\n".join(["Autotune space:", "", tabulate(rows, headers=headers, tablefmt="github")])


def read_baseline(path: str | Path) -> dict:
    """A baseline file: {"by_triton": {version: report}}."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no kernel baseline {path}; make one with `run_bench.py kernel-report --update {path}`")
    try:
        baseline = json.loads(path.read_text())
        for report in baseline["by_triton"].values():
            _by_target(report)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"{path} is not a kernel baseline: {e}") from e
    return baseline


def report_for(baseline: dict, version: str) -> tuple[dict, str | None]:
    """The baseline's report for a Triton version, or the newest one with a note saying so."""
    reports = baseline["by_triton"]
    if version in reports:
        return reports[version], None
    newest = max(reports, key=lambda v: tuple(int(p) if p.isdigit() else 0 for p in v.split(".")))
    return reports[newest], f"the baseline has no report for triton {version}: held to triton {newest}'s"


def write_report(path: str | Path, report: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def baseline_part(report: dict) -> dict:
    """What `check` reads of a report. The rest (instruction mixes, loads by scoreboard, bounds, waves)
    the report prints, and nothing holds it to a baseline."""
    modeled = ("gpu", *(figure for figure, _ in KERNEL_TIMES), "copy_percent")
    schedule = ("direction", "schedule", "dtype", "cc", "size", "gpu", *(f for f, _ in SCHEDULE_TIMES), "copy_percent")

    def entry(e: dict) -> dict:
        return {
            **{k: v for k, v in e.items() if k not in ("loop", "modeled")},
            "loop": {figure: e["loop"][figure] for figure in LOOP_NOTES},
            "modeled": [{k: m[k] for k in modeled} for m in e["modeled"]],
        }

    return {
        **{k: report[k] for k in ("triton", "assumptions", "autotune_space", "size_configs")},
        "kernels": [entry(e) for e in report["kernels"]],
        "schedules": [{k: r[k] for k in schedule} for r in report["schedules"]],
    }


def update_baseline(path: str | Path, report: dict) -> None:
    """Write what `check` reads of `report` as its Triton version's entry of the baseline at `path`,
    keeping the others."""
    path = Path(path)
    baseline = read_baseline(path) if path.is_file() else {"by_triton": {}}
    baseline["by_triton"][report["triton"]] = baseline_part(report)
    write_report(path, baseline)


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
        help="write the facts as this Triton version's part of BASELINE (default: results/kernel_baseline.json)",
    )


def run(args: argparse.Namespace) -> int:
    baseline = read_baseline(args.check) if args.check else None  # a bad path fails before compiling
    report = make_report(collect())
    print(to_markdown(report))
    if args.json_out:
        write_report(args.json_out, report)
    if args.update:
        update_baseline(args.update, report)
        print(f"\nwrote triton {report['triton']}'s part of the kernel baseline {args.update}")
    if baseline is None:
        return 0
    held_to, version_note = report_for(baseline, report["triton"])
    result = check(held_to, report)
    notes = [version_note, *result.notes] if version_note else list(result.notes)
    lines = [f"- note: {n}" for n in notes] + [f"- FAIL: {f}" for f in result.failures]
    print(f"\n## Check against {args.check}\n", *lines, sep="\n")
    print("PASS: no kernel got slower-shaped." if result.ok else f"FAIL: {len(result.failures)} figure(s) got worse.")
    return 0 if result.ok else 1
