"""kernel-report: the check fails when a compiled kernel gets slower-shaped (a spill, narrower
loads, a jump in instructions, a modeled figure more than 10% worse) and passes small changes.
The report's kernels and three deliberately worse variants are compiled once, in one batch, for
the whole file."""

import copy
import json
import textwrap

import pytest

from kernels.aot import WORK, KernelFacts, compile_facts
from suite.commands import kernel_report
from suite.commands.cli import main
from suite.commands.kernel_report import check, make_report, report_for, report_jobs, update_baseline

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


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(report of every kernel, facts of the narrow variant, of the spilling config, of the
    short-chunk paper-size forward)."""
    variant = tmp_path_factory.mktemp("variant") / "one_per_thread.py"
    variant.write_text(textwrap.dedent(ONE_PER_THREAD))
    paper = WORK["recurrence_fwd"].configs["paper"]
    jobs = report_jobs() + [
        dict(TARGET, source=f"{variant}:one_per_thread_fwd", config={"BLOCK": 128, "CHUNK": 8, "num_warps": 4}),
        dict(TARGET, config=SPILLING),
        # The paper-size forward with chunks a third as long: each chunk's loads have a third of the
        # steps to land, so the walk waits on memory far longer.
        dict(TARGET, size="paper", config={**paper, "CHUNK": paper["CHUNK"] // 3}),
    ]
    *facts, narrow, spilling, short = compile_facts(jobs)
    return make_report(facts), narrow, spilling, short


def _key(e: dict) -> tuple:
    return e["kernel"], e["dtype"], e["cc"], e["size"]


def _with(report: dict, facts) -> dict:
    """`report` with the entry of facts' target and size replaced by `facts` (a variant of that kernel)."""
    out = copy.deepcopy(report)
    entry = make_report([facts])["kernels"][0]
    out["kernels"] = [entry if _key(e) == _key(entry) else e for e in out["kernels"]]
    return out


def test_report_covers_every_kernel_dtype_target_and_size(compiled):
    report, *_ = compiled
    keys = {_key(e) for e in report["kernels"]}
    assert len(keys) == len(report["kernels"]) == len(report_jobs())
    assert {e["cc"] for e in report["kernels"]} == {80, 90}
    assert {e["dtype"] for e in report["kernels"]} == {"fp32", "fp16", "bf16"}
    assert {e["size"] for e in report["kernels"] if e["kernel"] in WORK} == {"paper", "large"}
    assert check(report, report).ok and not check(report, report).notes


def test_every_modelled_entry_has_its_hot_loop_and_figures_for_each_gpu_of_its_target(compiled):
    report, *_ = compiled
    for e in report["kernels"]:
        if e["kernel"] not in WORK:
            continue
        loop = e["loop"]
        assert loop["closed"] and loop["units_per_iteration"] == 2 * e["config"]["CHUNK"]
        assert loop["instructions"] > 0 and loop["issue_cycles"] >= loop["instructions"]
        assert loop["drain_distance"] > 0 and sum(loop["loads_by_scoreboard"].values()) == loop["mix"]["global load"]
        assert {m["gpu"] for m in e["modeled"]} == ({"A100"} if e["cc"] == 80 else {"H100", "H200"})
        assert all(m["ns_per_step"] > 0 and 0 < m["copy_percent"] <= 100 for m in e["modeled"])
    text = kernel_report.to_markdown(report)
    assert "issue cycles/unit" in text and "Assumptions of the model" in text and "H200" in text


def test_a_kernel_modeled_slower_fails_and_small_changes_pass(compiled):
    """The paper-size forward with a third of its chunk compiled for real: the model's ns/step gets
    worse by far more than 10%, and the check names the kernel, the GPU and the figure. Edits of
    the figures show the threshold both ways."""
    report, *_, short = compiled
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


def test_narrower_loads_fail_naming_kernel_dtype_target_and_figure(compiled):
    report, narrow, *_ = compiled
    assert narrow.load_width_bits < 128  # the variant really is narrower, or this test proves nothing
    result = check(report, _with(report, narrow))
    assert not result.ok
    where = "recurrence_fwd fp32 sm_90 large size"
    assert any(f.startswith(f"{where}: widest global load 128 -> ") and "narrower" in f for f in result.failures)
    assert all(where in f for f in result.failures)


def test_spills_fail(compiled):
    report, _, spilling, _ = compiled
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
    update_baseline(path, dict(report, triton="3.6.0", config={"BLOCK": 1}))  # replaces 3.6.0's only
    baseline = kernel_report.read_baseline(path)
    assert sorted(baseline["by_triton"]) == ["3.10.1", "3.6.0"]
    assert baseline["by_triton"]["3.6.0"]["config"] == {"BLOCK": 1}
    held, note = report_for(baseline, "3.6.0")
    assert held["triton"] == "3.6.0" and note is None
    held, note = report_for(baseline, "3.9.0")  # none of its own: the newest, said so
    assert held["triton"] == "3.10.1" and "no report for triton 3.9.0" in note


def test_cli_update_then_check(compiled, monkeypatch, tmp_path, capsys):
    report, narrow, *_ = compiled
    # The CLI gets the fixture's facts: nothing is compiled again.
    monkeypatch.setattr(kernel_report, "collect", lambda: [KernelFacts(**e) for e in report["kernels"]])
    baseline, out = tmp_path / "baseline.json", tmp_path / "facts.json"
    assert main(["kernel-report", "--update", str(baseline), "--json-out", str(out)]) == 0
    written = json.loads(baseline.read_text())
    assert written["by_triton"][report["triton"]] == json.loads(out.read_text()) == json.loads(json.dumps(report))
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
