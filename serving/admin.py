"""The admin API for keys and spend: `/admin/keys` (create, list, show, update, revoke, rotate) and `/admin/cost`.
Every route needs the admin key; a new or rotated key is in the response once and never again."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from serving.errors import InvalidRequest, NotFound
from serving.eval_records import EvalRecord, eval_drift, read_evals, record_eval
from serving.gateway import GatewayService, tenancy_prefix
from serving.tenancy import KeyStore, Limits
from serving.tenancy.ledger import GroupBy, parse_span, read_ledger, summarize

# The HTTP edge's body reader: the request's JSON as the model, or a 400/422 naming the field.
Parse = Callable[[Request, type[BaseModel]], Awaitable[BaseModel]]


class KeyCreate(Limits):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")
    name: str = Field(default="", max_length=200)
    models: list[str] = Field(default_factory=list)


class KeyUpdate(Limits):
    """Only the fields given change; a limit given as null is removed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    models: list[str] | None = None


def install_admin_routes(app: FastAPI, service: GatewayService, parse: Parse) -> None:
    def keys(request: Request) -> KeyStore:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.keys is None:
            raise InvalidRequest("This gateway has no Redis, so no key store.", code="keys_unavailable")
        return service.keys

    def known_models(models: list[str]) -> list[str]:
        available = [card.id for card in service.models().data]
        unknown = [m for m in models if m not in available]
        if unknown:
            raise InvalidRequest(f"Unknown model(s) {unknown}; available: {available}.", param="models")
        return models

    @app.post("/admin/keys")
    async def create_key(request: Request) -> JSONResponse:
        store = keys(request)
        body = cast(KeyCreate, await parse(request, KeyCreate))
        limits = Limits.model_validate(body.model_dump(include=set(Limits.model_fields)))
        record, key = await store.create(body.tenant, name=body.name, models=known_models(body.models), limits=limits)
        return JSONResponse({"key": key, "id": record.id, "record": record.public()}, status_code=201)

    @app.get("/admin/keys")
    async def list_keys(request: Request, tenant: str | None = None) -> dict[str, Any]:
        store = keys(request)
        return {"data": [record.public() for record in await store.records(tenant)]}

    @app.get("/admin/keys/{key_id}")
    async def show_key(request: Request, key_id: str) -> dict[str, Any]:
        record = await keys(request).get(key_id)
        if record is None:
            raise NotFound(f"No key with id '{key_id}'.", code="key_not_found")
        return record.public()

    @app.patch("/admin/keys/{key_id}")
    async def update_key(request: Request, key_id: str) -> dict[str, Any]:
        store = keys(request)
        body = cast(KeyUpdate, await parse(request, KeyUpdate))
        given = body.model_fields_set
        limits = {name: getattr(body, name) for name in Limits.model_fields if name in given}
        models = known_models(body.models) if body.models is not None else None
        record = await store.update(key_id, name=body.name, models=models, limits=limits)
        if record is None:
            raise NotFound(f"No key with id '{key_id}'.", code="key_not_found")
        return record.public()

    @app.post("/admin/keys/{key_id}/revoke")
    async def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
        record = await keys(request).revoke(key_id)
        if record is None:
            raise NotFound(f"No key with id '{key_id}'.", code="key_not_found")
        return {"id": record.id, "key": None, "record": record.public()}

    @app.post("/admin/keys/{key_id}/rotate")
    async def rotate_key(request: Request, key_id: str) -> dict[str, Any]:
        rotated = await keys(request).rotate(key_id)
        if rotated is None:
            raise NotFound(f"No key with id '{key_id}'.", code="key_not_found")
        record, key = rotated
        return {"key": key, "id": record.id, "record": record.public()}

    @app.get("/admin/drift")
    async def drift_report(request: Request) -> dict[str, Any]:
        """This replica's traffic signals, its shadow agreement signals, and the stack's recorded eval runs."""
        service.authenticate_admin(request.headers.get("authorization"))
        if service.drift is None:
            raise InvalidRequest("Drift watching is off in this stack's config.", code="drift_disabled")
        report = {"replica": service.replica, **service.drift.report()}
        shadow = service.shadow.drift if service.shadow is not None else None
        if shadow is not None:
            signals = cast(dict[str, Any], report["signals"])
            report["signals"] = {**signals, **cast(dict[str, Any], shadow.report()["signals"])}
            report["shadow_seen"] = shadow.report()["seen"]
        if service.redis is not None:
            records = await read_evals(service.redis, service.config.cache.redis.key_prefix)
            report["evals"] = eval_drift(records, service.config.drift.eval_drop)
        return report

    @app.post("/admin/evals")
    async def record_eval_run(request: Request) -> JSONResponse:
        """A golden-set run (`tierserve eval --record`), kept so metrics and the drift report follow eval scores."""
        service.authenticate_admin(request.headers.get("authorization"))
        if service.redis is None:
            raise InvalidRequest("This gateway has no Redis to keep eval runs in.", code="evals_unavailable")
        record = cast(EvalRecord, await parse(request, EvalRecord))
        await record_eval(service.redis, service.config.cache.redis.key_prefix, record)
        return JSONResponse(record.model_dump(mode="json"), status_code=201)

    @app.get("/admin/evals")
    async def list_eval_runs(request: Request, limit: int = 50) -> dict[str, Any]:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.redis is None:
            raise InvalidRequest("This gateway has no Redis to keep eval runs in.", code="evals_unavailable")
        if not 1 <= limit <= 500:
            raise InvalidRequest("limit must be between 1 and 500.", param="limit")
        records = await read_evals(service.redis, service.config.cache.redis.key_prefix, limit)
        return {"object": "list", "data": [record.model_dump(mode="json") for record in records]}

    @app.get("/admin/cost")
    async def cost_report(request: Request, since: str = "24h", by: str = "tenant") -> dict[str, Any]:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.redis is None:
            raise InvalidRequest("This gateway has no Redis, so no ledger.", code="ledger_unavailable")
        if by not in ("tenant", "key", "tier", "model", "day"):
            raise InvalidRequest("by must be one of tenant, key, tier, model, day.", param="by")
        try:
            span = parse_span(since)
        except ValueError as error:
            raise InvalidRequest(str(error), param="since") from None
        start = time.time() - span
        entries = await read_ledger(service.redis, tenancy_prefix(service.config), start)
        group: GroupBy = by  # type: ignore[assignment]
        return summarize(entries, group, start).model_dump(mode="json")
