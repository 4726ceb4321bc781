"""kernel-report: the check fails when a compiled kernel gets slower-shaped (a spill, narrower
loads, a jump in instructions) and passes small changes. The report's kernels and two
deliberately worse variants are compiled once, in one batch, for the whole file."""

import copy
import json
import textwrap

import pytest

from kernels.aot import KernelFacts, compile_facts
from suite.commands import kernel_report
from suite.commands.cli import main
from suite.commands.kernel_report import check, make_report, report_jobs

# A copy of the forward recurrence reduced to one step per iteration: at BLOCK=128 with 4 warps
# each thread holds one element, so its global loads and stores are scalar.
ONE_PER_THREAD = """
import triton
import triton.language as tl


@triton.jit(do_not_specialize=["T"])
def one_per_thread_fwd(p_x, p_u, p_bias, p_h0, p_h, T, n_cols, H, stride_t,
                       HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, ACT: tl.constexpr,
                       BLOCK: tl.constexpr, CHUNK: tl.constexpr, STAGES: tl.constexpr):
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
TARGET = dict(name="recurrence_fwd", dtype="fp32", cc=90)
# 64 fp32 values per thread per step, 8 steps in flight: far beyond 255 registers.
SPILLING = {"BLOCK": 2048, "CHUNK": 8, "STAGES": 2, "num_warps": 1}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(report of every kernel, facts of the narrow variant, facts of the spilling config)."""
    variant = tmp_path_factory.mktemp("variant") / "one_per_thread.py"
    variant.write_text(textwrap.dedent(ONE_PER_THREAD))
    jobs = report_jobs() + [
        dict(
            TARGET,
            source=f"{variant}:one_per_thread_fwd",
            config={"BLOCK": 128, "CHUNK": 8, "STAGES": 2, "num_warps": 4},
        ),
        dict(TARGET, config=SPILLING),
    ]
    *facts, narrow, spilling = compile_facts(jobs)
    return make_report(facts), narrow, spilling


def _with(report: dict, facts) -> dict:
    """`report` with the entry of facts' target replaced by `facts` (a variant of that kernel)."""
    out = copy.deepcopy(report)
    entry = make_report([facts])["kernels"][0]
    out["kernels"] = [
        entry if (e["kernel"], e["dtype"], e["cc"]) == (facts.kernel, facts.dtype, facts.cc) else e
        for e in out["kernels"]
    ]
    return out


def test_report_covers_every_kernel_dtype_and_target(compiled):
    report, _, _ = compiled
    targets = {(e["kernel"], e["dtype"], e["cc"]) for e in report["kernels"]}
    assert len(targets) == len(report["kernels"]) == len(report_jobs())
    assert {cc for _, _, cc in targets} == {80, 90} and {d for _, d, _ in targets} == {"fp32", "fp16", "bf16"}
    assert check(report, report).ok and not check(report, report).notes


def test_narrower_loads_fail_naming_kernel_dtype_target_and_figure(compiled):
    report, narrow, _ = compiled
    assert narrow.load_width_bits < 128  # the variant really is narrower, or this test proves nothing
    result = check(report, _with(report, narrow))
    assert not result.ok
    assert any(
        f.startswith("recurrence_fwd fp32 sm_90: widest global load 128 -> ") and "narrower" in f
        for f in result.failures
    )
    assert all("recurrence_fwd fp32 sm_90" in f for f in result.failures)


def test_spills_fail(compiled):
    report, _, spilling = compiled
    assert spilling.spill_bytes + spilling.stack_bytes > 0
    result = check(report, _with(report, spilling))
    assert any("recurrence_fwd fp32 sm_90: s" in f and "spill" in f for f in result.failures), result.failures


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
    report, _, _ = compiled
    name = report["kernels"][0]["kernel"]
    jump = check(report, _edited(report, fma=lambda n: int(n * 1.5) + 5))
    assert not jump.ok and "PTX fma count" in jump.failures[0] and name in jump.failures[0]
    small = _edited(report, fma=lambda n: int(n * 1.1), bra=lambda n: n + 2, registers=lambda n: n + 4)
    assert check(report, small).ok
    fewer = _edited(report, add=lambda n: n // 2, spill_bytes=lambda n: 0, registers=lambda n: n // 2)
    result = check(report, fewer)
    assert result.ok and any("registers" in n for n in result.notes)  # noted, not failed


def test_other_triton_version_is_a_note_and_lost_kernels_fail(compiled):
    report, _, _ = compiled
    other = dict(copy.deepcopy(report), triton="0.0-other")
    result = check(report, other)
    assert result.ok and any("triton" in n for n in result.notes)
    fewer = dict(report, kernels=report["kernels"][1:])
    assert not check(report, fewer).ok
    assert check(fewer, report).ok  # a kernel new to the baseline is a note


def test_cli_update_then_check(compiled, monkeypatch, tmp_path, capsys):
    report, narrow, _ = compiled
    # The CLI gets the fixture's facts: nothing is compiled again.
    monkeypatch.setattr(kernel_report, "collect", lambda: [KernelFacts(**e) for e in report["kernels"]])
    baseline, out = tmp_path / "baseline.json", tmp_path / "facts.json"
    assert main(["kernel-report", "--update", str(baseline), "--json-out", str(out)]) == 0
    assert json.loads(baseline.read_text()) == json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert main(["kernel-report", "--check", str(baseline)]) == 0
    printed = capsys.readouterr().out
    assert "recurrence_bwd" in printed and "ld.global" in printed and "PASS" in printed

    worse = [KernelFacts(**e) for e in _with(report, narrow)["kernels"]]
    monkeypatch.setattr(kernel_report, "collect", lambda: worse)
    assert main(["kernel-report", "--check", str(baseline)]) == 1
    assert "FAIL: recurrence_fwd fp32 sm_90: widest global load" in capsys.readouterr().out
    assert main(["kernel-report", "--check", str(tmp_path / "absent.json")]) == 2


def test_report_records_the_autotune_space_and_marks_the_paper_size_configs(compiled):
    report, _, _ = compiled
    for kernel in ("recurrence_fwd", "recurrence_bwd"):
        paper = report["paper_size_configs"][kernel]
        assert paper in report["autotune_space"][kernel]  # the autotuner can pick it
    text = kernel_report.to_markdown(report)
    assert text.count("paper size") == 2 and "steps loaded ahead" in text
    shrunk = copy.deepcopy(report)
    shrunk["autotune_space"]["recurrence_fwd"].pop()
    result = check(report, shrunk)
    assert result.ok and any("autotune space changed" in n for n in result.notes)
