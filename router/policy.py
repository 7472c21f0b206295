"""Maps a difficulty score to a tier: ordered tiers, ascending thresholds partition [0, 1]; overrides pin or
cap the tier (per tenant, per request)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from router.config import EscalationConfig, TenantRouting
from router.errors import RouterError
from router.scorer import RouteInput, Scorer

Reason = Literal["score", "pinned", "capped"]
Failure = Literal["error", "empty_length"]


@dataclass(frozen=True)
class Decision:
    tier: str
    score: float
    reason: Reason = "score"


@dataclass(frozen=True)
class Overrides:
    """`pin`: use this tier whatever the score; `cap`: never above this tier (the cap wins over a pin)."""

    pin: str | None = None
    cap: str | None = None


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
        self._rank = {name: i for i, name in enumerate(self._tiers)}

    @property
    def tiers(self) -> list[str]:
        return list(self._tiers)

    @property
    def thresholds(self) -> list[float]:
        return list(self._thresholds)

    def tier_for(self, score: float) -> str:
        return self._tiers[bisect.bisect_right(self._thresholds, score)]

    def rank(self, tier: str) -> int:
        """Position of a tier, cheapest first."""
        try:
            return self._rank[tier]
        except KeyError:
            raise RouterError(f"unknown tier '{tier}' (tiers: {', '.join(self._tiers)})") from None

    def next_tier(self, tier: str, cap: str | None = None) -> str | None:
        """The tier above `tier`, if there is one at or below `cap`."""
        above = self.rank(tier) + 1
        limit = self.rank(cap) if cap is not None else len(self._tiers) - 1
        return self._tiers[above] if above <= limit else None

    def lower(self, a: str | None, b: str | None) -> str | None:
        """The cheaper of two optional caps."""
        if a is None or b is None:
            return a if b is None else b
        return a if self.rank(a) <= self.rank(b) else b


class Router:
    """A scorer plus a threshold policy, with optional pin/cap overrides."""

    def __init__(self, scorer: Scorer, policy: ThresholdPolicy) -> None:
        self._scorer = scorer
        self._policy = policy

    @property
    def policy(self) -> ThresholdPolicy:
        return self._policy

    @property
    def scorer(self) -> Scorer:
        return self._scorer

    def overrides(
        self, tenant: TenantRouting | None, pin: str | None = None, cap: str | None = None, allow_request: bool = True
    ) -> Overrides:
        """A request's pin/cap (ignored unless `allow_request`) within its tenant's: the tenant's cap always holds."""
        for name in (pin, cap, *((tenant.pin_tier, tenant.max_tier) if tenant is not None else ())):
            if name is not None:
                self._policy.rank(name)  # raises RouterError for an unknown tier
        if not allow_request:
            pin = cap = None
        tenant_pin = tenant.pin_tier if tenant is not None else None
        tenant_cap = tenant.max_tier if tenant is not None else None
        return Overrides(pin=pin or tenant_pin, cap=self._policy.lower(tenant_cap, cap))

    def escalation_target(
        self, rules: EscalationConfig, tier: str, cap: str | None, failure: Failure | None
    ) -> str | None:
        """The tier to retry on after `failure` (None: whether escalation is possible at all), or None."""
        if not rules.enabled:
            return None
        if (failure == "error" and not rules.on_error) or (failure == "empty_length" and not rules.on_empty_length):
            return None
        if failure is None and not (rules.on_error or rules.on_empty_length):
            return None
        return self._policy.next_tier(tier, cap)

    def route(self, request: RouteInput, overrides: Overrides | None = None) -> Decision:
        score = self._scorer.score(request)
        tier = self._policy.tier_for(score)
        reason: Reason = "score"
        if overrides is not None:
            if overrides.pin is not None:
                tier, reason = self._policy.tiers[self._policy.rank(overrides.pin)], "pinned"
            if overrides.cap is not None and self._policy.rank(tier) > self._policy.rank(overrides.cap):
                tier, reason = overrides.cap, "capped"
        return Decision(tier=tier, score=score, reason=reason)
