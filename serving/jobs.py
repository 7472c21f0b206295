"""One request normalised across the chat and completion endpoints: what the gateway's flow works on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serving.formatting import Endpoint
from serving.protocol import ChatCompletionRequest, CompletionRequest
from serving.tracing import caller_context


@dataclass(frozen=True)
class Job:
    """One request, normalised across the chat and completion endpoints."""

    endpoint: Endpoint
    request_id: str
    tenant: str
    model: str
    query: str  # the paraphrasable text: the last user turn, or the prompt
    context: tuple[tuple[str, str], ...]  # every other message, matched exactly
    payload: dict[str, Any]  # what the tier receives
    stream: bool
    include_usage: bool
    temperature: float
    max_tokens: int | None
    # Per-request routing overrides (x-tierserve-pin-tier / x-tierserve-max-tier), for model="auto".
    route_pin: str | None = None
    route_cap: str | None = None
    # The caller's W3C trace headers (traceparent, tracestate): the request's span joins that trace.
    trace_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


PIN_TIER_HEADER = "x-tierserve-pin-tier"
MAX_TIER_HEADER = "x-tierserve-max-tier"


def with_request_headers(job: Job, headers: Mapping[str, str]) -> Job:
    """The job with what the request's headers add: routing overrides (x-tierserve-pin-tier /
    x-tierserve-max-tier, validated against the tiers in `handle`) and the caller's trace context."""
    return dataclasses.replace(
        job,
        route_pin=headers.get(PIN_TIER_HEADER) or None,
        route_cap=headers.get(MAX_TIER_HEADER) or None,
        trace_headers=caller_context(headers),
    )


def job_from_chat(request: ChatCompletionRequest, request_id: str, tenant: str) -> Job:
    messages = [{"role": m.role, "content": m.text()} for m in request.messages]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    context = tuple((m["role"], m["content"]) for i, m in enumerate(messages) if i != last_user)
    return Job(
        endpoint="chat",
        request_id=request_id,
        tenant=tenant,
        model=request.model,
        query=messages[last_user]["content"],
        context=context,
        payload={"messages": messages, "sampling": _sampling(request, request.token_limit())},
        stream=request.stream,
        include_usage=request.include_usage(),
        temperature=request.temperature,
        max_tokens=request.token_limit(),
    )


def job_from_completion(request: CompletionRequest, request_id: str, tenant: str) -> Job:
    return Job(
        endpoint="completion",
        request_id=request_id,
        tenant=tenant,
        model=request.model,
        query=request.prompt_text(),
        context=(),
        payload={"prompt": request.prompt_text(), "sampling": _sampling(request, request.token_limit())},
        stream=request.stream,
        include_usage=request.include_usage(),
        temperature=request.temperature,
        max_tokens=request.token_limit(),
    )


def _sampling(request: ChatCompletionRequest | CompletionRequest, max_tokens: int | None) -> dict[str, Any]:
    return {
        "max_tokens": max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop_list(),
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
    }
