"""The audit log through the admin API: `/admin/audit/verify`, `/admin/audit/export`, `/admin/audit/tail` (what
`tierserve audit ... --url` calls), and one audit record for every `/admin` call, written before its response.
Export and tail also take a tenant's own API key, scoped to that tenant's records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.audit import AuditLog, iso, now_iso, read_records, verify
from serving.errors import Forbidden, InvalidRequest, ServingError
from serving.gateway import GatewayService
from serving.pipeline.context import OPEN
from serving.tenancy.ledger import parse_span


def select(
    root: Path,
    since: str | None = None,
    tenant: str | None = None,
    kind: str | None = None,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """The records of every writer under `root`, oldest first, filtered (since: "24h", "7d" or an ISO time)."""
    start = since_iso(since) if since else None
    chosen = [
        record
        for record in read_records(root)
        if (start is None or str(record.get("time", "")) >= start)
        and (tenant is None or record.get("tenant") == tenant)
        and (kind is None or record.get("kind") == kind)
        and (request_id is None or record.get("request_id") == request_id)
    ]
    return sorted(chosen, key=lambda record: (str(record.get("time", "")), int(record.get("seq", 0))))


def since_iso(since: str) -> str:
    """A `since` filter ("24h", "7d" or an ISO time) as the records' time format."""
    try:
        span = parse_span(since)
    except ValueError:
        try:
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"since must be a span (24h, 7d) or an ISO time, not {since!r}") from None
        return iso(moment)
    return iso(datetime.now(UTC) - timedelta(seconds=span))


def refusal_record(method: str, path: str, status: int, code: str | None, request_id: str) -> dict[str, Any]:
    """A request refused at the HTTP edge, before the pipeline: no tenant is recorded (its key was missing or
    wrong, or the request never got as far as being read for one)."""
    return {
        "kind": "refusal",
        "time": now_iso(),
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "error": code,
    }


def jsonl(records: list[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def install_audit_routes(app: FastAPI, service: GatewayService) -> None:
    def log(request: Request) -> AuditLog:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.audit is None:
            raise InvalidRequest("The audit log is off in this stack's config.", code="audit_disabled")
        return service.audit

    async def readable_tenant(request: Request, tenant: str | None) -> str | None:
        """The admin key reads every tenant's records; a tenant's own API key reads that tenant's only (a scoped
        reader: a security reviewer of one tenant never sees another's records)."""
        authorization = request.headers.get("authorization")
        try:
            service.authenticate_admin(authorization)
            return tenant
        except ServingError as admin_refusal:
            try:
                principal = await service.authenticate(authorization)
            except ServingError:
                raise admin_refusal from None
            if principal.key_id == OPEN.key_id:  # an open stack has no tenant keys to scope by
                raise admin_refusal from None
        if tenant is not None and tenant != principal.tenant:
            raise Forbidden("A tenant's key reads its own tenant's audit records only.", param="tenant")
        return principal.tenant

    async def selected(
        request: Request, since: str | None, tenant: str | None, kind: str | None, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        scope = await readable_tenant(request, tenant)
        if service.audit is None:
            raise InvalidRequest("The audit log is off in this stack's config.", code="audit_disabled")
        try:
            return await asyncio.to_thread(select, service.audit.root, since, scope, kind, request_id)
        except ValueError as error:
            raise InvalidRequest(str(error), param="since") from None

    @app.get("/admin/audit/verify")
    async def audit_verify(request: Request) -> dict[str, Any]:
        root = log(request).root
        return (await asyncio.to_thread(verify, root)).as_dict()

    @app.get("/admin/audit/export")
    async def audit_export(
        request: Request,
        since: str | None = None,
        tenant: str | None = None,
        kind: str | None = None,
        request_id: str | None = None,
    ) -> StreamingResponse:
        records = await selected(request, since, tenant, kind, request_id)
        return StreamingResponse(jsonl(records), media_type="application/x-ndjson")

    @app.get("/admin/audit/tail")
    async def audit_tail(request: Request, n: int = 20, tenant: str | None = None) -> StreamingResponse:
        if not 1 <= n <= 10_000:
            raise InvalidRequest("n must be between 1 and 10000.", param="n")
        records = await selected(request, None, tenant, None)
        return StreamingResponse(jsonl(records[-n:]), media_type="application/x-ndjson")

    app.add_middleware(AdminAudit, service=service)


class AdminAudit:
    """One audit record for every `/admin` call, written when its response starts (so before the client has any
    of it). A plain ASGI middleware: every other path passes straight through, streams untouched."""

    def __init__(self, app: ASGIApp, service: GatewayService) -> None:
        self._app = app
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self._service.audit
        if log is None or scope["type"] != "http" or not str(scope.get("path", "")).startswith("/admin"):
            await self._app(scope, receive, send)
            return
        request = Request(scope)

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Who: whoever holds the admin key (there is one); what: the call, never its body (keys are in it).
                await log.append(
                    {
                        "kind": "admin",
                        "time": now_iso(),
                        "method": request.method,
                        "path": request.url.path,
                        "query": dict(request.query_params),
                        "status": message["status"],
                        "request_id": request.headers.get("x-request-id"),
                    }
                )
            await send(message)

        await self._app(scope, receive, recorded)
