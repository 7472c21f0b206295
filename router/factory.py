"""Builds the configured router for an ordered list of tiers."""

from __future__ import annotations

from collections.abc import Sequence

from router.config import RouterConfig
from router.model import TrainedScorer, load_weights
from router.policy import Router, ThresholdPolicy
from router.scorer import HeuristicScorer, Scorer

__all__ = ["build_router", "build_scorer"]


def build_scorer(config: RouterConfig) -> Scorer:
    if config.scorer == "heuristic":
        return HeuristicScorer(config.weights)
    return TrainedScorer(load_weights(config.weights_path), priors=config.weights)


def build_router(config: RouterConfig, tiers: Sequence[str]) -> Router:
    """Tiers ordered cheapest first; raises RouterError for bad weights or thresholds."""
    return Router(build_scorer(config), ThresholdPolicy(tiers, config.thresholds))
