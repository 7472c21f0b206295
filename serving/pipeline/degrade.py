"""The degrade stage: when no tier that could answer a request is taking calls (the chosen tier and every tier of
its fallback chain have their circuit breakers open), the best cached answer of any of those tiers, at the looser
`cache.degraded_threshold` and verified like any hit, is served instead of a 503, marked
`x-tierserve-cache: degraded` and `x-tierserve-degraded: circuit_open`. Without one the request goes on to
dispatch, whose failover answers 503 with Retry-After."""

from __future__ import annotations

from collections.abc import Mapping

from cache import Outcome, SemanticCache
from serving.config import StackConfig
from serving.pipeline.context import Flights, RequestContext, job_namespace
from serving.pipeline.respond import Respond
from serving.reliability import Breakers


class Degrade:
    name = "degrade"

    def __init__(
        self,
        config: StackConfig,
        cache: SemanticCache | None,
        breakers: Breakers,
        model_versions: Mapping[str, str],
        flights: Flights,
        respond: Respond,
    ) -> None:
        self._threshold = config.cache.degraded_threshold
        self._chains = {tier.name: [tier.name, *tier.reliability.fallback] for tier in config.tiers}
        self._cache = cache
        self._breakers = breakers
        self._model_versions = model_versions
        self._flights = flights
        self._respond = respond

    def refusing(self, tier: str) -> bool:
        """Every tier of `tier`'s chain has an open breaker that will refuse calls for a while yet."""
        return all(self._breakers.retry_after_s(candidate) > 0 for candidate in self._chains[tier])

    async def run(self, ctx: RequestContext) -> None:
        cache, visit = self._cache, ctx.visit
        if cache is None or self._threshold is None or ctx.tier is None or visit.vector is None:
            return  # no cache to fall back on, or this request was not looked up (bypassed)
        if not self.refusing(ctx.tier):
            return
        job = ctx.job
        aliases = dict.fromkeys([job.model, *self._chains[ctx.tier]])
        namespaces = [job_namespace(job, alias, self._model_versions) for alias in aliases]
        with ctx.stage("cache_degraded"):
            lookup = await cache.lookup_degraded(job.tenant, namespaces, visit.vector, job.query, self._threshold)
        if lookup.answer is None:
            return
        ctx.metrics.degraded.labels(ctx.tier).inc()
        visit.land(self._flights)  # this request generates nothing: its question needs a new leader
        visit.outcome, visit.answer, visit.similarity = Outcome.HIT, lookup.answer, lookup.similarity
        ctx.headers |= {
            "x-tierserve-cache": "degraded",
            "x-tierserve-degraded": "circuit_open",
            "x-tierserve-tier": lookup.answer.tier,
        }
        if lookup.similarity is not None:
            ctx.headers["x-tierserve-similarity"] = f"{lookup.similarity:.4f}"
        ctx.trace.set(cache="degraded", similarity=lookup.similarity)
        ctx.reply = self._respond.replay(ctx, lookup.answer)
