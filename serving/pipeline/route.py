"""The route stage: a pinned model is its own tier; `auto` is scored by the router (reusing the cache's embedding,
or embedding here when the cache was bypassed) and mapped to a tier by its calibrated thresholds."""

from __future__ import annotations

import logging

from cache import SemanticCache
from router import RouteInput, Router
from serving.config import AUTO_MODEL, StackConfig
from serving.pipeline.context import RequestContext

logger = logging.getLogger(__name__)


class Route:
    name = "route"

    def __init__(self, config: StackConfig, router: Router, cache: SemanticCache | None) -> None:
        self._embed_when_bypassed = config.router.embed_when_bypassed
        self._router = router
        self._cache = cache

    async def run(self, ctx: RequestContext) -> None:
        job = ctx.job
        if ctx.guard.route_tier is not None:  # the input guard flagged it and the tenant's policy routes those
            ctx.tier = ctx.guard.route_tier
            ctx.headers |= {"x-tierserve-tier": ctx.tier, "x-tierserve-route-reason": "guard"}
            return
        if job.model != AUTO_MODEL:
            ctx.tier = job.model
            ctx.headers["x-tierserve-tier"] = ctx.tier
            return
        vector = ctx.visit.vector if ctx.visit.vector is not None else ctx.embedded.get(job.query)
        if vector is None and self._cache is not None and self._embed_when_bypassed:
            try:
                with ctx.stage("embed"):
                    vector = await self._cache.embed_async(job.query)
            except Exception as error:  # the router then scores from surface features alone
                logger.warning("embedding for the router failed for request %s: %r", job.request_id, error)
        request = RouteInput(
            text=job.query,
            max_tokens=job.max_tokens,
            earlier_turns=sum(1 for role, _ in job.context if role == "user"),
            embedding=vector,
        )
        with ctx.stage("route"):
            decision = self._router.route(request, ctx.overrides)
        ctx.trace.set(route_score=round(decision.score, 4), route_reason=decision.reason, routed_tier=decision.tier)
        ctx.metrics.route_score.observe(decision.score)
        ctx.metrics.route_decisions.labels(decision.tier, decision.reason).inc()
        logger.info(
            "request %s routed to %s (score %.4f, %s, %s)",
            job.request_id,
            decision.tier,
            decision.score,
            decision.reason,
            "embedding" if vector is not None else "features only",
        )
        ctx.decision, ctx.tier = decision, decision.tier
        ctx.headers |= {
            "x-tierserve-route-score": f"{decision.score:.4f}",
            "x-tierserve-route-reason": decision.reason,
            "x-tierserve-tier": decision.tier,
        }
