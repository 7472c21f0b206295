"""Difficulty scorers: one number in [0, 1] per request ("how hard"), CPU only, no LLM call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from router.config import FeatureWeights
from router.features import Features, RouteInput, extract_features

__all__ = ["BlendedScorer", "Features", "HeuristicScorer", "RouteInput", "Scorer", "extract_features"]


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


class BlendedScorer:
    """A weighted mean of other scorers' scores (weights need not sum to 1)."""

    def __init__(self, parts: Sequence[tuple[Scorer, float]]) -> None:
        total = sum(weight for _, weight in parts)
        if not parts or total <= 0 or any(weight < 0 for _, weight in parts):
            raise ValueError("a blend needs scorers with non-negative weights that sum to more than 0")
        self.parts = [(scorer, weight / total) for scorer, weight in parts]

    def score(self, request: RouteInput) -> float:
        return sum(weight * scorer.score(request) for scorer, weight in self.parts if weight > 0)
