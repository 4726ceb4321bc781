"""suite.render.stats on synthetic samples: ranks and the rank test against known values, a known shift
is detected, and identical distributions raise a false alarm in under 5% of many seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from suite.render.compare import judge, with_statistics
from suite.render.stats import ALPHA, assess_change, average_ranks, mann_whitney, median_ratio_ci, smallest_p

SEEDS = 200


def timings(rng: np.random.Generator, n: int, median_ms: float = 2.0, spread: float = 0.05) -> np.ndarray:
    """Timing-like samples: lognormal around the median, with a rare slow outlier."""
    samples = median_ms * rng.lognormal(0.0, spread, n)
    slow = rng.random(n) < 0.05
    return np.where(slow, samples * 1.5, samples)


def test_average_ranks_share_ties():
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert average_ranks(np.array([5.0, 5.0, 5.0])).tolist() == [2.0, 2.0, 2.0]


def test_mann_whitney_against_known_and_exact_values():
    u, p = mann_whitney([1, 2, 3], [4, 5, 6])
    assert u == 9 and p == pytest.approx(0.0809, abs=1e-4)  # normal approximation, continuity corrected
    assert mann_whitney([4, 5, 6], [1, 2, 3])[1] == pytest.approx(p)
    assert mann_whitney([1.0] * 5, [1.0] * 5)[1] == 1.0
    # Against the exact permutation distribution of U for 6 + 6 samples.
    base, new = [1.0, 2.5, 3.0, 4.2, 5.1, 6.0], [3.5, 4.5, 5.5, 6.5, 7.0, 8.0]
    pooled = np.array(base + new)
    observed = mann_whitney(base, new)[0]
    us = [average_ranks(pooled)[list(chosen)].sum() - 21 for chosen in itertools.combinations(range(12), 6)]
    exact = np.mean(np.abs(np.array(us) - 18) >= abs(observed - 18))
    assert mann_whitney(base, new)[1] == pytest.approx(exact, abs=0.01)


def test_the_test_abstains_with_too_few_samples():
    assert smallest_p(3, 3) > ALPHA  # three calls each can never be significant
    assert smallest_p(10, 10) < ALPHA
    rng = np.random.default_rng(0)
    assert not assess_change(timings(rng, 3), 2 * timings(rng, 3)).decisive


def test_bootstrap_interval_covers_the_shift_and_repeats():
    rng = np.random.default_rng(1)
    base, new = timings(rng, 200), 1.10 * timings(rng, 200)
    lo, hi = median_ratio_ci(base, new)
    assert lo < 1.10 < hi and lo > 1.0
    assert median_ratio_ci(base, new) == (lo, hi)  # fixed seed: the same interval every time


@pytest.mark.parametrize(("n", "shift"), [(10, 2.0), (30, 1.25), (100, 1.1)])  # fewer samples see larger shifts
def test_known_shift_is_detected(n, shift):
    for seed in range(20):
        rng = np.random.default_rng(seed)
        base, new = timings(rng, n), shift * timings(rng, n)
        test = assess_change(base, new)
        assert test.supports(up=True) and not test.supports(up=False), (seed, test)
        assert assess_change(new, base).supports(up=False)


def _verdict(base: np.ndarray, new: np.ndarray, threshold: float) -> str:
    """compare's verdict on one config from its samples: threshold and spreads, then statistics."""
    (b20, b50, b80), (n20, n50, n80) = np.quantile(base, [0.2, 0.5, 0.8]), np.quantile(new, [0.2, 0.5, 0.8])
    verdict = judge(n50 / b50, (b20, b80), (n20, n80), threshold, worse_up=True)
    return with_statistics(verdict, assess_change(base, new), n50 / b50)


@pytest.mark.parametrize("n", [10, 30])
def test_false_alarms_on_identical_distributions_stay_under_5_percent(n):
    test_alarms = verdict_alarms = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        base, new = timings(rng, n), timings(rng, n)
        test = assess_change(base, new)
        test_alarms += test.supports(up=True) or test.supports(up=False)
        # With no threshold at all, only the spreads and the statistics stand between noise and a verdict.
        verdict_alarms += _verdict(base, new, threshold=0.0) in ("regression", "improvement")
    assert test_alarms / SEEDS < 0.05
    assert verdict_alarms / SEEDS < 0.05


def test_statistics_turn_an_unbacked_change_into_noise():
    rng = np.random.default_rng(3)
    base, same = timings(rng, 30), timings(rng, 30)
    assert with_statistics("regression", assess_change(base, same), 1.2) == "noise"
    assert with_statistics("regression", assess_change(base, 1.3 * same), 1.3) == "regression"
    few = assess_change(base[:3], same[:3])  # cannot decide: the verdict stands
    assert with_statistics("regression", few, 1.2) == "regression"
    assert with_statistics("unchanged", assess_change(base, 1.3 * same), 1.01) == "unchanged"
