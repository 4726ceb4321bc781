"""Denormal floats: the probe that tells which threads flush them, and the mode set on every
intra-op thread (not only the calling one, which is all torch.set_flush_denormal reaches)."""

from __future__ import annotations

import pytest
import torch

from suite.core import denormals


@pytest.fixture
def two_threads():
    """An op's work split over two threads: a mode set on the calling thread alone shows as half."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def flushing_cpu():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormal floats")


def test_the_mode_reaches_every_intra_op_thread_and_is_restored(two_threads):
    torch.ones(2**20).mul_(2.0)  # the OpenMP team exists, started without the flush, as in any session
    assert denormals.flushed_share() == 0.0 and not denormals.flushes_here()
    torch.set_flush_denormal(True)  # the calling thread alone: the other thread's half keeps them
    assert 0.0 < denormals.flushed_share() < 1.0
    torch.set_flush_denormal(False)
    with denormals.denormal_mode(True):
        assert denormals.flushed_share() == 1.0 and denormals.flushes_here()
    assert denormals.flushed_share() == 0.0 and not denormals.flushes_here()


def test_the_mode_before_is_the_mode_after():
    denormals.set_flush(True)
    try:
        with denormals.denormal_mode(False):
            assert denormals.flushed_share() == 0.0
        assert denormals.flushed_share() == 1.0
    finally:
        denormals.set_flush(False)


def test_a_run_records_what_it_got():
    assert denormals.describe(True) == denormals.FLUSHED
    assert denormals.describe(False) == denormals.KEPT
    assert denormals.flushed_share() == 0.0  # describing left nothing behind
