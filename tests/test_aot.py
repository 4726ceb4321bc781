"""Every kernel compiles ahead of time for sm_80 and sm_90 (no GPU needed) into fast-shaped code:
no register spills anywhere in the autotune space, and 128-bit global loads and stores. The
kernels at the configs kernel-report compiles come from the session's `report_facts` (conftest)."""

import dataclasses

import pytest

from kernels.aot import compile_facts
from kernels.sequential import autotune_configs
from suite.commands.kernel_report import report_jobs

pytestmark = [pytest.mark.slow, pytest.mark.aot]


def test_every_kernel_compiles_without_spills(report_facts):
    assert len(report_facts) == len(report_jobs())
    for facts in report_facts:
        assert facts.spill_bytes + facts.stack_bytes == 0, facts
        assert 0 < facts.registers <= 255, facts


def test_fp32_forward_uses_128_bit_loads(report_facts):
    for facts in report_facts:
        if facts.kernel == "recurrence_fwd" and facts.dtype == "fp32" and facts.size == "large":
            assert facts.load_width_bits == 128, facts
            assert facts.store_width_bits == 128, facts
            assert facts.ptx_counts["ld.global"] > 0


# Register pressure shows up as LOCAL or as stack bytes with this ptxas (tens to hundreds of
# bytes at 255 registers). A few configs get an 8-byte stack frame at 40-96 registers, far from
# any pressure; that much is tolerated, nothing more.
STACK_FRAME_BYTES = 8


def test_whole_autotune_space_has_no_spills():
    """The GPU autotuner may pick any of these; none may spill on either target in fp32 or bf16."""
    jobs = [
        dict(name=name, dtype=dtype, cc=cc, config={**c.kwargs, "num_warps": c.num_warps})
        for name, backward in (("recurrence_fwd", False), ("recurrence_bwd", True))
        for c in autotune_configs(single=False, backward=backward)
        for dtype in ("fp32", "bf16")
        for cc in (80, 90)
    ]
    assert len(jobs) > 8
    for job, facts in zip(jobs, compile_facts(jobs), strict=True):
        assert facts.spill_bytes == 0 and facts.stack_bytes <= STACK_FRAME_BYTES, (job, facts)
        per_thread = job["config"]["BLOCK"] // (32 * job["config"]["num_warps"])  # elements a thread
        assert facts.load_width_bits == min(128, 32 * per_thread), (job, facts)  # fp32 u loads at least


def test_a_compilation_asked_again_reads_its_listing_from_the_cache(tmp_path, monkeypatch):
    """The SASS listing is kept beside the cubin in triton's cache and read back from there: a listing
    edited in the cache shows in the facts of the same compilation asked again."""
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    job = dict(name="scan_bwd_maps", dtype="fp32", cc=90, size="long")
    (first,) = compile_facts([job])
    (listing,) = tmp_path.glob("*/scan_bwd_maps_kernel.sass")
    text = listing.read_text()
    assert f"REG:{first.registers} " in text
    listing.write_text(text.replace(f"REG:{first.registers} ", "REG:7 ", 1))
    (again,) = compile_facts([job])
    assert again.registers == 7 and dataclasses.replace(again, registers=first.registers) == first
