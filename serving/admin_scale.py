"""Live scaling through the admin API (what `tierserve scale` calls): queue a tier's new scale for the serve process
that applies it (serving/scaling.py), follow it, and read the scale in force."""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from serving.admin import Parse
from serving.errors import InvalidRequest, NotFound, TierUnavailable
from serving.gateway import GatewayService
from serving.scaling import ScaleRequest, queue_scale, read_overrides, read_result


def install_scale_routes(app: FastAPI, service: GatewayService, parse: Parse) -> None:
    def redis(request: Request) -> Any:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.redis is None:
            raise InvalidRequest("This gateway has no Redis, so no live scaling.", code="scaling_unavailable")
        return service.redis

    @app.post("/admin/scale")
    async def scale(request: Request) -> JSONResponse:
        client = redis(request)
        body = cast(ScaleRequest, await parse(request, ScaleRequest))
        if body.tier not in {tier.name for tier in service.config.tiers}:
            raise NotFound(f"There is no tier '{body.tier}'.", code="tier_not_found", param="tier")
        prefix = service.config.cache.redis.key_prefix
        queued = await queue_scale(client, prefix, body)
        if queued is None:
            error = TierUnavailable(
                "No `tierserve serve` process is applying scale requests for this stack (one started with `serve "
                "deploy` scales through its YAML's num_replicas or autoscaling_config).",
                code="scaling_unavailable",
            )
            error.headers = {"retry-after": "10"}
            raise error
        return JSONResponse(queued.model_dump(mode="json"), status_code=202)

    @app.get("/admin/scale/{scale_id}")
    async def scale_result(request: Request, scale_id: str) -> dict[str, Any]:
        result = await read_result(redis(request), service.config.cache.redis.key_prefix, scale_id)
        if result is None:
            raise NotFound(f"No scale request '{scale_id}' (results are kept a day).", code="scale_not_found")
        return result.model_dump(mode="json")

    @app.get("/admin/scale")
    async def scale_in_force(request: Request) -> dict[str, Any]:
        overrides = await read_overrides(redis(request), service.config.cache.redis.key_prefix)
        tiers = {}
        for tier in service.config.tiers:
            live = overrides.get(tier.name)
            autoscaling = tier.deployment.autoscaling
            tiers[tier.name] = {
                "config": {"num_replicas": tier.deployment.num_replicas}
                if autoscaling is None
                else {"min_replicas": autoscaling.min_replicas, "max_replicas": autoscaling.max_replicas},
                "live": live.model_dump(exclude_defaults=True, exclude={"tier"}) if live is not None else None,
            }
        return {"tiers": tiers}
