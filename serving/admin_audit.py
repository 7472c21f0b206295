"""The audit log through the admin API: `/admin/audit/verify`, `/admin/audit/export`, `/admin/audit/tail` (what
`tierserve audit ... --url` calls), and one audit record for every `/admin` call, written before its response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from serving.audit import AuditLog, now_iso, read_records, verify
from serving.errors import InvalidRequest
from serving.gateway import GatewayService
from serving.tenancy.ledger import parse_span


def select(
    root: Path, since: str | None = None, tenant: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """The records of every writer under `root`, oldest first, filtered (since: "24h", "7d" or an ISO time)."""
    start = _since(since) if since else None
    chosen = [
        record
        for record in read_records(root)
        if (start is None or str(record.get("time", "")) >= start)
        and (tenant is None or record.get("tenant") == tenant)
        and (kind is None or record.get("kind") == kind)
    ]
    return sorted(chosen, key=lambda record: (str(record.get("time", "")), int(record.get("seq", 0))))


def _since(since: str) -> str:
    try:
        span = parse_span(since)
    except ValueError:
        try:
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"since must be a span (24h, 7d) or an ISO time, not {since!r}") from None
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (datetime.now(UTC) - timedelta(seconds=span)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonl(records: list[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def install_audit_routes(app: FastAPI, service: GatewayService) -> None:
    def log(request: Request) -> AuditLog:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.audit is None:
            raise InvalidRequest("The audit log is off in this stack's config.", code="audit_disabled")
        return service.audit

    def selected(request: Request, since: str | None, tenant: str | None, kind: str | None) -> list[dict[str, Any]]:
        root = log(request).root
        try:
            return select(root, since, tenant, kind)
        except ValueError as error:
            raise InvalidRequest(str(error), param="since") from None

    @app.get("/admin/audit/verify")
    async def audit_verify(request: Request) -> dict[str, Any]:
        root = log(request).root
        return (await asyncio.to_thread(verify, root)).as_dict()

    @app.get("/admin/audit/export")
    async def audit_export(
        request: Request, since: str | None = None, tenant: str | None = None, kind: str | None = None
    ) -> StreamingResponse:
        records = await asyncio.to_thread(selected, request, since, tenant, kind)
        return StreamingResponse(jsonl(records), media_type="application/x-ndjson")

    @app.get("/admin/audit/tail")
    async def audit_tail(request: Request, n: int = 20, tenant: str | None = None) -> StreamingResponse:
        if not 1 <= n <= 10_000:
            raise InvalidRequest("n must be between 1 and 10000.", param="n")
        records = await asyncio.to_thread(selected, request, None, tenant, None)
        return StreamingResponse(jsonl(records[-n:]), media_type="application/x-ndjson")

    @app.middleware("http")
    async def audit_admin_calls(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if service.audit is not None and request.url.path.startswith("/admin"):
            # Who: whoever holds the admin key (there is one); what: the call, never its body (keys are in it).
            await service.audit.append(
                {
                    "kind": "admin",
                    "time": now_iso(),
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "status": response.status_code,
                    "request_id": request.headers.get("x-request-id"),
                }
            )
        return response
