"""The HTTP edge: FastAPI routes over GatewayService; every error leaves as OpenAI-style JSON."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cache import SemanticCache, TokenCountingEmbedder
from serving.admin import install_admin_routes
from serving.admin_audit import install_audit_routes, refusal_record
from serving.admin_prompts import install_prompt_routes
from serving.admin_scale import install_scale_routes
from serving.admin_status import install_status_routes
from serving.body import parse_body
from serving.config import AUTO_MODEL
from serving.embeddings import EMBEDDING_MODEL, EmbeddingsRequest, EmbeddingsService
from serving.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    ServingError,
    from_errors,
    from_validation_error,
)
from serving.gateway import GatewayService
from serving.jobs import job_from_chat, job_from_completion, with_request_headers
from serving.openapi import install_openapi
from serving.pipeline.context import Reply
from serving.protocol import ChatCompletionRequest, CompletionRequest, ErrorBody, ErrorResponse, InvalidateRequest

logger = logging.getLogger(__name__)

_Body = TypeVar("_Body", bound=BaseModel)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completion", "/v1/embeddings": "embeddings"}
_STATUS_TYPES = {
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
}


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=type_, code=code))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    # Reuse the caller's (or Ray Serve proxy's) id so logs, traces and the response id line up.
    given = request.headers.get("x-request-id", "")
    return given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex


async def _read_json(request: Request, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """The body's bytes and its parsed object. Anything that is not one finite, reasonably nested JSON object
    in UTF-8 is a 400 here, before any stage sees it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {max_bytes} bytes.")
    # Count while reading: a chunked body has no Content-Length to check up front.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"Request body exceeds the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    data = parse_body(raw)
    return raw, data


def _validate(model: type[_Body], data: dict[str, Any]) -> _Body:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise from_validation_error(error) from None


async def _parse(request: Request, model: type[_Body], max_bytes: int) -> _Body:
    _, data = await _read_json(request, max_bytes)
    return _validate(model, data)


