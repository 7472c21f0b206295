"""One request normalised across the chat and completion endpoints: what the gateway's flow works on."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serving.contract import Endpoint
from serving.errors import InvalidRequest
from serving.protocol import ANSWER_NEUTRAL_FIELDS, ChatCompletionRequest, ChatMessage, CompletionRequest
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
    body: bytes  # the client's JSON, forwarded to the tier as it came
    params: Mapping[str, Any]  # every body field that can change the answer (the cache key's exact part)
    stream: bool
    include_usage: bool
    temperature: float
    max_tokens: int | None
    # Why the cache may not answer this request (its response holds more than text), or None.
    cache_bypass: str | None = None
    # Per-request routing overrides (x-tierserve-pin-tier / x-tierserve-max-tier), for model="auto".
    route_pin: str | None = None
    route_cap: str | None = None
    # The caller's W3C trace headers (traceparent, tracestate): the request's span joins that trace.
    trace_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # A versioned system prompt to serve this request with (x-tierserve-prompt: name@version, or name).
    prompt_ref: str | None = None
    prompt_in_body: bool = False  # named by the body's tierserve_prompt, not the header (errors name what was sent)


PIN_TIER_HEADER = "x-tierserve-pin-tier"
MAX_TIER_HEADER = "x-tierserve-max-tier"
PROMPT_HEADER = "x-tierserve-prompt"


PROMPT_FIELD = "tierserve_prompt"


def with_request_headers(job: Job, headers: Mapping[str, str]) -> Job:
    """The job with what the request's headers add: routing overrides (x-tierserve-pin-tier /
    x-tierserve-max-tier, validated against the tiers in `handle`), the caller's trace context, and the versioned
    prompt (the header, or the body's `tierserve_prompt`; both naming different prompts is a 400)."""
    prompt_ref = headers.get(PROMPT_HEADER) or None
    if prompt_ref is not None and job.prompt_ref is not None and prompt_ref != job.prompt_ref:
        raise InvalidRequest(
            f"The {PROMPT_HEADER} header ({prompt_ref}) and the body's {PROMPT_FIELD} ({job.prompt_ref}) name "
            "different prompts; send one.",
            param=PROMPT_FIELD,
            code="invalid_prompt",
        )
    return dataclasses.replace(
        job,
        route_pin=headers.get(PIN_TIER_HEADER) or None,
        route_cap=headers.get(MAX_TIER_HEADER) or None,
        trace_headers=caller_context(headers),
        prompt_ref=prompt_ref or job.prompt_ref,
        prompt_in_body=prompt_ref is None and job.prompt_ref is not None,
    )


def _exact_text(message: ChatMessage) -> str:
    """A message as the cache key's exact part sees it: its text, or, when it holds more than text (tool calls,
    images, a name), all of it as canonical JSON, so two turns that differ anywhere never share a key."""
    if isinstance(message.content, str | None) and not message.model_extra and message.name is None:
        return message.text()
    return json.dumps(message.model_dump(mode="json", exclude_none=True), sort_keys=True, ensure_ascii=False)


def _answer_params(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in ANSWER_NEUTRAL_FIELDS}


def job_from_chat(
    request: ChatCompletionRequest, body: bytes, data: Mapping[str, Any], request_id: str, tenant: str
) -> Job:
    """`data` is the parsed body (every field, for the cache key); `body` its bytes, for the tier."""
    users = [i for i, m in enumerate(request.messages) if m.role == "user"]
    # The question is the last user turn; a conversation without one is keyed on its last message.
    last = users[-1] if users else len(request.messages) - 1
    context = tuple((m.role, _exact_text(m)) for i, m in enumerate(request.messages) if i != last)
    non_text = request.messages[last].non_text_parts()
    if request.tierserve_prompt is not None:  # the gateway's field: the tier never sees it, the cache key gets
        data = {k: v for k, v in data.items() if k != PROMPT_FIELD}  # the resolved version from the prompt stage
        body = json.dumps(data).encode()
    return Job(
        endpoint="chat",
        request_id=request_id,
        tenant=tenant,
        model=request.model,
        query=request.messages[last].text(),
        context=context,
        body=body,
        params=_answer_params(data),
        stream=bool(request.stream),
        include_usage=request.include_usage(),
        temperature=request.sampled_temperature(),
        max_tokens=request.token_limit(),
        cache_bypass=request.cache_bypass_reason() or ("content_parts" if non_text else None),
        prompt_ref=request.tierserve_prompt,
        prompt_in_body=request.tierserve_prompt is not None,
    )


def job_from_completion(
    request: CompletionRequest, body: bytes, data: Mapping[str, Any], request_id: str, tenant: str
) -> Job:
    return Job(
        endpoint="completion",
        request_id=request_id,
        tenant=tenant,
        model=request.model,
        query=request.prompt_text(),
        context=(),
        body=body,
        params=_answer_params(data),
        stream=bool(request.stream),
        include_usage=request.include_usage(),
        temperature=request.sampled_temperature(),
        max_tokens=request.token_limit(),
        cache_bypass=request.cache_bypass_reason(),
        prompt_ref=request.tierserve_prompt,  # refused by the prompt stage: versioned prompts are for chat
        prompt_in_body=request.tierserve_prompt is not None,
    )
