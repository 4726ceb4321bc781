"""Claims of the form "A is more than k x faster than B": the one rule every verdict of the suite
judges them by, and the words the reports state it in.

Each comparison of A with one baseline B (at one config, or one T) is judged from the range of
B's time / A's time that its evidence allows:

- holds: all of the range is above k;
- does not hold: all of it is at or below k;
- not enough evidence: the range reaches both sides of k, or the evidence is too thin to carry
  either answer; the comparison then says what would settle it.

A sweep's evidence is the p20-p80 spread of both times (B p20 / A p80 to B p80 / A p20). A
time-to-solve run's evidence is its seeds (B's fastest seed / A's slowest to B's slowest / A's
fastest), at least MIN_SEEDS of each model, with a rank test over the seeds for when more seeds
overlap: the range of all seeds only widens as seeds are added, the test sharpens.

A verdict over several comparisons is definite only when no undecided comparison could change
it, whichever way it turned out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from suite.render.stats import ALPHA, mann_whitney, smallest_p

HOLDS = "holds"
FAILS = "does not hold"
UNSURE = "not enough evidence"
PARTLY = "partly"
NO_DATA = "no data"

MIN_SEEDS = 3  # fewer seeds of either model decide nothing, however far apart they are
QUIETER = "narrower p20-p80 spreads (a quieter machine)"

Seed = tuple[float, float]  # bounds of one seed's time: (t, t) when it reached the target, (spent, inf) when not


@dataclass(frozen=True)
class Judgement:
    """One comparison: its verdict, the range of baseline time / subject time its evidence allows,
    and, when undecided, what would settle it."""

    verdict: str
    low: float
    high: float
    settle: str = ""
    by_rank_test: float | None = None  # the p of the rank test that decided what the range left open


def judge(low: float, high: float, factor: float) -> str:
    """The rule itself, on the range [low, high] of baseline time / subject time."""
    if low > factor:
        return HOLDS
    if high <= factor:
        return FAILS
    return UNSURE


def judge_spread(low: float, high: float, factor: float) -> Judgement:
    """A sweep's comparison, from baseline p20 / subject p80 (low) and baseline p80 / subject p20 (high)."""
    verdict = judge(low, high, factor)
    return Judgement(verdict, low, high, QUIETER if verdict == UNSURE else "")


def seeds_to_decide() -> int:
    """The fewest seeds of each model with which the rank test can reach ALPHA at all."""
    n = MIN_SEEDS
    while smallest_p(n, n) >= ALPHA:
        n += 1
    return n


def _rank_test(subject: Sequence[Seed], baseline: Sequence[Seed], factor: float) -> tuple[str, float] | None:
    """HOLDS or FAILS with its p where the seeds' ranks decide, each side tested with the bounds
    least favourable to it (an unsolved seed at its floor or at infinity); None otherwise."""
    if smallest_p(len(subject), len(baseline)) >= ALPHA:
        return None
    half = len(subject) * len(baseline) / 2
    u, p = mann_whitney([factor * s[1] for s in subject], [b[0] for b in baseline])  # U of the baseline
    if p < ALPHA and u > half:
        return HOLDS, p
    u, p = mann_whitney([factor * s[0] for s in subject], [b[1] for b in baseline])
    if p < ALPHA and u < half:
        return FAILS, p
    return None


def _ratio(baseline: float, subject: float) -> float:
    # A seed may reach the target at its first evaluation, before any training time.
    if subject == 0:
        return math.inf if baseline > 0 else math.nan
    return baseline / subject