def build_http_app(service: GatewayService, *, echo_request_id: bool = True) -> FastAPI:
    """`echo_request_id=False` under Ray Serve, whose proxy already returns its x-request-id header."""
    app = FastAPI(title="tierserve", docs_url=None, redoc_url=None)
    max_bytes = service.config.gateway.max_body_bytes
    embedder = service.cache.embedder if service.cache is not None else None
    embedder_service = EmbeddingsService(embedder if isinstance(embedder, TokenCountingEmbedder) else None)

    def _sent(headers: Mapping[str, str]) -> dict[str, str]:
        out = dict(headers)
        if not echo_request_id:
            out.pop("x-request-id", None)
        return out

    def _respond(reply: Reply) -> Response:
        headers = _sent(reply.headers)
        if reply.stream is not None:
            headers |= {"cache-control": "no-cache", "x-accel-buffering": "no"}
            return StreamingResponse(reply.stream, media_type="text/event-stream", headers=headers)
        if reply.raw_body is not None:  # the tier's JSON, as vLLM's server wrote it
            return Response(reply.raw_body, media_type="application/json", headers=headers)
        return JSONResponse(reply.body, headers=headers)

    def _count_refusal(request: Request, status: int) -> None:
        # Refused before a tier was chosen (bad body, unknown model or route, auth): counted here, once.
        endpoint = _ENDPOINTS.get(request.url.path, "other")
        service.metrics.requests.labels(endpoint, "none", "none", str(status)).inc()

    async def _audit_refusal(request: Request, status: int, code: str | None) -> None:
        # Refused at the edge, before the pipeline (its audit stage) saw it: a wrong key, a bad body, no route.
        if service.audit is not None and request.url.path.startswith("/v1"):
            await service.audit.append(
                refusal_record(request.method, request.url.path, status, code, _request_id(request))
            )

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, error: ServingError) -> JSONResponse:
        if not error.counted:
            _count_refusal(request, error.status)
        if not error.audited:
            await _audit_refusal(request, error.status, error.code)
        return JSONResponse(error.body(), status_code=error.status, headers=_sent(error.headers) or None)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
        # A path or query parameter of the wrong type (an admin route's version, n, ...): FastAPI's own answer is
        # not the OpenAI error shape. The location's first part ("path", "query") is not a name a client uses.
        errors = [{**e, "loc": tuple(e.get("loc", ()))[1:]} for e in error.errors()]
        return await _serving_error(request, from_errors(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        _count_refusal(request, error.status_code)
        await _audit_refusal(request, error.status_code, None)
        type_, code = _STATUS_TYPES.get(error.status_code, ("invalid_request_error", None))
        return _error(error.status_code, str(error.detail), type_, code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "The server had an error while processing your request.", "server_error", "internal_error")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        principal = await service.authenticate(request.headers.get("authorization"))
        raw, data = await _read_json(request, max_bytes)
        body = _validate(ChatCompletionRequest, data)
        job = job_from_chat(body, raw, data, _request_id(request), principal.tenant)
        return _respond(await service.handle(with_request_headers(job, request.headers), principal))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        principal = await service.authenticate(request.headers.get("authorization"))
        raw, data = await _read_json(request, max_bytes)
        body = _validate(CompletionRequest, data)
        job = job_from_completion(body, raw, data, _request_id(request), principal.tenant)
        return _respond(await service.handle(with_request_headers(job, request.headers), principal))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        principal = await service.authenticate(request.headers.get("authorization"))
        body = await _parse(request, EmbeddingsRequest, max_bytes)
        if not principal.may_use(body.model):
            raise Forbidden(
                f"This API key may not use the model '{body.model}'.", param="model", code="model_not_allowed"
            )
        answer = await embedder_service.create(body)
        service.metrics.requests.labels("embeddings", EMBEDDING_MODEL, "bypass", "200").inc()
        return answer

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        principal = await service.authenticate(request.headers.get("authorization"))
        listing = service.models()
        listing.data = [card for card in listing.data if principal.may_use(card.id)]
        return listing.model_dump(mode="json")

    @app.get("/admin/cache/stats")
    async def cache_stats(request: Request) -> dict[str, Any]:
        cache = _admin_cache(request)
        return await cache.stats()

    @app.post("/admin/cache/invalidate")
    async def cache_invalidate(request: Request) -> dict[str, Any]:
        cache = _admin_cache(request)
        body = await _parse(request, InvalidateRequest, max_bytes) if await request.body() else InvalidateRequest()
        removed = await cache.invalidate(tenant=body.tenant, model=body.model)
        return {"removed": removed, "tenant": body.tenant, "model": body.model}

    @app.get("/admin/cache/export")
    async def cache_export(request: Request, tenant: str | None = None) -> StreamingResponse:
        cache = _admin_cache(request)

        async def lines() -> AsyncIterator[str]:
            async for entry in cache.export(tenant):
                yield entry.model_dump_json(exclude={"vector_b64"}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    def _admin_cache(request: Request) -> SemanticCache:
        service.authenticate_admin(request.headers.get("authorization"))
        if service.cache is None:
            raise InvalidRequest("The cache is disabled in this stack's config.", code="cache_disabled")
        return service.cache

    install_admin_routes(app, service, lambda request, model: _parse(request, model, max_bytes))
    install_audit_routes(app, service)
    install_prompt_routes(app, service, lambda request, model: _parse(request, model, max_bytes))
    install_scale_routes(app, service, lambda request, model: _parse(request, model, max_bytes))
    install_status_routes(app, service)

    @app.get("/health")
    async def health() -> JSONResponse:
        ok, report = await service.health()
        return JSONResponse(report, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        text = await service.stack_metrics()
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    client_errors = [400, 401, 403, 404, 413, 422, 429]
    generation_models = [AUTO_MODEL, *(tier.name for tier in service.config.tiers)]
    install_openapi(
        app,
        {
            "/v1/chat/completions": (ChatCompletionRequest, generation_models),
            "/v1/completions": (CompletionRequest, generation_models),
            "/v1/embeddings": (EmbeddingsRequest, [EMBEDDING_MODEL]),
        },
        {
            "/v1/chat/completions": [*client_errors, 503, 504],
            "/v1/completions": [*client_errors, 503, 504],
            "/v1/embeddings": client_errors,
            "/v1/models": [401],
        },
    )
    return app
