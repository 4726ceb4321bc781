"""Is a change in a config's time real? Two views of the raw timing samples of two runs.

- A Mann-Whitney rank test: do NEW's samples tend to sit above (or below) BASE's? Two-sided,
  with the normal approximation of U (tie and continuity corrected), so it costs one sort.
- A bootstrap confidence interval of NEW median / BASE median: both runs' samples resampled
  with replacement, independently, a fixed number of times from a fixed seed (repeatable).

`compare` calls a change real only when the threshold, the non-overlap of the p20-p80 spreads
and these statistics agree: p below ALPHA and the interval on the same side of 1 as the change.
With so few samples that not even complete separation could reach ALPHA, the test cannot
judge, and says so (`decisive` is False): the verdict then rests on the threshold and the
spreads alone, as for files without samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.01  # stricter than 0.05: compare judges many configs at once
CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
_CHUNK_ELEMENTS = 2_000_000  # resampled values held at once, to bound memory for long sample lists


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of values, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # Each run of equal values gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2  # ranks start..end-1 are start+1..end, 1-based
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def mann_whitney(base: Sequence[float], new: Sequence[float]) -> tuple[float, float]:
    """(U of NEW, two-sided p) of the Mann-Whitney test that NEW and BASE come from one distribution."""
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    n1, n2 = len(n), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("both runs need samples")
    ranks = average_ranks(np.concatenate([n, b]))
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    total = n1 + n2
    _, ties = np.unique(np.concatenate([n, b]), return_counts=True)
    tie_term = float((ties**3 - ties).sum()) / (total * (total - 1)) if total > 1 else 0.0
    variance = n1 * n2 / 12 * ((total + 1) - tie_term)
    if variance <= 0:  # every sample equal: no evidence of anything
        return u, 1.0
    shift = u - n1 * n2 / 2
    z = (shift - math.copysign(0.5, shift)) / math.sqrt(variance) if shift else 0.0
    return u, _two_sided_p(z)


def smallest_p(n_base: int, n_new: int) -> float:
    """The p of completely separated samples of these sizes: the best the test can do."""
    return mann_whitney(range(n_base), range(n_base, n_base + n_new))[1]


def _bootstrap_medians(samples: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    chunk = max(1, _CHUNK_ELEMENTS // len(samples))
    medians = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, len(samples), size=(min(chunk, resamples - start), len(samples)))
        medians.append(np.median(samples[idx], axis=1))
    return np.concatenate(medians)


def median_ratio_ci(
    base: Sequence[float],
    new: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(NEW) / median(BASE)."""
    rng = np.random.default_rng(seed)
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    ratios = _bootstrap_medians(n, resamples, rng) / _bootstrap_medians(b, resamples, rng)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class SampleTest:
    """The statistics of one config's change between two runs."""

    n_base: int
    n_new: int
    p_value: float  # Mann-Whitney, two-sided
    ratio_lo: float  # bootstrap interval of NEW median / BASE median
    ratio_hi: float
    decisive: bool  # enough samples for p to reach alpha at all
    alpha: float = ALPHA

    def supports(self, up: bool) -> bool:
        """Whether the statistics back a change in that direction (up: NEW slower / larger)."""
        beyond = self.ratio_lo > 1 if up else self.ratio_hi < 1
        return self.p_value < self.alpha and beyond


def assess_change(base: Sequence[float], new: Sequence[float], alpha: float = ALPHA, seed: int = SEED) -> SampleTest:
    """Rank test and bootstrap interval of NEW's samples against BASE's."""
    _, p = mann_whitney(base, new)
    lo, hi = median_ratio_ci(base, new, seed=seed)
    decisive = smallest_p(len(base), len(new)) < alpha
    return SampleTest(len(base), len(new), p, lo, hi, decisive, alpha)
