"""The shed stage: a request for a tier that is full (its adaptive in-flight limit, serving.reliability.TierLoad)
is answered at once, 503 with Retry-After, instead of queuing behind work the tier cannot finish in time; a tenant
holding more than its share of a busy tier gets 429 first. Admitted requests free their slot when they end, and
their time to first token moves the limit."""

from __future__ import annotations

import time

from serving.config import StackConfig
from serving.errors import RateLimited, TierUnavailable
from serving.pipeline.context import RequestContext
from serving.reliability import TierLoad


class Shed:
    name = "shed"

    def __init__(self, config: StackConfig) -> None:
        self._loads: dict[str, TierLoad] = {}
        for tier in config.tiers:
            shed = tier.reliability.shed
            if not shed.enabled:
                continue
            deployment = tier.deployment
            replicas = deployment.autoscaling.max_replicas if deployment.autoscaling else deployment.num_replicas
            initial = shed.initial_limit or replicas * deployment.max_ongoing_requests
            self._loads[tier.name] = TierLoad(
                initial, shed.min_limit, shed.max_limit or 2 * initial, shed.ttft_target_s
            )

    def load(self, tier: str) -> TierLoad | None:
        return self._loads.get(tier)

    async def run(self, ctx: RequestContext) -> None:
        assert ctx.tier is not None
        load = self._loads.get(ctx.tier)
        if load is None:
            return
        tenant = ctx.job.tenant
        refusal = load.admit(tenant)
        if refusal is not None:
            ctx.metrics.shed.labels(ctx.tier, refusal).inc()
            retry_after = str(load.retry_after_s())
            if refusal == "tenant_share":
                error: RateLimited | TierUnavailable = RateLimited(
                    f"Tier '{ctx.tier}' is busy and this tenant holds more than its share of it; retry after "
                    f"{retry_after} s.",
                    code="tenant_share_exceeded",
                )
            else:
                error = TierUnavailable(
                    f"Tier '{ctx.tier}' is at capacity ({load.inflight} requests in flight); retry after "
                    f"{retry_after} s.",
                    code="overloaded",
                )
            error.headers = {"retry-after": retry_after}
            raise error
        started = time.perf_counter()
        ctx.metrics.shed_limit.labels(ctx.tier).set(load.limit)

        async def release(done: RequestContext) -> None:
            # The TTFT the client saw (streams: its first text); a whole answer gives no first-token signal.
            load.release(tenant, done.ttft, time.perf_counter() - started)
            done.metrics.shed_limit.labels(ctx.tier or "").set(load.limit)

        ctx.closers.append(release)
