"""The one rule every verdict follows: a comparison from the range its evidence allows, several
comparisons combined only as far as the undecided ones cannot change the answer."""

import math

import pytest

from suite.render import claims
from suite.render.claims import FAILS, HOLDS, NO_DATA, PARTLY, UNSURE
from suite.render.stats import ALPHA, smallest_p


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(10.5, 12.0, HOLDS), (9.5, 11.0, UNSURE), (5.0, 10.0, FAILS), (10.0, 10.0, FAILS), (0.0, math.inf, UNSURE)],
)
def test_a_comparison_is_decided_only_by_a_range_on_one_side_of_k(low, high, verdict):
    assert claims.judge(low, high, 10.0) == verdict


def test_an_undecided_spread_says_what_would_settle_it():
    assert claims.judge_spread(9.0, 11.0, 10.0).settle == claims.QUIETER
    assert claims.judge_spread(11.0, 12.0, 10.0).settle == ""


def solved(*times: float) -> list[claims.Seed]:
    return [(t, t) for t in times]


def test_seeds_need_three_of_each_model_however_far_apart():
    two = claims.judge_seeds(solved(1.0, 1.1), solved(5.0, 6.0, 7.0), 1.0)
    assert two.verdict == UNSURE and two.settle == "at least 3 seeds of each model"
    assert (two.low, two.high) == pytest.approx((5.0 / 1.1, 7.0 / 1.0))
    assert claims.judge_seeds(solved(1.0, 1.1, 1.2), solved(5.0, 6.0, 7.0), 1.0).verdict == HOLDS
    assert claims.judge_seeds(solved(5.0, 6.0, 7.0), solved(1.0, 1.1, 1.2), 1.0).verdict == FAILS


def test_an_unsolved_seed_counts_anywhere_beyond_what_it_trained():
    unsolved = [(8.0, math.inf)] * 3
    holds = claims.judge_seeds(solved(1.0, 2.0, 4.0), unsolved, 1.0)
    assert (holds.verdict, holds.low, holds.high) == (HOLDS, 2.0, math.inf)
    # The IndRNN stopped at 8 s: a baseline that got there in 4 s to 9 s may or may not have been faster.
    open_question = claims.judge_seeds(unsolved, solved(4.0, 5.0, 9.0), 1.0)
    assert open_question.verdict == UNSURE and open_question.settle == "a longer budget"


def test_the_rank_test_needs_as_many_seeds_as_can_reach_alpha():
    n = claims.seeds_to_decide()
    assert smallest_p(n - 1, n - 1) >= ALPHA > smallest_p(n, n)
    # Ranges that overlap by one seed: the test decides with n seeds of each, not with fewer.
    fast, slow = [1.0 + i for i in range(n)], [n - 0.5 + i for i in range(n)]
    decided = claims.judge_seeds(solved(*fast), solved(*slow), 1.0)
    assert decided.verdict == HOLDS and decided.by_rank_test < ALPHA and decided.low < 1
    few = claims.judge_seeds(solved(*fast[1:]), solved(*slow[:-1]), 1.0)
    assert few.verdict == UNSURE and few.settle.startswith("more seeds")


@pytest.mark.parametrize(
    ("verdicts", "each", "where"),
    [
        ([], NO_DATA, NO_DATA),
        ([HOLDS, HOLDS], HOLDS, HOLDS),
        ([FAILS, FAILS], FAILS, FAILS),
        ([HOLDS, FAILS], FAILS, PARTLY),
        ([HOLDS, UNSURE], UNSURE, UNSURE),
        ([FAILS, UNSURE], FAILS, UNSURE),
        ([HOLDS, FAILS, UNSURE], FAILS, PARTLY),
    ],
)
def test_several_comparisons_are_decided_only_where_no_undecided_one_could_change_it(verdicts, each, where):
    assert claims.against_each(verdicts) == each
    assert claims.where_it_holds(verdicts) == where


def test_a_verdict_names_what_it_was_computed_over():
    assert claims.scope(["lstm"], ["gru", "transformer"]) == "against lstm; gru and transformer not run"
    assert claims.scope(["lstm", "gru", "transformer"]) == "against lstm, gru and transformer"
    assert claims.scope([], ["lstm"]) == "lstm not run"


def test_the_rule_is_stated_with_its_k_and_evidence():
    text = claims.statement(10, claims.SPREAD_EVIDENCE, "Combined so.")
    assert "above 10," in text and "at or below 10," in text and "baseline p20 / IndRNN p80" in text
    assert "Combined so." in text
    assert f"at least {claims.MIN_SEEDS} of each" in claims.seeds_evidence()
