"""The exact-repeat stage: a request identical to one already answered (same tenant, model, context, parameters and
question) is answered from Redis before the guards embed and scan it, when the input guard clears it from what it
found the first time (`InputGuard.cleared`: same texts and detectors, same verdict, under today's policy). Without
that, or when the guard must look again, the finding waits for the cache stage after the guards (the one lookup
of the exact key).

Why it goes first: the injection classifier embeds every user message (~11 ms on 2 cores); an identical repeat
answered after it cost 22 ms instead of 2 (docs/cache-benchmarks.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cache import CachedAnswer, Outcome, SemanticCache
from serving.pipeline.cache_lookup import answer_from_cache, bypass_reason
from serving.pipeline.context import CacheVisit, RequestContext, job_namespace
from serving.pipeline.respond import Respond

Clearance = Callable[[RequestContext, CachedAnswer], bool]


class ExactRepeat:
    name = "cache_exact"

    def __init__(
        self,
        cache: SemanticCache,
        model_versions: Mapping[str, str],
        respond: Respond,
        cleared: Clearance | None,
    ) -> None:
        self._cache = cache
        self._model_versions = model_versions
        self._respond = respond
        self._cleared = cleared  # the input guard's word on a repeat (None: no guard, nothing to clear)

    async def run(self, ctx: RequestContext) -> None:
        cache, job = self._cache, ctx.job
        if bypass_reason(cache, job) is not None or not cache.available():
            return  # the cache stage says why
        namespace = job_namespace(job, job.model, self._model_versions)
        with ctx.stage("cache_exact"):
            exact = await cache.lookup_exact(job.tenant, namespace, job.query)
        answer = exact.answer if exact is not None else None
        if answer is None or (self._cleared is not None and not self._cleared(ctx, answer)):
            ctx.exact = (answer,)
            return
        cache.count_exact_hit()
        ctx.visit = CacheVisit(Outcome.HIT, namespace, None, answer, 1.0)
        ctx.trace.set(cache="hit", similarity=1.0)
        answer_from_cache(ctx, self._respond, answer, 1.0)
