"""The cache stage: an identical repeat straight from Redis (nothing embedded), then a semantic candidate from the
tenant's index, verified; on a miss, this request either joins the identical generation already in flight
(single-flight) or leads it. A hit is answered here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from cache import CachedAnswer, Outcome, SemanticCache
from serving.jobs import Job
from serving.pipeline.context import CacheVisit, Flights, RequestContext, job_namespace
from serving.pipeline.respond import Respond


class CacheLookup:
    name = "cache_lookup"

    def __init__(
        self,
        cache: SemanticCache | None,
        model_versions: Mapping[str, str],
        flights: Flights,
        respond: Respond,
        wait_s: float,
    ) -> None:
        self._cache = cache
        self._model_versions = model_versions
        self._flights = flights
        self._respond = respond
        self._wait_s = wait_s

    async def run(self, ctx: RequestContext) -> None:
        visit = ctx.visit = await self._visit(ctx)
        ctx.trace.set(cache=visit.outcome.value if visit.answer is None else "hit", similarity=visit.similarity)
        if visit.answer is not None:
            answer_from_cache(ctx, self._respond, visit.answer, visit.similarity)
            return
        ctx.headers["x-tierserve-cache"] = visit.outcome.value
        if visit.bypass_reason is not None:
            ctx.headers["x-tierserve-cache-bypass"] = visit.bypass_reason

    async def _visit(self, ctx: RequestContext) -> CacheVisit:
        cache, job = self._cache, ctx.job
        if cache is None:
            return CacheVisit(Outcome.BYPASS)
        reason = bypass_reason(cache, job)
        if reason is not None or not cache.available():
            return CacheVisit(Outcome.BYPASS, bypass_reason=reason or "unavailable")
        namespace = job_namespace(job, job.model, self._model_versions)
        # The identical repeat was looked up before the guards (serving.pipeline.cache_exact), which left it here
        # when the input guard had to screen it first.
        repeat = ctx.exact[0] if ctx.exact is not None else None
        if repeat is not None:  # an identical repeat: answered without embedding anything
            cache.count_exact_hit()
            return CacheVisit(Outcome.HIT, namespace, None, repeat, 1.0)
        vector = ctx.embedded.get(job.query)  # the input guard's, when it embedded this text already
        if vector is None:
            with ctx.stage("embed"):
                vector = await cache.embed_async(job.query)
        with ctx.stage("cache_lookup"):
            lookup = await cache.lookup(job.tenant, namespace, vector, job.query)
        visit = CacheVisit(lookup.outcome, namespace, vector, lookup.answer, lookup.similarity)
        if lookup.outcome is not Outcome.MISS:
            return visit
        visit.flight_key = (job.tenant, namespace, job.query)
        leader = self._flights.get(visit.flight_key)
        if leader is None:
            visit.flight = self._flights[visit.flight_key] = asyncio.get_running_loop().create_future()
            return visit
        # The same question is being generated right now: wait for that answer (single-flight).
        visit.answer = await self._follow(leader)
        return visit

    async def _follow(self, leader: asyncio.Future[CachedAnswer | None]) -> CachedAnswer | None:
        try:
            # shield: a follower that gives up must not cancel the leader's future for the others.
            async with asyncio.timeout(self._wait_s):
                return await asyncio.shield(leader)
        except TimeoutError:
            return None


def bypass_reason(cache: SemanticCache, job: Job) -> str | None:
    """Why this request's answer is neither looked up nor stored (x-tierserve-cache-bypass), or None."""
    return job.cache_bypass or ("temperature" if job.temperature > cache.config.max_temperature else None)


def answer_from_cache(ctx: RequestContext, respond: Respond, answer: CachedAnswer, similarity: float | None) -> None:
    """A hit (identical or similar) is the reply: its headers, and the answer replayed."""
    ctx.headers |= {"x-tierserve-cache": "hit", "x-tierserve-tier": answer.tier}
    if similarity is not None:
        ctx.headers["x-tierserve-similarity"] = f"{similarity:.4f}"
    ctx.reply = respond.replay(ctx, answer)