def judge_seeds(subject: Sequence[Seed], baseline: Sequence[Seed], factor: float) -> Judgement:
    """A time-to-solve comparison from each model's seeds (bounds of each seed's time)."""
    if not subject or not baseline:
        raise ValueError("a comparison needs seeds of both models")
    low = _ratio(min(b[0] for b in baseline), max(s[1] for s in subject))
    high = _ratio(max(b[1] for b in baseline), min(s[0] for s in subject))
    unsolved = any(math.isinf(t[1]) for t in (*subject, *baseline))
    if min(len(subject), len(baseline)) < MIN_SEEDS:
        settle = [f"at least {MIN_SEEDS} seeds of each model"] + (["a longer budget"] if unsolved else [])
        return Judgement(UNSURE, low, high, " and ".join(settle))
    verdict = judge(low, high, factor)
    if verdict != UNSURE:
        return Judgement(verdict, low, high)
    decided = _rank_test(subject, baseline, factor)
    if decided is not None:
        return Judgement(decided[0], low, high, by_rank_test=decided[1])
    settle = (
        "a longer budget" if unsolved else f"more seeds (the rank test can decide from {seeds_to_decide()} of each)"
    )
    return Judgement(UNSURE, low, high, settle)


# ---------------------------------------------------------------------------- several comparisons


def against_each(verdicts: Iterable[str]) -> str:
    """One claim against several baselines at once: it holds when it holds against each, and does
    not hold when it fails against any."""
    found = list(verdicts)
    if not found:
        return NO_DATA
    if FAILS in found:
        return FAILS
    return HOLDS if all(v == HOLDS for v in found) else UNSURE


def where_it_holds(verdicts: Iterable[str]) -> str:
    """One claim over several configs: holds at all, at none, or partly (it held at some and
    failed at others, which no undecided config can change)."""
    found = set(verdicts)
    if not found:
        return NO_DATA
    if found == {HOLDS}:
        return HOLDS
    if found == {FAILS}:
        return FAILS
    return PARTLY if {HOLDS, FAILS} <= found else UNSURE


def names(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else list(items))


def scope(ran: Sequence[str], not_run: Sequence[str] = ()) -> str:
    """Which baselines a verdict was computed over, and which of those its claim names were not run:
    'against lstm; gru and transformer not run'."""
    parts = ([f"against {names(ran)}"] if ran else []) + ([f"{names(not_run)} not run"] if not_run else [])
    return "; ".join(parts)


# ---------------------------------------------------------------------------- the rule in words

SPREAD_EVIDENCE = (
    "The evidence here is the p20-p80 spread of both times: the range runs from baseline p20 / IndRNN p80 to "
    f"baseline p80 / IndRNN p20. Where it reaches both sides, {QUIETER} would settle it: more repeats sharpen "
    "the quantiles but do not narrow them."
)


def seeds_evidence() -> str:
    by_chance = math.comb(2 * MIN_SEEDS, MIN_SEEDS)
    return (
        f"The evidence here is each model's seeds, at least {MIN_SEEDS} of each: the range runs from the baseline's "
        "fastest seed / the IndRNN's slowest to the baseline's slowest / the IndRNN's fastest, and a seed that "
        f"stopped before the target counts as anywhere beyond the seconds it trained. With {MIN_SEEDS} seeds each, "
        f"two equally fast models give ranges separated in the IndRNN's favour 1 time in {by_chance} by chance. "
        f"Where the ranges overlap, a Mann-Whitney rank test over the seeds at p < {ALPHA:g} decides instead (it "
        f"can from {seeds_to_decide()} seeds of each)."
    )


def statement(factor: float, evidence: str, combined: str) -> str:
    """The rule as a report states it: k, the evidence of this kind of run, and how this report's
    verdict combines its comparisons."""
    return (
        "How a verdict is reached (one rule for every verdict of this suite): each comparison of the IndRNN "
        "with one baseline is judged from the range of baseline time / IndRNN time its evidence allows: "
        f"**{HOLDS}** when all of the range is above {factor:g}, **{FAILS}** when all of it is at or below "
        f"{factor:g}, and otherwise **{UNSURE}**, with what would settle it. {evidence} {combined} A verdict "
        "over several comparisons is definite only when no undecided comparison could change it."
    )
