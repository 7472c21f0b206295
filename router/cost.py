"""The cost view: what a traffic split costs against sending everything to the largest tier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CostEstimate", "TierPrice", "expected_cost"]


@dataclass(frozen=True)
class TierPrice:
    name: str
    per_1k_prompt: float
    per_1k_completion: float

    def request_cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.per_1k_prompt + completion_tokens * self.per_1k_completion) / 1000


@dataclass(frozen=True)
class CostEstimate:
    per_request: float  # USD, expected
    all_largest_per_request: float
    saving: float  # fraction of the all-largest cost saved (0 when prices are all zero)


def expected_cost(
    shares: Mapping[str, float], prices: list[TierPrice], prompt_tokens: float, completion_tokens: float
) -> CostEstimate:
    """Expected cost per request of `shares` (tier -> fraction), prices ordered cheapest first."""
    by_name = {p.name: p for p in prices}
    cost = sum(share * by_name[tier].request_cost(prompt_tokens, completion_tokens) for tier, share in shares.items())
    largest = prices[-1].request_cost(prompt_tokens, completion_tokens)
    return CostEstimate(
        per_request=cost, all_largest_per_request=largest, saving=0.0 if largest <= 0 else 1.0 - cost / largest
    )
