"""kernel-report: the check fails when a compiled kernel gets slower-shaped (a spill, narrower
loads, a jump in instructions, a modeled figure more than 10% worse, of a kernel or of a schedule)
and passes small changes. The report's kernels come from the session's `report_facts` (conftest);
four deliberately worse variants are compiled once, in one batch, for the whole file."""

import copy
import dataclasses
import json
import textwrap

import pytest

from kernels.aot import KERNELS, SCHEDULES, WORK, KernelFacts, compile_facts
from kernels.speed import GPUS, SIZES
from suite.commands import kernel_report
from suite.commands.cli import main
from suite.commands.kernel_report import check, make_report, report_for, report_jobs, update_baseline

# Every test reads the report's compilations (report_facts): minutes of compiling on 2 cores.
pytestmark = [pytest.mark.slow, pytest.mark.aot]

# A copy of the forward recurrence reduced to one step per iteration: at BLOCK=128 with 4 warps
# each thread holds one element, so its global loads and stores are scalar.
ONE_PER_THREAD = """
import triton
import triton.language as tl


@triton.jit(do_not_specialize=["T"])
def one_per_thread_fwd(p_x, p_u, p_bias, p_h0, p_h, T, n_cols, H, stride_t,
                       HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, ACT: tl.constexpr,
                       BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    o_col = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m_col = o_col < n_cols
    b_u = tl.load(p_u + o_col % H, mask=m_col, other=0.0)
    b_bias = tl.load(p_bias + o_col % H, mask=m_col, other=0.0)
    b_h = tl.load(p_h0 + o_col, mask=m_col, other=0.0)
    for t in range(T):
        b_x = tl.load(p_x + t * stride_t + o_col, mask=m_col, other=0.0).to(tl.float32)
        b_h = tl.maximum(b_x + b_u * b_h + b_bias, 0.0)
        tl.store(p_h + t * n_cols + o_col, b_h.to(p_h.dtype.element_ty), mask=m_col)
"""
TARGET = dict(name="recurrence_fwd", dtype="fp32", cc=90, size="large")
# 64 fp32 values per thread per step, 16 steps in flight: far beyond 255 registers.
SPILLING = {"BLOCK": 2048, "CHUNK": 8, "num_warps": 1}


