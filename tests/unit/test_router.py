"""router: threshold policies map scores to tiers; the heuristic scorer ranks hard prompts above easy ones."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from router import Decision, RouteInput, Router, RouterConfig
from router.config import FeatureWeights
from router.errors import RouterError
from router.policy import ThresholdPolicy
from router.scorer import HeuristicScorer, extract_features

EASY = "hi"
CODE = "Write a Python function that parses a CSV file and returns the rows as dicts."
MATH = "Prove that the integral of 2x from 0 to 3 equals 9, and compute 17 * 23."
MULTI_STEP = (
    "Explain step by step why the scheduler in our distributed system deadlocks when two workers hold "
    "locks in opposite order, compare the trade-offs of three possible fixes, analyze their implications "
    "for throughput and latency under heavy load, and justify which design you would choose for production."
)


def test_one_tier_takes_everything() -> None:
    policy = ThresholdPolicy(["only"], [])
    assert {policy.tier_for(s) for s in (0.0, 0.3, 0.99, 1.0)} == {"only"}
    assert policy.tiers == ["only"]


def test_two_tiers_boundary_goes_up() -> None:
    policy = ThresholdPolicy(["small", "large"], [0.5])
    assert policy.tier_for(0.0) == "small"
    assert policy.tier_for(0.4999) == "small"
    assert policy.tier_for(0.5) == "large"  # a score equal to the threshold belongs to the higher tier
    assert policy.tier_for(1.0) == "large"


def test_three_and_more_tiers() -> None:
    policy = ThresholdPolicy(["s", "m", "l"], [0.3, 0.7])
    assert [policy.tier_for(x) for x in (0.0, 0.29, 0.3, 0.69, 0.7, 1.0)] == ["s", "s", "m", "m", "l", "l"]
    four = ThresholdPolicy(["a", "b", "c", "d"], [0.25, 0.5, 0.75])
    assert [four.tier_for(x) for x in (0.1, 0.25, 0.6, 0.75, 0.9)] == ["a", "b", "c", "d", "d"]


def test_tiers_property_is_a_copy() -> None:
    policy = ThresholdPolicy(["small", "large"], [0.5])
    policy.tiers.append("mutated")
    assert policy.tiers == ["small", "large"]


@pytest.mark.parametrize(
    ("tiers", "thresholds", "needle"),
    [
        ([], [], "at least one tier"),
        (["small", "large"], [], "2 tiers need 1 thresholds, got 0"),
        (["small", "large"], [0.3, 0.6], "2 tiers need 1 thresholds, got 2"),
        (["s", "m", "l"], [0.7, 0.3], "ascending"),
    ],
)
def test_bad_thresholds_raise_router_error(tiers: list[str], thresholds: list[float], needle: str) -> None:
    with pytest.raises(RouterError, match=needle):
        ThresholdPolicy(tiers, thresholds)


def test_router_combines_scorer_and_policy() -> None:
    class Fixed:
        def __init__(self, value: float) -> None:
            self.value = value

        def score(self, request: RouteInput) -> float:
            return self.value

    assert Router(Fixed(0.2), ThresholdPolicy(["small", "large"], [0.5])).route(RouteInput("x")) == Decision(
        "small", 0.2
    )
    assert Router(Fixed(0.5), ThresholdPolicy(["small", "large"], [0.5])).route(RouteInput("x")).tier == "large"


def _score(text: str, **kwargs: object) -> float:
    return HeuristicScorer(FeatureWeights()).score(RouteInput(text, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [EASY, "", CODE, MATH, MULTI_STEP, "word " * 5000, "why " * 1000 + "```"])
def test_scores_lie_in_the_unit_interval(text: str) -> None:
    score = _score(text, max_tokens=100_000, earlier_turns=50)
    assert 0.0 <= score <= 1.0
    assert 0.0 <= _score(text) <= 1.0


def test_hard_prompts_score_higher_than_hi() -> None:
    easy = _score(EASY)
    assert easy < 0.5
    for hard in (CODE, MATH, MULTI_STEP):
        assert _score(hard) > easy, hard
    # Under the default threshold the easy prompt stays on the small tier; the multi-step one leaves it.
    policy = ThresholdPolicy(["small", "large"], RouterConfig().thresholds)
    assert policy.tier_for(easy) == "small"
    assert policy.tier_for(_score(MULTI_STEP)) == "large"


def test_longer_outputs_and_deeper_conversations_score_higher() -> None:
    assert _score(EASY, max_tokens=4096) > _score(EASY, max_tokens=64)
    assert _score(EASY, earlier_turns=6) > _score(EASY, earlier_turns=0)


def test_embedding_is_accepted_but_not_required() -> None:
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    assert _score(CODE, embedding=vector) == _score(CODE)


def test_extract_features() -> None:
    easy = extract_features(RouteInput(EASY))
    assert (easy.length, easy.code, easy.math, easy.reasoning, easy.output_length, easy.turns) == (
        0,
        0,
        0,
        0,
        0,
        0,
    )
    code = extract_features(RouteInput(CODE, max_tokens=1024, earlier_turns=2))
    assert code.code == 1.0 and code.output_length == pytest.approx(2.0) and code.turns == 2.0
    assert extract_features(RouteInput(MATH)).math == 1.0
    assert extract_features(RouteInput(MULTI_STEP)).reasoning == 2.0  # capped
    assert extract_features(RouteInput("word " * 64)).length == pytest.approx(2.0)


def test_weights_steer_the_score() -> None:
    no_code = HeuristicScorer(FeatureWeights(code=0.0)).score(RouteInput(CODE))
    assert no_code < HeuristicScorer(FeatureWeights()).score(RouteInput(CODE))


def test_router_config_defaults() -> None:
    config = RouterConfig()
    assert config.thresholds == [0.5]
    assert config.weights == FeatureWeights()


@pytest.mark.parametrize(
    ("thresholds", "needle"),
    [
        ([0.7, 0.3], "strictly ascending"),
        ([0.5, 0.5], "strictly ascending"),
        ([0.0], "strictly between 0 and 1"),
        ([1.0], "strictly between 0 and 1"),
        ([-0.2, 0.5], "strictly between 0 and 1"),
        ([0.5, 1.2], "strictly between 0 and 1"),
    ],
)
def test_router_config_rejects_bad_thresholds(thresholds: list[float], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        RouterConfig(thresholds=thresholds)


def test_router_config_forbids_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RouterConfig.model_validate({"thresholds": [0.5], "threshold": 0.5})
    assert RouterConfig(thresholds=[0.2, 0.4, 0.9]).thresholds == [0.2, 0.4, 0.9]
