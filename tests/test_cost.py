"""The cost model's prior on a GPU at long T: what grows with the sequence length is counted (the
gate's step-by-step loop, the timed calls of the kernels and of cuDNN), so a million-step preset is
planned in minutes, not seconds; the CPU's flat guess is untouched."""

from __future__ import annotations

from dataclasses import replace

import pytest
from harness_helpers import cfg

from suite.sweep import cost
from suite.sweep.cost import length_s, prior_s

MILLION = 2**20


def test_the_gate_walks_every_step_of_an_indrnn_that_is_not_the_loop_itself():
    scan = cfg("indrnn_triton_scan", "recurrence", seq_len=MILLION, batch=1, hidden=128, input_size=128)
    short = replace(scan, seq_len=4096)
    per_step = sum(cost.LOOP_OPS.values()) * cost.LAUNCH_S  # the torch loop
    assert prior_s(scan, "cuda") - prior_s(short, "cuda") >= per_step * (MILLION - 4096)
    model = cfg("indrnn_triton", "train", seq_len=MILLION, batch=1, hidden=128)
    assert length_s(model) >= sum(cost.LOOP_OPS.values()) * cost.LAUNCH_S * MILLION  # the torch loop gates a model
    loop = cfg("indrnn_torch_seq", "infer", seq_len=MILLION)
    assert length_s(loop) == 0  # its own reference, and its calls are in the eager loop's figure
    assert length_s(cfg("transformer", "train", seq_len=MILLION)) == 0


def test_long_calls_of_cudnn_and_the_walk_count_as_what_they_run():
    lstm = cfg("lstm", "infer", seq_len=MILLION, batch=1, hidden=128)
    assert length_s(replace(lstm, mode="train")) == pytest.approx(3 * length_s(lstm))  # forward + backward
    assert length_s(lstm) == pytest.approx(cost.LONG_CALLS * MILLION * cost.CUDNN_STEP_S)
    few = cfg("indrnn_triton_seq", "infer", seq_len=MILLION, batch=1, hidden=128)
    many = replace(few, batch=2**12, hidden=2**10)  # past the latency floor: bytes decide
    assert length_s(many) > length_s(few) > length_s(replace(few, seq_len=4096))


def test_the_walk_autotunes_and_the_scan_does_not_and_a_cpu_keeps_its_flat_guess():
    seq = cfg("indrnn_triton_seq", "recurrence", seq_len=4096)
    assert prior_s(seq, "cuda") > prior_s(replace(seq, provider="indrnn_triton_scan"), "cuda") + 7
    assert prior_s(seq, "cpu") == prior_s(cfg("lstm", seq_len=MILLION), "cpu") == cost.CPU_GUESS_S
