"""Timers: CPU quantiles and the time cap, the copy bandwidth, the method chosen per device."""

from __future__ import annotations

import time

import pytest

from suite.sweep.timing import copy_bandwidth_gbps, time_cpu

# ---------------------------------------------------------------------------- timers


def test_time_cpu_quantiles_and_budget():
    t = time_cpu(lambda: sum(range(1000)), warmup=1, repeats=7)
    assert t.n_samples == 7 and t.p20_ms <= t.p50_ms <= t.p80_ms and t.method == "cpu_wallclock"
    # The samples themselves come along (compare's statistics), and the quantiles are theirs.
    assert len(t.samples_ms) == 7 and sorted(t.samples_ms)[3] == pytest.approx(t.p50_ms)
    t = time_cpu(lambda: time.sleep(0.02), warmup=0, repeats=50, max_s=0.01)
    assert t.n_samples == 3  # stops once the budget is spent, keeping three samples
    with pytest.raises(ValueError):
        time_cpu(lambda: None, warmup=0, repeats=0)


def test_copy_bandwidth_is_positive():
    assert copy_bandwidth_gbps("cpu", nbytes=4 * 2**20) > 0
