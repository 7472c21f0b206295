"""Maps a difficulty score to a tier: ordered tiers, ascending thresholds partition [0, 1]."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from router.errors import RouterError
from router.scorer import RouteInput, Scorer


@dataclass(frozen=True)
class Decision:
    tier: str
    score: float


class ThresholdPolicy:
    """Tier i (cheapest first) serves scores in [thresholds[i-1], thresholds[i])."""

    def __init__(self, tiers: Sequence[str], thresholds: Sequence[float]) -> None:
        if not tiers:
            raise RouterError("at least one tier is needed")
        if len(thresholds) != len(tiers) - 1:
            raise RouterError(f"{len(tiers)} tiers need {len(tiers) - 1} thresholds, got {len(thresholds)}")
        if any(not 0.0 < t < 1.0 for t in thresholds):
            raise RouterError("thresholds must lie strictly between 0 and 1")
        if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
            raise RouterError("thresholds must be strictly ascending (an equal pair makes a tier unreachable)")
        self._tiers = list(tiers)
        self._thresholds = list(thresholds)

    @property
    def tiers(self) -> list[str]:
        return list(self._tiers)

    def tier_for(self, score: float) -> str:
        return self._tiers[bisect.bisect_right(self._thresholds, score)]


class Router:
    """A scorer plus a threshold policy."""

    def __init__(self, scorer: Scorer, policy: ThresholdPolicy) -> None:
        self._scorer = scorer
        self._policy = policy

    def route(self, request: RouteInput) -> Decision:
        score = self._scorer.score(request)
        return Decision(tier=self._policy.tier_for(score), score=score)
