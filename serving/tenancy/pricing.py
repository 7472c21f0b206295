"""What a request costs and what it saved, in micro-dollars, from the configured prices.

Saved is measured against the largest tier: a cache hit saved what the largest tier would have charged for the
same tokens minus the cache's price; an answer from a smaller tier saved the difference between the two tiers'
prices. Cost + saved by the cache + saved by routing = what every answer would have cost on the largest tier.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.config import AUTO_MODEL, StackConfig, TierConfig
from serving.tenancy.config import TenancyConfig
from serving.tenancy.windows import prompt_token_bound, token_cost_micro


@dataclass(frozen=True)
class Charge:
    cost_micro: int
    saved_cache_micro: int = 0
    saved_routing_micro: int = 0


class Prices:
    def __init__(self, config: StackConfig, tenancy: TenancyConfig) -> None:
        self._tiers = {tier.name: tier for tier in config.tiers}
        self._largest = config.tiers[-1]
        self._cache_per_1k = tenancy.cache_hit_price_per_1k_tokens

    @staticmethod
    def _on(tier: TierConfig, prompt_tokens: int, completion_tokens: int) -> int:
        return token_cost_micro(
            prompt_tokens, completion_tokens, tier.price_per_1k_prompt_tokens, tier.price_per_1k_completion_tokens
        )

    def answered(self, tier: str, prompt_tokens: int, completion_tokens: int) -> Charge:
        """A live answer (`tier` a tier's name) or a cache hit (`tier="cache"`)."""
        baseline = self._on(self._largest, prompt_tokens, completion_tokens)
        if tier == "cache":
            cost = token_cost_micro(prompt_tokens, completion_tokens, self._cache_per_1k, self._cache_per_1k)
            return Charge(cost, saved_cache_micro=max(0, baseline - cost))
        chosen = self._tiers.get(tier)
        if chosen is None:
            return Charge(0)
        cost = self._on(chosen, prompt_tokens, completion_tokens)
        return Charge(cost, saved_routing_micro=max(0, baseline - cost))

    def worst_case(self, model: str, body_bytes: int, messages: int, max_tokens: int | None, choices: int) -> int:
        """The most this request can cost: a prompt-token bound plus every completion token it may ask for, on the
        dearest tier it can reach (any tier for `auto`: escalation can go up; a pinned tier or any of its fallback
        chain), or as a cache hit."""
        if model == AUTO_MODEL:
            tiers = list(self._tiers.values())
        else:
            pinned = self._tiers[model]
            tiers = [pinned, *(self._tiers[name] for name in pinned.reliability.fallback)]
        prompt = prompt_token_bound(body_bytes, messages)
        worst = 0
        for tier in tiers:
            completion = (max_tokens or tier.engine.max_model_len) * max(1, choices)
            worst = max(worst, self._on(tier, prompt, completion))
        completion = (max_tokens or self._largest.engine.max_model_len) * max(1, choices)
        cache = token_cost_micro(prompt, completion, self._cache_per_1k, self._cache_per_1k)
        return max(worst, cache)
