"""Difficulty scorers: one number in [0, 1] per request ("how hard"), CPU only, no LLM call."""

from __future__ import annotations

import math
from typing import Protocol

from router.config import FeatureWeights
from router.features import Features, RouteInput, extract_features

__all__ = ["Features", "HeuristicScorer", "RouteInput", "Scorer", "extract_features"]


class Scorer(Protocol):
    def score(self, request: RouteInput) -> float: ...


class HeuristicScorer:
    """A logistic over hand-weighted surface features: the fallback when no trained weights are wanted."""

    def __init__(self, weights: FeatureWeights) -> None:
        self._weights = weights

    def logit(self, features: Features) -> float:
        w = self._weights
        return (
            w.bias
            + w.length * features.length
            + w.code * features.code
            + w.math * features.math
            + w.reasoning * features.reasoning
            + w.output_length * features.output_length
            + w.turns * features.turns
        )

    def score(self, request: RouteInput) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(extract_features(request))))
