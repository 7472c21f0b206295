"""Complexity router: a difficulty score in [0, 1] and thresholds that map it to the cheapest able tier."""

from router.config import EscalationConfig, FeatureWeights, RouterConfig, TenantRouting
from router.cost import CostEstimate, TierPrice, expected_cost
from router.errors import RouterError
from router.factory import build_router, build_scorer
from router.features import SURFACE_FEATURES, surface_vector
from router.model import Explanation, RouterWeights, TrainedScorer, load_weights
from router.policy import Decision, Overrides, Router, ThresholdPolicy
from router.scorer import BlendedScorer, Features, HeuristicScorer, RouteInput, Scorer, extract_features

__all__ = [
    "SURFACE_FEATURES",
    "CostEstimate",
    "Decision",
    "EscalationConfig",
    "Explanation",
    "FeatureWeights",
    "Features",
    "BlendedScorer",
    "HeuristicScorer",
    "Overrides",
    "RouteInput",
    "Router",
    "RouterConfig",
    "RouterError",
    "RouterWeights",
    "Scorer",
    "TenantRouting",
    "ThresholdPolicy",
    "TierPrice",
    "TrainedScorer",
    "build_router",
    "build_scorer",
    "expected_cost",
    "extract_features",
    "load_weights",
    "surface_vector",
]
