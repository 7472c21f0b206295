"""Builds the configured router for an ordered list of tiers."""

from __future__ import annotations

from collections.abc import Sequence

from router.config import RouterConfig
from router.model import TrainedScorer, load_weights
from router.policy import Router, ThresholdPolicy
from router.scorer import BlendedScorer, HeuristicScorer, Scorer

__all__ = ["build_router", "build_scorer"]


def build_scorer(config: RouterConfig) -> Scorer:
    heuristic = HeuristicScorer(config.weights)
    if config.scorer == "heuristic":
        return heuristic
    trained = TrainedScorer(load_weights(config.weights_path), priors=config.weights)
    if config.scorer == "trained":
        return trained
    share = config.blend_trained_share
    return BlendedScorer([(trained, share), (heuristic, 1.0 - share)])


def build_router(config: RouterConfig, tiers: Sequence[str]) -> Router:
    """Tiers ordered cheapest first; raises RouterError for bad weights or thresholds."""
    return Router(build_scorer(config), ThresholdPolicy(tiers, config.thresholds))
