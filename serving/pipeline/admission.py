"""The admission stage: the model exists, and the routing overrides the request asks for (pin, cap headers) are
tiers this tenant may use. Nothing is looked up or generated for a request refused here."""

from __future__ import annotations

from router import Overrides, Router
from serving.config import AUTO_MODEL, StackConfig
from serving.errors import Forbidden, InvalidRequest, NotFound
from serving.jobs import MAX_TIER_HEADER, PIN_TIER_HEADER
from serving.pipeline.context import RequestContext


class Admission:
    name = "admission"

    def __init__(self, config: StackConfig, tiers: list[str], router: Router) -> None:
        self._routing = config.router
        self._tiers = tiers
        self._router = router

    async def run(self, ctx: RequestContext) -> None:
        job = ctx.job
        if not ctx.principal.may_use(job.model):
            raise Forbidden(
                f"This API key may not use the model '{job.model}'; it may use: {', '.join(ctx.principal.models)}.",
                param="model",
                code="model_not_allowed",
            )
        if job.model != AUTO_MODEL and job.model not in self._tiers:
            raise NotFound(
                f"The model '{job.model}' does not exist. Available: {', '.join([AUTO_MODEL, *self._tiers])}.",
                param="model",
            )
        for header, value in ((PIN_TIER_HEADER, job.route_pin), (MAX_TIER_HEADER, job.route_cap)):
            if value is not None and value not in self._tiers:
                raise InvalidRequest(
                    f"{header}: unknown tier '{value}'. Tiers: {', '.join(self._tiers)}.", code="invalid_tier"
                )
        tenant = self._routing.tenants.get(job.tenant)
        if job.model == AUTO_MODEL:
            ctx.overrides = self._router.overrides(
                tenant, job.route_pin, job.route_cap, self._routing.request_overrides
            )
            return
        cap = tenant.max_tier if tenant is not None else None
        if cap is not None and self._router.policy.rank(job.model) > self._router.policy.rank(cap):
            raise Forbidden(
                f"This API key may use tiers up to '{cap}'; '{job.model}' is above it.",
                param="model",
                code="tier_not_allowed",
            )
        ctx.overrides = Overrides()
