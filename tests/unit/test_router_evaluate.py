"""router.evaluate: PGR curve, APGR and CPT on outcomes whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from router.errors import RouterError
from router.evaluate import cpt, evaluate_scores, pgr_curve

# 4 prompts: only #0 and #1 are won by the strong model alone; #2 both right, #3 both wrong.
WEAK = np.array([False, False, True, False])
STRONG = np.array([True, True, True, False])


def test_perfect_ranking_recovers_the_gap_first() -> None:
    shares, pgr = pgr_curve(np.array([0.9, 0.8, 0.1, 0.2]), WEAK, STRONG)
    assert shares.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pgr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    report = evaluate_scores(np.array([0.9, 0.8, 0.1, 0.2]), WEAK, STRONG)
    # Area: 0.25*0.25 + 0.25*0.75 + 0.5*1 = 0.75; half the gap at 25 % of calls, 80 % at 25 % + 0.6 * 25 %.
    assert report.apgr == pytest.approx(0.75)
    assert report.cpt50 == pytest.approx(0.25)
    assert report.cpt80 == pytest.approx(0.25 + 0.25 * 0.6)
    assert report.weak_accuracy == 0.25 and report.strong_accuracy == 0.75
    assert report.n == 4


def test_reversed_ranking_is_worse_than_random() -> None:
    report = evaluate_scores(np.array([0.1, 0.2, 0.9, 0.8]), WEAK, STRONG)
    assert report.apgr == pytest.approx(0.25)
    assert report.cpt50 == pytest.approx(0.75)


def test_constant_score_is_exactly_random() -> None:
    # Equal scores form one group: expected quality grows linearly, as with random tie-breaking.
    rng = np.random.default_rng(0)
    weak = rng.random(500) < 0.6
    strong = weak | (rng.random(500) < 0.5)
    report = evaluate_scores(np.full(500, 0.3), weak, strong)
    assert report.apgr == pytest.approx(0.5)
    assert report.cpt50 == pytest.approx(0.5)
    assert report.cpt80 == pytest.approx(0.8)


def test_random_scores_average_near_half_and_oracle_is_best() -> None:
    rng = np.random.default_rng(1)
    weak = rng.random(4000) < 0.6
    strong = weak | (rng.random(4000) < 0.5)
    report = evaluate_scores(rng.random(4000), weak, strong)
    assert report.apgr == pytest.approx(0.5, abs=0.03)
    assert report.oracle_apgr > 0.9
    assert report.curve[0].pgr == 0.0 and report.curve[-1].pgr == pytest.approx(1.0)
    assert report.curve[-1].quality == pytest.approx(report.strong_accuracy)


def test_cpt_interpolates_between_boundaries() -> None:
    shares = np.array([0.0, 0.5, 1.0])
    pgr = np.array([0.0, 0.4, 1.0])
    assert cpt(shares, pgr, 0.5) == pytest.approx(0.5 + 0.5 * (0.1 / 0.6))


def test_no_gap_is_a_clear_error() -> None:
    with pytest.raises(RouterError, match="not better"):
        evaluate_scores(np.array([0.1, 0.2]), np.array([True, False]), np.array([True, False]))
    with pytest.raises(RouterError, match="equal length"):
        evaluate_scores(np.array([0.1]), np.array([True, False]), np.array([True, True]))


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    weak = rng.random(300) < 0.6
    strong = weak | (rng.random(300) < 0.5)
    scores = (~weak).astype(float) + rng.normal(0, 1.0, 300)
    report = evaluate_scores(scores, weak, strong, bootstrap=300)
    assert report.apgr_ci95 is not None
    low, high = report.apgr_ci95
    assert low < report.apgr < high and high - low < 0.3
    assert evaluate_scores(scores, weak, strong, bootstrap=300).apgr_ci95 == report.apgr_ci95
    assert evaluate_scores(scores, weak, strong).apgr_ci95 is None
