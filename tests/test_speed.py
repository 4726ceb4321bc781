"""The static speed model on a fixed loop (the one of test_sass.py): what bounds a launch moves from
one warp's latency to its scheduler's issue slots to bandwidth as programs and bytes grow."""

import dataclasses

import pytest
from test_sass import LOOP_LISTING

from kernels.sass import hot_loop, parse_sass
from kernels.speed import GPUS, Machine, Shape, Work, in_sequence, model, resident_programs

H100 = next(m for m in GPUS if m.name == "H100")
CONFIG = {"BLOCK": 32, "num_warps": 1}


def one_step_per_iteration(bytes_per_step: int) -> Work:
    """A walk whose loop covers one time step of BLOCK columns and moves bytes_per_step per column."""
    return Work(
        unit="time step",
        units_per_iteration=lambda config: 1,
        programs=lambda config, shape: -(-shape.B * shape.H // config["BLOCK"]),
        units_per_program=lambda config, shape: shape.T,
        bytes_moved=lambda config, shape, element_bytes: bytes_per_step * shape.T * shape.B * shape.H,
        configs={},
    )


@pytest.fixture(scope="module")
def loop():
    (instructions,) = parse_sass(LOOP_LISTING).values()
    return hot_loop(instructions)


def test_one_warp_per_sm_is_bound_by_its_own_latency(loop):
    shape = Shape(T=1000, B=1, H=32 * H100.sms)  # one program per SM
    got = model(loop, 32, 0, CONFIG, one_step_per_iteration(0), shape, 4, H100)
    alone = loop.cycles_per_iteration(H100.load_latency_cycles, H100.other_latency_cycles)
    assert got.bound == "latency" and got.programs_per_sm == 1 and got.waves == 1
    assert got.ns_per_step == pytest.approx(alone / H100.clock_ghz) == pytest.approx(got.compute_ns_per_step)


def test_many_warps_share_the_schedulers_issue_slots(loop):
    near = dataclasses.replace(H100, load_latency_ns=20.0)  # latency a few warps can cover
    alone = loop.cycles_per_iteration(near.load_latency_cycles, near.other_latency_cycles)
    per_scheduler = int(alone // loop.issue_cycles) + 2  # enough warps that issuing them takes longer
    programs = near.sms * near.schedulers_per_sm * per_scheduler
    shape = Shape(T=1000, B=1, H=32 * programs)
    got = model(loop, 32, 0, CONFIG, one_step_per_iteration(0), shape, 4, near)
    assert got.bound == "issue" and got.programs_per_sm == 4 * per_scheduler
    assert got.ns_per_step == pytest.approx(per_scheduler * loop.issue_cycles / near.clock_ghz)


def test_enough_bytes_make_it_bandwidth_bound_at_the_copy_rate(loop):
    shape = Shape(T=1000, B=1, H=32 * H100.sms)
    few = model(loop, 32, 0, CONFIG, one_step_per_iteration(8), shape, 4, H100)
    many = model(loop, 32, 0, CONFIG, one_step_per_iteration(1 << 20), shape, 4, H100)
    assert few.bound == "latency" and few.copy_percent < 5
    assert many.bound == "bandwidth" and many.copy_percent == pytest.approx(100)
    assert many.ns_per_step == pytest.approx((1 << 20) * shape.B * shape.H / H100.copy_gb_s)
    assert many.compute_ns_per_step == pytest.approx(few.compute_ns_per_step)


def test_bytes_an_earlier_launch_touched_come_from_l2_as_far_as_it_holds_them(loop):
    """A bandwidth-bound launch whose bytes were all just read: with L2 re-reads it moves from DRAM only
    what exceeds the L2; the figure from DRAM ignores L2, and neither changes the compute part."""
    shape = Shape(T=10, B=1, H=32 * H100.sms)  # ten steps: the bytes, not the steps, take the time
    moved = 3 * H100.l2_bytes

    def touched(reread: int) -> Work:
        return dataclasses.replace(
            one_step_per_iteration(0),
            bytes_moved=lambda config, shape, element_bytes: moved,
            reread=lambda config, shape, element_bytes: reread,
        )

    fresh = model(loop, 32, 0, CONFIG, touched(0), shape, 4, H100)
    assert fresh.bound == "bandwidth" and fresh.l2_ns_per_step == fresh.ns_per_step
    all_again = model(loop, 32, 0, CONFIG, touched(moved), shape, 4, H100)
    assert all_again.ns_per_step == fresh.ns_per_step and all_again.compute_ns_per_step == fresh.compute_ns_per_step
    assert all_again.l2_ns_per_step == pytest.approx((moved - H100.l2_bytes) / H100.copy_gb_s / shape.T)
    half = model(loop, 32, 0, CONFIG, touched(H100.l2_bytes // 2), shape, 4, H100)
    assert half.l2_ns_per_step == pytest.approx((moved - H100.l2_bytes // 2) / H100.copy_gb_s / shape.T)


def test_launches_in_sequence_add_up_with_a_load_latency_each(loop):
    """The launches' times, from DRAM and with L2 re-reads, plus one load latency of fill per launch
    spread over T; % copy is the floor bytes' copy time over that. The second launch is bandwidth
    bound with more re-read than the L2 holds, so its two times differ, and the comparisons are
    exact enough to see a fill of one launch too few (a ten-thousandth of the time here)."""
    shape = Shape(T=1000, B=1, H=32 * H100.sms)
    one = model(loop, 32, 0, CONFIG, one_step_per_iteration(8), shape, 4, H100)
    heavy = 4096  # bytes per step and column
    reread = dataclasses.replace(
        one_step_per_iteration(heavy), reread=lambda config, shape, element_bytes: heavy * shape.T * shape.B * shape.H
    )
    two = model(loop, 32, 0, CONFIG, reread, shape, 4, H100)
    assert two.bound == "bandwidth" and two.l2_ns_per_step < two.ns_per_step
    floor = 8 * shape.T * shape.B * shape.H
    got = in_sequence([one, two], floor, shape, H100)
    fill = 2 * H100.load_latency_ns / shape.T
    exact = dict(rel=1e-9)
    assert got.launches == 2 and got.ns_per_step == pytest.approx(fill + one.ns_per_step + two.ns_per_step, **exact)
    assert got.l2_ns_per_step == pytest.approx(fill + one.l2_ns_per_step + two.l2_ns_per_step, **exact)
    assert got.copy_percent == pytest.approx(100 * floor / H100.copy_gb_s / shape.T / got.ns_per_step, **exact)
    assert got.l2_copy_percent == pytest.approx(100 * floor / H100.copy_gb_s / shape.T / got.l2_ns_per_step, **exact)
    alone = in_sequence([one], floor, shape, H100)
    assert alone.ns_per_step == pytest.approx(one.ns_per_step + H100.load_latency_ns / shape.T, **exact)


def test_programs_beyond_what_the_sms_hold_run_in_waves(loop):
    # 255 registers x 32 threads: 8 one-warp programs fit in 64K registers.
    assert resident_programs(H100, 255, 0, 1) == 8
    shape = Shape(T=1000, B=1, H=32 * H100.sms * 8 * 3)
    got = model(loop, 255, 0, CONFIG, one_step_per_iteration(0), shape, 4, H100)
    assert got.waves == 3 and got.programs_per_sm == 8


def test_residency_limits():
    assert resident_programs(H100, 32, 0, 1) == H100.max_programs_per_sm
    assert resident_programs(H100, 32, 0, 16) == H100.max_warps_per_sm // 16
    assert resident_programs(H100, 33, 0, 8) == 65536 // (40 * 32 * 8)  # rounded up to 8 per thread
    assert resident_programs(H100, 32, 100 * 1024, 1) == 2  # shared memory
    small = Machine(
        "small", cc=90, sms=1, clock_ghz=1.0, load_latency_ns=1.0, copy_gb_s=1.0, l2_bytes=1, registers_per_sm=1024
    )
    assert resident_programs(small, 64, 0, 1) == 0
    with pytest.raises(ValueError, match="does not fit on an SM"):
        model(
            hot_loop(parse_sass(LOOP_LISTING)["walk"]),
            64,
            0,
            CONFIG,
            one_step_per_iteration(0),
            Shape(1, 1, 32),
            4,
            small,
        )
