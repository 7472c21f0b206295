"""The cache-store stage: a complete answer the cache may keep is stored (with the engine's own chunks or body, so
a replay is exact), and the requests waiting on the same generation (single-flight) get it."""

from __future__ import annotations

from collections.abc import Mapping

from cache import CachedAnswer, SemanticCache
from serving.pipeline.context import RequestContext


class CacheStore:
    name = "cache_store"

    def __init__(self, cache: SemanticCache | None, model_versions: Mapping[str, str]) -> None:
        self._cache = cache
        self._model_versions = model_versions

    async def on_answer(self, ctx: RequestContext, answer: CachedAnswer) -> None:
        visit, job = ctx.visit, ctx.job
        if ctx.guard.output:
            # The output guard found something in it: neither kept nor handed to the requests waiting on it (the
            # dispatch's finish lands their flight empty and they generate their own).
            return
        if visit.flight is not None and not visit.flight.done():
            visit.flight.set_result(answer)
        if self._cache is None or not visit.storable or visit.namespace is None:
            return
        if ctx.guard.fingerprint is not None:  # an identical repeat can then be cleared without screening it again
            answer = answer.model_copy(
                update={"guard_fingerprint": ctx.guard.fingerprint, "guard_score": ctx.guard.score}
            )
        with ctx.stage("cache_store"):
            await self._cache.store(
                job.tenant,
                visit.namespace,
                job.query,
                visit.vector,
                answer,
                model=job.model,
                model_version=self._model_versions[job.model],
            )