# The forward carry of the scan at B=1, H=256, T=65536 with groups of 2 chunk maps instead of 16:
# each group's loads have two chunks of the chain to land in, so the carry waits on memory at nearly
# every chunk, and the scan as a whole gets slower too.
SHALLOW_CARRY = dict(
    name="scan_fwd_carry", dtype="fp32", cc=90, size="long", config={"BLOCK": 32, "GROUP": 2, "num_warps": 1}
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, report_facts):
    """(report of every kernel, facts of the narrow variant, of the spilling config, of the
    short-chunk paper-size forward, of the shallow scan carry)."""
    variant = tmp_path_factory.mktemp("variant") / "one_per_thread.py"
    variant.write_text(textwrap.dedent(ONE_PER_THREAD))
    paper = WORK["recurrence_fwd"].configs["paper"]
    jobs = [
        dict(TARGET, source=f"{variant}:one_per_thread_fwd", config={"BLOCK": 128, "CHUNK": 8, "num_warps": 4}),
        dict(TARGET, config=SPILLING),
        # The paper-size forward with chunks a third as long: each chunk's loads have a third of the
        # steps to land, so the walk waits on memory far longer.
        dict(TARGET, size="paper", config={**paper, "CHUNK": paper["CHUNK"] // 3}),
        SHALLOW_CARRY,
    ]
    return make_report(report_facts), *compile_facts(jobs)


def _key(e: dict) -> tuple:
    return e["kernel"], e["dtype"], e["cc"], e["size"]


def _with(report: dict, facts) -> dict:
    """The report of `report`'s facts with the entry of facts' target and size replaced by `facts` (a
    variant of that kernel), its schedules modelled again."""
    entry = dataclasses.asdict(facts)
    return make_report([KernelFacts(**(entry if _key(e) == _key(entry) else e)) for e in report["kernels"]])


def test_report_covers_every_kernel_dtype_target_and_size(compiled):
    report, *_ = compiled
    keys = {_key(e) for e in report["kernels"]}
    assert len(keys) == len(report["kernels"]) == len(report_jobs())
    assert {e["kernel"] for e in report["kernels"]} == set(KERNELS) == set(WORK)
    assert {e["cc"] for e in report["kernels"]} == {80, 90}
    assert {e["size"] for e in report["kernels"]} == set(SIZES)
    for name in KERNELS:  # the carry moves fp32 records only: one dtype stands for all
        dtypes = {e["dtype"] for e in report["kernels"] if e["kernel"] == name}
        assert dtypes == ({"fp32", "fp16", "bf16"} if "carry" not in name else {"fp32"}), name
    # every schedule in every direction, dtype and size, on each GPU of each target
    assert len(report["schedules"]) == 2 * 2 * 3 * len(GPUS) * len(SIZES)
    assert check(report, report).ok and not check(report, report).notes


def test_every_entry_has_its_hot_loop_and_figures_for_each_gpu_of_its_target(compiled):
    report, *_ = compiled
    for e in report["kernels"]:
        loop, config = e["loop"], e["config"]
        if e["kernel"].startswith("recurrence"):  # two chunks of a walk from two sets of registers
            assert loop["closed"] and loop["units_per_iteration"] == 2 * config["CHUNK"]
        elif "carry" in e["kernel"]:  # two groups of chunk maps
            assert loop["closed"] and loop["units_per_iteration"] == 2 * config["GROUP"]
        else:  # a sub-chunk; a chunk of one sub-chunk has no loop left, its program is one pass
            assert loop["units_per_iteration"] == config["SUB"] and loop["closed"] == (config["CHUNK"] > config["SUB"])
        assert loop["instructions"] > 0 and loop["issue_cycles"] >= loop["instructions"]
        assert loop["drain_distance"] > 0 and sum(loop["loads_by_scoreboard"].values()) == loop["mix"]["global load"]
        assert {m["gpu"] for m in e["modeled"]} == ({"A100"} if e["cc"] == 80 else {"H100", "H200"})
        assert all(0 < m["l2_ns_per_step"] <= m["ns_per_step"] and 0 < m["copy_percent"] <= 100 for m in e["modeled"])
    text = kernel_report.to_markdown(report)
    assert "issue cycles per unit / per element" in text and "Assumptions of the model" in text and "H200" in text
    assert "Schedules" in text and "x walk" in text


def test_schedules_add_up_their_launches(compiled):
    """A schedule's time is its launches' modeled times plus one load latency each; the scan is held
    to the walk's bytes; its x walk is the ratio of the two."""
    report, *_ = compiled
    by_key = {_key(e): e for e in report["kernels"]}
    h100 = next(g for g in GPUS if g.name == "H100")
    rows = [r for r in report["schedules"] if (r["gpu"], r["dtype"]) == ("H100", "fp32")]
    assert len(rows) == 2 * 2 * len(SIZES)
    for row in rows:
        launches = SCHEDULES[row["direction"]][row["schedule"]]
        parts = [next(m for m in by_key[k, "fp32", 90, row["size"]]["modeled"] if m["gpu"] == "H100") for k in launches]
        fill = len(launches) * h100.load_latency_ns / SIZES[row["size"]].T
        assert row["ns_per_step"] == pytest.approx(fill + sum(m["ns_per_step"] for m in parts))
        assert row["l2_ns_per_step"] == pytest.approx(fill + sum(m["l2_ns_per_step"] for m in parts))
        # held to a copy of the walk's bytes: x read and h written, or h and dh read and dx written
        shape = SIZES[row["size"]]
        floor = (2 if row["direction"] == "forward" else 3) * shape.T * shape.B * shape.H * 4
        assert row["copy_percent"] == pytest.approx(100 * floor / h100.copy_gb_s / shape.T / row["ns_per_step"])
    figures = {
        (r["direction"], r["size"], r["schedule"]): r
        for r in kernel_report.schedule_figures(report)
        if r["gpu"] == "H100"
    }
    walk, scan = figures["forward", "long", "walk"], figures["forward", "long", "scan"]
    assert scan["figures"]["x walk"][0] == pytest.approx(walk["ns_per_step"] / scan["ns_per_step"])
    assert scan["copy_percent"] / walk["copy_percent"] == pytest.approx(walk["ns_per_step"] / scan["ns_per_step"])


def test_a_kernel_modeled_slower_fails_and_small_changes_pass(compiled):
    """The paper-size forward with a third of its chunk compiled for real: the model's ns/step gets
    worse by far more than 10%, and the check names the kernel, the GPU and the figure. Edits of
    the figures show the threshold both ways."""
    report, _, _, short, _ = compiled
    where = "recurrence_fwd fp32 sm_90 paper size"
    result = check(report, _with(report, short))
    assert any(f.startswith(f"{where}: modeled H100 ns/step") and "slower" in f for f in result.failures), result
    assert any("hot loop" in n for n in result.notes)

    def scaled(ns: float, bandwidth: float) -> dict:
        out = copy.deepcopy(report)
        entry = next(e for e in out["kernels"] if _key(e) == ("recurrence_fwd", "fp32", 90, "paper"))
        for m in entry["modeled"]:
            m["ns_per_step"] *= ns
            m["copy_percent"] *= bandwidth
        return out

    assert check(report, scaled(1.09, 1.0)).ok and check(report, scaled(0.5, 1.5)).ok
    slower = check(report, scaled(1.11, 1.0))
    assert not slower.ok and all(f.startswith(where) and "ns/step" in f for f in slower.failures)
    less_bandwidth = check(report, scaled(1.0, 0.89))
    assert not less_bandwidth.ok and all("% of copy bandwidth" in f for f in less_bandwidth.failures)
    assert check(report, scaled(1.0, 0.91)).ok


def test_a_slower_scan_pass_fails_for_the_pass_and_for_the_scan(compiled):
    """The forward carry at the long size compiled with shallow groups: the carry's modeled time and
    that of every forward scan at that size (whose launches include it) fail; nothing else does."""
    report, *_, shallow = compiled
    result = check(report, _with(report, shallow))
    where = "scan_fwd_carry fp32 sm_90 long size"
    assert any(f.startswith(f"{where}: modeled H100 ns/step") and "slower" in f for f in result.failures), result
    assert any(f.startswith("scan forward fp32 sm_90 long size H100: modeled ns/step") for f in result.failures)
    assert all(f.startswith(where) or (f.startswith("scan forward") and "long size" in f) for f in result.failures)


def test_schedule_figures_are_held_to_the_threshold(compiled):
    """Edits of one schedule's figures: 10% slower (from DRAM or with L2 re-reads) or 10% less of the
    copy bandwidth fails, naming the schedule; less than that passes."""
    report, *_ = compiled

    def edited(figure: str, factor: float) -> dict:
        out = copy.deepcopy(report)
        key = ("forward", "scan", "fp32", "paper", "H100")
        row = next(
            r for r in out["schedules"] if (r["direction"], r["schedule"], r["dtype"], r["size"], r["gpu"]) == key
        )
        row[figure] *= factor
        return out

    where = "scan forward fp32 sm_90 paper size H100"
    for figure, worse, fine in (
        ("ns_per_step", 1.11, 1.09),
        ("l2_ns_per_step", 1.11, 1.09),
        ("copy_percent", 0.89, 0.91),
    ):
        failed = check(report, edited(figure, worse))
        assert len(failed.failures) == 1 and failed.failures[0].startswith(where), (figure, failed)
        assert check(report, edited(figure, fine)).ok, figure


def test_narrower_loads_fail_naming_kernel_dtype_target_and_figure(compiled):
    report, narrow, *_ = compiled
    assert narrow.load_width_bits < 128  # the variant really is narrower, or this test proves nothing
    result = check(report, _with(report, narrow))
    assert not result.ok
    where = "recurrence_fwd fp32 sm_90 large size"
    assert any(f.startswith(f"{where}: widest global load 128 -> ") and "narrower" in f for f in result.failures)
    assert all(where in f for f in result.failures)


def test_spills_fail(compiled):
    report, _, spilling, *_ = compiled
    assert spilling.spill_bytes + spilling.stack_bytes > 0
    result = check(report, _with(report, spilling))
    assert any("recurrence_fwd fp32 sm_90 large size: s" in f and "spill" in f for f in result.failures)


def _edited(report: dict, **changes) -> dict:
    out = copy.deepcopy(report)
    entry = out["kernels"][0]
    for figure, value in changes.items():
        if figure in entry["ptx_counts"]:
            entry["ptx_counts"][figure] = value(entry["ptx_counts"][figure])
        else:
            entry[figure] = value(entry[figure])
    return out


def test_instruction_jumps_fail_and_small_changes_pass(compiled):
    report, *_ = compiled
    name = report["kernels"][0]["kernel"]
    jump = check(report, _edited(report, fma=lambda n: int(n * 1.5) + 5))
    assert not jump.ok and "PTX fma count" in jump.failures[0] and name in jump.failures[0]
    small = _edited(report, fma=lambda n: int(n * 1.1), bra=lambda n: n + 2, registers=lambda n: n + 4)
    assert check(report, small).ok
    fewer = _edited(report, add=lambda n: n // 2, spill_bytes=lambda n: 0, registers=lambda n: n // 2)
    result = check(report, fewer)
    assert result.ok and any("registers" in n for n in result.notes)  # noted, not failed


def test_other_triton_version_is_a_note_and_lost_kernels_fail(compiled):
    report, *_ = compiled
    other = dict(copy.deepcopy(report), triton="0.0-other")
    result = check(report, other)
    assert result.ok and any("triton" in n for n in result.notes)
    fewer = dict(report, kernels=report["kernels"][1:])
    assert not check(report, fewer).ok
    assert check(fewer, report).ok  # a kernel new to the baseline is a note


def test_baseline_keeps_a_report_per_triton_version(compiled, tmp_path):
    report, *_ = compiled
    path = tmp_path / "baseline.json"
    update_baseline(path, dict(report, triton="3.6.0"))
    update_baseline(path, dict(report, triton="3.10.1"))
    update_baseline(path, dict(report, triton="3.6.0", kernels=report["kernels"][:1]))  # replaces 3.6.0's only
    baseline = kernel_report.read_baseline(path)
    assert sorted(baseline["by_triton"]) == ["3.10.1", "3.6.0"]
    assert len(baseline["by_triton"]["3.6.0"]["kernels"]) == 1 < len(baseline["by_triton"]["3.10.1"]["kernels"])
    held, note = report_for(baseline, "3.6.0")
    assert held["triton"] == "3.6.0" and note is None
    held, note = report_for(baseline, "3.9.0")  # none of its own: the newest, said so
    assert held["triton"] == "3.10.1" and "no report for triton 3.9.0" in note


def test_the_baseline_keeps_what_the_check_reads(compiled):
    """Held to the baseline's part of a report, each worse variant and each edit fails and is noted
    exactly as when held to the whole report."""
    report, *variants = compiled
    part = kernel_report.baseline_part(report)
    assert len(json.dumps(part)) < 0.8 * len(json.dumps(report))
    edits = [_edited(report, fma=lambda n: int(n * 1.5) + 5, registers=lambda n: n // 2, shared_bytes=lambda n: n + 1)]
    for worse in [_with(report, facts) for facts in variants] + edits:
        held = check(part, worse)
        assert held == check(report, worse) and not held.ok


def test_cli_update_then_check(compiled, monkeypatch, tmp_path, capsys):
    report, narrow, *_ = compiled
    # The CLI gets the fixture's facts: nothing is compiled again.
    monkeypatch.setattr(kernel_report, "collect", lambda: [KernelFacts(**e) for e in report["kernels"]])
    baseline, out = tmp_path / "baseline.json", tmp_path / "facts.json"
    assert main(["kernel-report", "--update", str(baseline), "--json-out", str(out)]) == 0
    written = json.loads(baseline.read_text())
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert written["by_triton"][report["triton"]] == json.loads(json.dumps(kernel_report.baseline_part(report)))
    assert main(["kernel-report", "--check", str(baseline)]) == 0
    printed = capsys.readouterr().out
    assert "recurrence_bwd" in printed and "ld.global" in printed and "PASS" in printed

    worse = [KernelFacts(**e) for e in _with(report, narrow)["kernels"]]
    monkeypatch.setattr(kernel_report, "collect", lambda: worse)
    assert main(["kernel-report", "--check", str(baseline)]) == 1
    assert "FAIL: recurrence_fwd fp32 sm_90 large size: widest global load" in capsys.readouterr().out
    assert main(["kernel-report", "--check", str(tmp_path / "absent.json")]) == 2
    out.write_text(json.dumps(report))  # a single report is no baseline
    assert main(["kernel-report", "--check", str(out)]) == 2


def test_report_records_the_autotune_space_and_marks_the_configs_meant_for_each_size(compiled):
    report, *_ = compiled
    for kernel in ("recurrence_fwd", "recurrence_bwd"):
        for size in ("paper", "large"):
            assert report["size_configs"][kernel][size] in report["autotune_space"][kernel]  # the autotuner can pick it
    text = kernel_report.to_markdown(report)
    assert text.count("| paper ") >= 2 and "steps loaded ahead" in text
    shrunk = copy.deepcopy(report)
    shrunk["autotune_space"]["recurrence_fwd"].pop()
    result = check(report, shrunk)
    assert result.ok and any("autotune space changed" in n for n in result.notes)
