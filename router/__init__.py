"""Complexity router: a difficulty score in [0, 1] and thresholds that map it to the cheapest able tier."""

from router.config import FeatureWeights, RouterConfig
from router.errors import RouterError
from router.policy import Decision, Router, ThresholdPolicy
from router.scorer import Features, HeuristicScorer, RouteInput, Scorer, extract_features

__all__ = [
    "Decision",
    "FeatureWeights",
    "Features",
    "HeuristicScorer",
    "RouteInput",
    "Router",
    "RouterConfig",
    "RouterError",
    "Scorer",
    "ThresholdPolicy",
    "extract_features",
]
