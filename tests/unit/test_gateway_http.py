"""The real FastAPI edge over GatewayService, with fake tiers, a hashing embedder and a real Redis.

Driven both with httpx over ASGI and with the official `openai` client, the way users call the stack.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from router import Router
from router.policy import ThresholdPolicy
from router.scorer import HeuristicScorer
from serving.gateway import build_gateway
from serving.http import build_http_app
from serving.metrics import GatewayMetrics
from serving.redis_server import LocalRedis
from tests.fakes import FakeTier
from tests.unit.gateway_stack import ALPHA, BETA, EASY, HARD, QUESTION, Stack, StackFactory, chat_body, completion_body


def sse_payloads(response: httpx.Response) -> list[str]:
    """The data of every SSE event, in order; asserts the framing is exactly `data: ...\\n\\n`."""
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text
    assert text.endswith("\n\n")
    blocks = text.split("\n\n")[:-1]
    assert all(block.startswith("data: ") for block in blocks), blocks
    return [block.removeprefix("data: ") for block in blocks]


def sse_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    assert "[DONE]" not in payloads[:-1]
    return [json.loads(p) for p in payloads[:-1]]


USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def shape(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chunks without what differs between two answers to the same question (ids, clocks, the cost)."""

    def same(chunk: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in chunk.items() if k not in ("id", "created")}
        if isinstance(kept.get("usage"), dict):
            kept["usage"] = {k: v for k, v in kept["usage"].items() if k not in ("cost_usd", "saved_usd")}
        return kept

    return [same(chunk) for chunk in chunks]


def assert_openai_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"]
    assert error["code"] == code
    return error


def sample_value(stack: Stack, sample_name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample of the gateway's registry, or None when it was never recorded."""
    for family in text_string_to_metric_families(stack.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == sample_name and sample.labels == labels:
                return float(sample.value)
    return None


def requests_total(stack: Stack) -> dict[tuple[str, str, str, str], float]:
    counts: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(stack.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "tierserve_requests_total":
                labels = sample.labels
                counts[(labels["endpoint"], labels["tier"], labels["cache"], labels["status"])] = sample.value
    return counts


# --------------------------------------------------------------------------------------------- chat


async def test_chat_non_stream(stack: Stack) -> None:
    response = await stack.chat(max_tokens=32)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    request_id = response.headers["x-request-id"]
    assert body["id"] == f"chatcmpl-{request_id}"
    assert body["model"] == "small"
    assert isinstance(body["created"], int)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    # Cost at the small tier's prices (1 and 2 USD per 1k tokens); the large tier is free here, so nothing saved.
    assert body["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 4,
        "total_tokens": 13,
        "cost_usd": 0.017,
        "saved_usd": 0.0,
    }
    assert response.headers["x-tierserve-cost-usd"] == "0.017000"
    assert response.headers["x-tierserve-tier"] == "small"
    assert response.headers["x-tierserve-cache"] == "miss"
    assert response.headers["x-tierserve-replica"] == "small-1"
    assert "x-tierserve-route-score" not in response.headers  # a pinned tier is not routed
    assert stack.small.calls == 1 and stack.large.calls == 0
    payload = stack.small.payloads[0]
    assert payload["messages"] == [{"role": "user", "content": QUESTION}]
    assert payload["request_id"] == request_id  # the tier's engine sees the same id as logs and client
    assert payload["max_tokens"] == 32 and payload["temperature"] == 0


async def test_request_id_is_taken_from_the_client_when_safe(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/chat/completions", json=chat_body(), headers={**ALPHA, "x-request-id": "trace-42.a:b"}
    )
    assert response.headers["x-request-id"] == "trace-42.a:b"
    assert response.json()["id"] == "chatcmpl-trace-42.a:b"
    assert stack.small.payloads[0]["request_id"] == "trace-42.a:b"
    unsafe = await stack.client.post(
        "/v1/chat/completions", json=chat_body("other"), headers={**ALPHA, "x-request-id": "client id\twith tab"}
    )
    generated = unsafe.headers["x-request-id"]
    # The unsafe id is replaced by a generated one, not cleaned up and echoed.
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", generated) and "client" not in generated
    assert unsafe.json()["id"] == f"chatcmpl-{generated}"


async def test_request_id_header_can_be_left_to_the_proxy(stack: Stack) -> None:
    app = build_http_app(stack.service, echo_request_id=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(
            "/v1/chat/completions", json=chat_body(), headers={**ALPHA, "x-request-id": "from-proxy-1"}
        )
    assert response.status_code == 200
    assert "x-request-id" not in response.headers
    assert response.json()["id"] == "chatcmpl-from-proxy-1"
    assert response.headers["x-tierserve-tier"] == "small"


async def test_auto_routes_by_difficulty(stack: Stack) -> None:
    easy = await stack.chat(model="auto", content=EASY)
    assert easy.status_code == 200
    assert easy.headers["x-tierserve-tier"] == "small"
    assert easy.json()["model"] == "small"
    assert 0.0 <= float(easy.headers["x-tierserve-route-score"]) < 0.5

    hard = await stack.chat(model="auto", content=HARD)
    assert hard.status_code == 200
    assert hard.headers["x-tierserve-tier"] == "large"
    assert hard.headers["x-tierserve-replica"] == "large-1"
    assert 0.5 <= float(hard.headers["x-tierserve-route-score"]) <= 1.0
    assert hard.json()["choices"][0]["message"]["content"] == "A long answer."
    assert (stack.small.calls, stack.large.calls) == (1, 1)


async def test_system_prompt_and_history_reach_the_tier(stack: Stack) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "first "}, {"type": "text", "text": "question"}],
        },
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    response = await stack.client.post(
        "/v1/chat/completions", json={"model": "small", "messages": messages, "stop": ["\n"]}, headers=ALPHA
    )
    assert response.status_code == 200
    sent = stack.small.payloads[0]
    assert sent["messages"] == messages  # the client's body reaches the tier as it was sent
    assert sent["stop"] == ["\n"]


async def test_chat_stream(stack: Stack) -> None:
    response = await stack.chat(stream=True)
    assert response.status_code == 200
    assert response.headers["x-tierserve-cache"] == "miss"
    assert response.headers["x-tierserve-tier"] == "small"
    assert response.headers["cache-control"] == "no-cache"
    chunks = sse_chunks(response)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {f"chatcmpl-{response.headers['x-request-id']}"}
    assert {c["model"] for c in chunks} == {"small"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert contents == ["Paris", " is", " the", " capital."]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["delta"].get("content") is None
    assert all("usage" not in c or c["usage"] is None for c in chunks)


async def test_chat_stream_with_usage(stack: Stack) -> None:
    response = await stack.chat(stream=True, stream_options={"include_usage": True})
    chunks = sse_chunks(response)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {**USAGE, "cost_usd": 0.017, "saved_usd": 0.0}  # the cost joins the usage chunk
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"] for c in chunks[:-1])


# ------------------------------------------------------------------------------------- completions


async def test_completion_non_stream(stack: Stack) -> None:
    response = await stack.client.post("/v1/completions", json=completion_body(max_tokens=8), headers=ALPHA)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"] == f"cmpl-{response.headers['x-request-id']}"
    assert body["choices"] == [{"index": 0, "text": "Paris is the capital.", "finish_reason": "stop", "logprobs": None}]
    assert body["usage"] == {**USAGE, "cost_usd": 0.017, "saved_usd": 0.0}
    assert stack.small.payloads[0]["prompt"] == "Once upon a time"
    assert "messages" not in stack.small.payloads[0]
    assert stack.small.payloads[0]["max_tokens"] == 8


async def test_completion_stream(stack: Stack) -> None:
    response = await stack.client.post(
        "/v1/completions",
        json=completion_body(stream=True, stream_options={"include_usage": True}),
        headers=ALPHA,
    )
    assert response.status_code == 200
    chunks = sse_chunks(response)
    assert {c["object"] for c in chunks} == {"text_completion"}
    texts = [c["choices"][0]["text"] for c in chunks[:-2]]
    assert "".join(texts) == "Paris is the capital." and texts[0] == "Paris"  # no role chunk here
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 13


async def test_completion_stream_without_usage(stack: Stack) -> None:
    response = await stack.client.post("/v1/completions", json=completion_body(stream=True), headers=ALPHA)
    chunks = sse_chunks(response)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"] for c in chunks)


# ------------------------------------------------------------------------------------ models, errors


async def test_models_lists_auto_and_tiers(stack: Stack) -> None:
    response = await stack.client.get("/v1/models", headers=ALPHA)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["auto", "small", "large", "all-MiniLM-L6-v2"]
    assert {m["object"] for m in body["data"]} == {"model"}
    assert body["data"][1]["root"].endswith("smollm2-135m-instruct")


async def test_unknown_model_is_404(stack: Stack) -> None:
    response = await stack.chat(model="gpt-4o")
    error = assert_openai_error(response, 404, "model_not_found")
    assert error["param"] == "model"
    assert error["type"] == "invalid_request_error"
    assert "gpt-4o" in error["message"] and "auto" in error["message"]
    assert stack.small.calls == 0 and stack.large.calls == 0


async def test_unknown_route_and_wrong_method_are_openai_errors(stack: Stack) -> None:
    response = await stack.client.get("/v1/nothing-here", headers=ALPHA)
    assert_openai_error(response, 404, "not_found")
    response = await stack.client.get("/v1/chat/completions", headers=ALPHA)
    assert_openai_error(response, 405, "method_not_allowed")


_CHAT_PREFIX = b'{"model": "small", "messages": [{"role": "user", "content": "hi"}], '


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"",
        b"[1, 2]",
        b'"a string"',
        b'{"model": "small", "messages": ' + b"[" * 2000 + b"]" * 2000 + b"}",  # beyond the parser's stack
        _CHAT_PREFIX + b'"metadata": ' + b'{"a": ' * 70 + b"1" + b"}" * 70 + b"}",  # deeper than 64 levels
        _CHAT_PREFIX + b'"temperature": NaN}',
        _CHAT_PREFIX + b'"temperature": Infinity}',
        _CHAT_PREFIX + b'"temperature": 1e999}',
        b'{"model": "small", "messages": [{"role": "user", "content": "\xc3\x28"}]}',  # invalid UTF-8
    ],
)
async def test_invalid_json_is_400(stack: Stack, content: bytes) -> None:
    response = await stack.client.post(
        "/v1/chat/completions", content=content, headers={**ALPHA, "content-type": "application/json"}
    )
    error = assert_openai_error(response, 400, "invalid_json")
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "small", "messages": "hi"}, "messages"),
        ({"model": "small", "messages": []}, "messages"),
        ({"model": "small", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
        (
            {"model": "small", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            "temperature",
        ),
        ({"model": "small", "messages": [{"role": "user", "content": "x"}], "temperature": -1}, "temperature"),
        ({"model": "small", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"model": "small", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": "small", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_schema_violations_are_422(stack: Stack, body: dict[str, Any], param: str | None) -> None:
    response = await stack.client.post("/v1/chat/completions", json=body, headers=ALPHA)
    error = assert_openai_error(response, 422, "invalid_value")
    assert error["type"] == "invalid_request_error"
    # A union field's location may carry pydantic's branch name after the field (messages.0.content.str).
    assert error["param"] == param or (param is not None and error["param"].startswith(f"{param}."))
    assert stack.small.calls == 0


@pytest.mark.parametrize(
    "body",
    [
        {"model": "small", "prompt": {"one": "two"}},
        {"model": "small", "prompt": "x", "max_tokens": 0},
        {"model": "small"},
    ],
)
async def test_completion_schema_violations_are_422(stack: Stack, body: dict[str, Any]) -> None:
    response = await stack.client.post("/v1/completions", json=body, headers=ALPHA)
    assert_openai_error(response, 422, "invalid_value")


async def test_every_field_reaches_the_tier_and_changes_the_cache_key(stack: Stack) -> None:
    extra = {"top_k": 5, "min_p": 0.1, "logit_bias": {"42": 3}, "response_format": {"type": "json_object"}}
    first = await stack.chat(**extra)
    assert first.status_code == 200 and first.headers["x-tierserve-cache"] == "miss"
    sent = stack.small.payloads[0]
    assert {key: sent[key] for key in extra} == extra  # nothing dropped on the way
    assert (await stack.chat(**extra)).headers["x-tierserve-cache"] == "hit"
    assert (await stack.chat(**{**extra, "top_k": 6})).headers["x-tierserve-cache"] == "miss"


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"n": 2}, "n"),
        ({"temperature": 1.0}, "temperature"),
    ],
)
async def test_cache_bypass_says_why(stack: Stack, extra: dict[str, Any], reason: str) -> None:
    for _ in range(2):
        response = await stack.chat(**extra)
        assert response.headers["x-tierserve-cache"] == "bypass"
        assert response.headers["x-tierserve-cache-bypass"] == reason
    assert stack.small.calls == 2


async def test_replays_are_the_engines_own_chunks_and_body(stack: Stack) -> None:
    live = await stack.chat(stream=True)
    replay = await stack.chat(stream=True, stream_options={"include_usage": True})
    assert replay.headers["x-tierserve-cache"] == "hit"
    live_chunks, replayed = sse_chunks(live), sse_chunks(replay)
    strip = lambda chunk: {k: v for k, v in chunk.items() if k not in ("id", "created")}  # noqa: E731
    assert [strip(c) for c in replayed[:-1]] == [strip(c) for c in live_chunks]  # chunk for chunk
    assert {c["id"] for c in replayed} == {f"chatcmpl-{replay.headers['x-request-id']}"}
    assert replayed[-1]["usage"]["completion_tokens"] == 4
    whole = await stack.chat()  # stored from a stream: rebuilt from its text
    assert whole.headers["x-tierserve-cache"] == "hit"
    assert whole.json()["choices"][0]["message"]["content"] == "Paris is the capital."


async def test_embeddings_in_openai_shape(stack: Stack) -> None:
    client = stack.openai()
    result = await client.embeddings.create(model="all-MiniLM-L6-v2", input=["the cat sat", "a dog ran far"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 384 for item in result.data)  # decoded from base64, the client's default
    assert result.usage.prompt_tokens == 5 + 6
    floats = await stack.client.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "the cat sat"}, headers=ALPHA
    )
    assert floats.json()["data"][0]["embedding"] == pytest.approx(result.data[0].embedding, abs=1e-6)
    models = (await stack.client.get("/v1/models", headers=ALPHA)).json()
    assert "all-MiniLM-L6-v2" in [m["id"] for m in models["data"]]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "model"),
        ({"model": "all-MiniLM-L6-v2", "input": ""}, 400, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": []}, 400, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": [1, 2, 3]}, 400, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 128}, 400, "dimensions"),
        ({"model": "all-MiniLM-L6-v2", "input": "word " * 40}, 400, "input"),  # longer than the model reads
        ({"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ],
)
async def test_bad_embedding_requests(stack: Stack, body: dict[str, Any], status: int, param: str) -> None:
    response = await stack.client.post("/v1/embeddings", json=body, headers=ALPHA)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


async def test_refusals_are_counted(stack: Stack) -> None:
    await stack.client.post("/v1/chat/completions", json={"model": "small", "messages": []}, headers=ALPHA)
    await stack.client.post("/v1/chat/completions", json=chat_body(model="nope"), headers=ALPHA)
    await stack.client.get("/v1/nothing", headers=ALPHA)
    counts = requests_total(stack)
    assert counts[("chat", "none", "none", "422")] == 1
    assert counts[("chat", "none", "none", "404")] == 1
    assert counts[("other", "none", "none", "404")] == 1


async def test_body_over_the_limit_is_413(stack: Stack) -> None:
    big = chat_body("x" * 5000)
    response = await stack.client.post("/v1/chat/completions", json=big, headers=ALPHA)
    assert_openai_error(response, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the body is measured as read
        raw = json.dumps(big).encode()
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    response = await stack.client.post(
        "/v1/chat/completions", content=chunks(), headers={**ALPHA, "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_openai_error(response, 413, "payload_too_large")
    assert stack.small.calls == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer sk-nope"},
        {"authorization": "sk-alpha"},
        {"authorization": "Basic sk-alpha"},
    ],
)
async def test_missing_or_wrong_api_key_is_401(stack: Stack, headers: dict[str, str]) -> None:
    response = await stack.client.post("/v1/chat/completions", json=chat_body(), headers=headers)
    error = assert_openai_error(response, 401, "invalid_api_key")
    assert error["type"] == "authentication_error"
    models = await stack.client.get("/v1/models", headers=headers)
    assert_openai_error(models, 401, "invalid_api_key")
    assert stack.small.calls == 0


async def test_open_gateway_uses_the_default_tenant(make_stack: StackFactory) -> None:
    stack = await make_stack(gateway={"api_keys": {}, "default_tenant": "everyone"})
    response = await stack.chat(headers=None)
    assert response.status_code == 200
    assert stack.cache is not None and stack.cache.entries("everyone") == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_tier_error_event_is_400_with_its_code(make_stack: StackFactory, stream: bool) -> None:
    stack = await make_stack(small=FakeTier(error=FakeTier.context_length_error()))
    response = await stack.chat(stream=stream)
    error = assert_openai_error(response, 400, "context_length_exceeded")
    assert error["type"] == "invalid_request_error"
    assert "maximum context length" in error["message"]
    assert requests_total(stack)[("chat", "small", "miss", "400")] == 1
    assert stack.cache is not None and stack.cache.entries("alpha") == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_tier_raising_is_503(make_stack: StackFactory, stream: bool) -> None:
    stack = await make_stack(small=FakeTier(fail="start"))
    response = await stack.chat(stream=stream)
    error = assert_openai_error(response, 503, "tier_unavailable")
    assert error["type"] == "server_error"
    assert "small" in error["message"]
    assert requests_total(stack)[("chat", "small", "miss", "503")] == 1


async def test_tier_error_midway_non_stream_is_the_tiers_error(make_stack: StackFactory) -> None:
    stack = await make_stack(
        small=FakeTier(["Paris", " is", " the"], error=FakeTier.context_length_error(), error_after=2)
    )
    response = await stack.chat()
    assert_openai_error(response, 400, "context_length_exceeded")
    assert requests_total(stack)[("chat", "small", "miss", "400")] == 1
    assert stack.cache is not None and stack.cache.entries("alpha") == 0


async def test_tier_error_midway_stream_is_reported_in_band(make_stack: StackFactory) -> None:
    stack = await make_stack(
        small=FakeTier(["Paris", " is", " the"], error=FakeTier.context_length_error(), error_after=2)
    )
    response = await stack.chat(stream=True)
    assert response.status_code == 200  # the headers were sent before the error happened
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])
    assert set(error) == {"error"}
    assert error["error"]["code"] == "context_length_exceeded"
    contents = [json.loads(p)["choices"][0]["delta"].get("content") for p in payloads[1:-2]]
    assert contents == ["Paris", " is"]
    assert requests_total(stack)[("chat", "small", "miss", "400")] == 1
    assert stack.cache is not None and stack.cache.entries("alpha") == 0
    assert (await stack.chat(stream=True)).headers["x-tierserve-cache"] == "miss"


async def test_tier_dying_midway_non_stream_is_503(make_stack: StackFactory) -> None:
    stack = await make_stack(small=FakeTier(fail="midway"), raise_app_exceptions=False)
    response = await stack.chat()
    assert stack.cache is not None and stack.cache.entries("alpha") == 0
    assert_openai_error(response, 503, "tier_unavailable")
    assert requests_total(stack)[("chat", "small", "miss", "503")] == 1


async def test_tier_dying_midway_stream_ends_with_an_in_band_error(make_stack: StackFactory) -> None:
    stack = await make_stack(small=FakeTier(fail="midway"), raise_app_exceptions=False)
    response = await stack.chat(stream=True)
    assert response.status_code == 200
    payloads = sse_payloads(response)
    assert stack.cache is not None and stack.cache.entries("alpha") == 0
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["error"]["code"] == "tier_unavailable"
    assert requests_total(stack)[("chat", "small", "miss", "503")] == 1


async def test_stream_past_the_request_timeout_ends_in_band(make_stack: StackFactory) -> None:
    stack = await make_stack(small=FakeTier(hold_after=1), gateway={"request_timeout_s": 0.05})
    response = await stack.chat(stream=True)  # the fake never goes past its first delta
    assert response.status_code == 200
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["error"]["code"] == "timeout"
    assert requests_total(stack)[("chat", "small", "miss", "504")] == 1
    assert stack.cache is not None and stack.cache.entries("alpha") == 0


async def test_non_stream_past_the_request_timeout_is_a_timeout_error(make_stack: StackFactory) -> None:
    stack = await make_stack(
        small=FakeTier(hold_after=1), gateway={"request_timeout_s": 0.05}, raise_app_exceptions=False
    )
    response = await stack.chat()
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert requests_total(stack)[("chat", "small", "miss", str(response.status_code))] == 1


# ------------------------------------------------------------------------------------------- cache


async def test_repeated_question_is_a_cache_hit(stack: Stack) -> None:
    first = await stack.chat()
    assert first.headers["x-tierserve-cache"] == "miss"
    second = await stack.chat()
    assert second.status_code == 200
    assert second.headers["x-tierserve-cache"] == "hit"
    assert second.headers["x-tierserve-tier"] == "small"
    assert float(second.headers["x-tierserve-similarity"]) == pytest.approx(1.0, abs=1e-3)
    assert "x-tierserve-replica" not in second.headers
    assert second.json()["choices"] == first.json()["choices"]
    tokens = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [second.json()["usage"][k] for k in tokens] == [first.json()["usage"][k] for k in tokens]
    assert second.json()["usage"]["cost_usd"] == 0.0  # a hit costs the cache's price (0 here), not the tier's
    assert second.json()["id"] != first.json()["id"]
    assert stack.small.calls == 1
    # A paraphrase with the same words (case, punctuation) also hits; other sampling params do not.
    assert (await stack.chat(content="what is the capital of france")).headers["x-tierserve-cache"] == "hit"
    assert (await stack.chat(max_tokens=5)).headers["x-tierserve-cache"] == "miss"
    assert stack.small.calls == 2
    counts = requests_total(stack)
    assert counts[("chat", "cache", "hit", "200")] == 2
    assert counts[("chat", "small", "miss", "200")] == 2


async def test_completion_and_chat_do_not_share_answers(stack: Stack) -> None:
    await stack.client.post("/v1/completions", json=completion_body(QUESTION), headers=ALPHA)
    chat = await stack.chat()
    assert chat.headers["x-tierserve-cache"] == "miss"
    again = await stack.client.post("/v1/completions", json=completion_body(QUESTION), headers=ALPHA)
    assert again.headers["x-tierserve-cache"] == "hit"
    assert again.json()["choices"][0]["text"] == "Paris is the capital."
    assert stack.small.calls == 2


async def test_cache_hit_replays_as_the_same_sse_shape(stack: Stack) -> None:
    live = await stack.chat(stream=True, stream_options={"include_usage": True})
    assert live.headers["x-tierserve-cache"] == "miss"
    replay = await stack.chat(stream=True, stream_options={"include_usage": True})
    assert replay.headers["x-tierserve-cache"] == "hit"
    assert stack.small.calls == 1
    live_chunks, replay_chunks = sse_chunks(live), sse_chunks(replay)
    assert shape(replay_chunks) == shape(live_chunks)
    assert {c["id"] for c in replay_chunks} == {f"chatcmpl-{replay.headers['x-request-id']}"}
    # The answer stored from a stream replays as a plain body as well.
    plain = await stack.chat()
    assert plain.headers["x-tierserve-cache"] == "hit"
    assert plain.json()["choices"][0]["message"]["content"] == "Paris is the capital."


async def test_completion_hit_replays_as_the_same_sse_shape(stack: Stack) -> None:
    live = await stack.client.post("/v1/completions", json=completion_body(stream=True), headers=ALPHA)
    replay = await stack.client.post("/v1/completions", json=completion_body(stream=True), headers=ALPHA)
    assert (live.headers["x-tierserve-cache"], replay.headers["x-tierserve-cache"]) == ("miss", "hit")
    assert shape(sse_chunks(replay)) == shape(sse_chunks(live))


async def test_other_tenant_gets_its_own_miss(stack: Stack) -> None:
    await stack.chat(headers=ALPHA)
    beta = await stack.chat(headers=BETA)
    assert beta.headers["x-tierserve-cache"] == "miss"
    assert stack.small.calls == 2
    assert (await stack.chat(headers=BETA)).headers["x-tierserve-cache"] == "hit"
    assert stack.small.calls == 2


async def test_hot_sampling_bypasses_the_cache(stack: Stack) -> None:
    for _ in range(2):
        response = await stack.chat(temperature=1.0)
        assert response.status_code == 200
        assert response.headers["x-tierserve-cache"] == "bypass"
    assert stack.small.calls == 2
    assert stack.cache is not None and stack.cache.entries("alpha") == 0
    assert requests_total(stack)[("chat", "small", "bypass", "200")] == 2


async def test_truncated_answer_is_cached_for_the_same_limit_only(make_stack: StackFactory) -> None:
    stack = await make_stack(small=FakeTier(["cut"], finish_reason="length"))
    first = await stack.chat(max_tokens=1)
    assert first.json()["choices"][0]["finish_reason"] == "length"
    again = await stack.chat(max_tokens=1)
    assert again.headers["x-tierserve-cache"] == "hit"
    assert again.json()["choices"][0]["finish_reason"] == "length"
    assert (await stack.chat(max_tokens=2)).headers["x-tierserve-cache"] == "miss"  # max_tokens is in the key
    assert stack.small.calls == 2


async def test_redis_down_bypasses_and_answers(make_stack: StackFactory) -> None:
    server = LocalRedis()
    server.start()
    url = server.url
    server.stop()
    stack = await make_stack(redis=url)
    for _ in range(2):
        response = await stack.chat()
        assert response.status_code == 200
        assert response.headers["x-tierserve-cache"] == "bypass"
        assert response.json()["choices"][0]["message"]["content"] == "Paris is the capital."
    stream = await stack.chat(stream=True)
    assert stream.status_code == 200 and sse_payloads(stream)[-1] == "[DONE]"
    assert stack.small.calls == 3
    health = await stack.client.get("/health")
    assert health.status_code == 200 and health.json()["cache"] == "bypass"


async def test_without_a_cache_everything_bypasses(make_stack: StackFactory) -> None:
    stack = await make_stack(cache=False)
    for _ in range(2):
        assert (await stack.chat()).headers["x-tierserve-cache"] == "bypass"
    assert stack.small.calls == 2
    assert (await stack.client.get("/health")).json()["cache"] == "disabled"


async def test_corrupt_cache_record_never_fails_a_request(
    make_stack: StackFactory, redis_url: str, key_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set(f"{key_prefix}:entry:alpha:from-an-older-release", b'{"entry_id": 1}')
    finally:
        await client.aclose()
    stack = await make_stack(raise_app_exceptions=False)
    response = await stack.chat()
    assert response.status_code == 200
    assert response.headers["x-tierserve-cache"] in ("miss", "bypass")


async def _abandon_stream(app: FastAPI, body: dict[str, Any], after_body_messages: int) -> list[dict[str, Any]]:
    """Drive the ASGI app like a server whose client hangs up after `after_body_messages` SSE chunks."""
    raw = json.dumps(body).encode()
    sent: list[dict[str, Any]] = []
    hung_up = asyncio.Event()
    request_read = False

    async def receive() -> dict[str, Any]:
        nonlocal request_read
        if not request_read:
            request_read = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if sum(1 for m in sent if m["type"] == "http.response.body" and m.get("body")) >= after_body_messages:
            hung_up.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"t"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", ALPHA["authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=30)  # a guard against a hang, not a timing
    return sent


async def test_abandoned_stream_is_not_cached(make_stack: StackFactory) -> None:
    stack = await make_stack(small=FakeTier(["Paris", " is", " the", " capital."], hold_after=1))
    sent = await _abandon_stream(stack.app, chat_body(stream=True), after_body_messages=2)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"Paris" in bodies and b"capital" not in bodies and b"[DONE]" not in bodies
    # The gateway stopped reading the tier (so the engine can stop), and stored nothing.
    assert stack.small.closed == 1 and stack.small.finished == 0
    assert stack.cache is not None and stack.cache.entries("alpha") == 0

    stack.small.release()
    again = await stack.chat()
    assert again.headers["x-tierserve-cache"] == "miss"
    assert again.json()["choices"][0]["message"]["content"] == "Paris is the capital."
    assert stack.small.calls == 2


@pytest.mark.parametrize("after_body_messages", [6, 7])  # after the finish_reason chunk; after [DONE]
async def test_a_client_hanging_up_once_it_has_the_answer_still_gets_it_cached(
    make_stack: StackFactory, after_body_messages: int
) -> None:
    stack = await make_stack()
    sent = await _abandon_stream(stack.app, chat_body(stream=True), after_body_messages=after_body_messages)
    bodies = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"capital." in bodies and b'"finish_reason":"stop"' in bodies
    # Every piece of text was delivered and the tier finished: a complete answer, stored and counted.
    assert stack.cache is not None and stack.cache.entries("alpha") == 1
    again = await stack.chat()
    assert again.headers["x-tierserve-cache"] == "hit"


# ----------------------------------------------------------------------------------- health, metrics


async def test_health_ok_when_every_tier_generates(stack: Stack) -> None:
    response = await stack.client.get("/health")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok" and report["failing"] == []
    assert set(report["tiers"]) == {"small", "large"}
    assert all(t["ok"] is True for t in report["tiers"].values())
    assert report["tiers"]["small"]["replica"] == "small-1"
    assert report["cache"] == "ok"
    assert (stack.small.probes, stack.large.probes) == (1, 1)


@pytest.mark.parametrize("mode", ["not ok", "raises"])
async def test_health_names_the_failing_tier(make_stack: StackFactory, mode: str) -> None:
    large = FakeTier(probe_ok=False) if mode == "not ok" else FakeTier(probe_raises=True)
    stack = await make_stack(large=large)
    response = await stack.client.get("/health")
    assert response.status_code == 503
    report = response.json()
    assert report["status"] == "unavailable"
    assert report["failing"] == ["large"]
    assert report["tiers"]["small"]["ok"] is True
    assert report["tiers"]["large"]["ok"] is False
    if mode == "raises":
        assert "FakeTierDown" in report["tiers"]["large"]["error"]


async def test_health_result_is_reused_for_health_cache_s(make_stack: StackFactory) -> None:
    stack = await make_stack(gateway={"health_cache_s": 3600})
    assert (await stack.client.get("/health")).status_code == 200
    stack.large.probe_ok = False
    assert (await stack.client.get("/health")).status_code == 200  # still the cached report
    assert stack.large.probes == 1


async def test_metrics_count_requests_by_tier_and_cache(stack: Stack) -> None:
    await stack.chat()
    await stack.chat()
    await stack.chat(model="auto", content=EASY, temperature=1.0)
    response = await stack.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "tierserve_requests_total{" in text
    counts = requests_total(stack)
    assert counts[("chat", "small", "miss", "200")] == 1
    assert counts[("chat", "cache", "hit", "200")] == 1
    assert counts[("chat", "small", "bypass", "200")] == 1
    assert sample_value(stack, "tierserve_route_score_count") == 1
    assert sample_value(stack, "tierserve_tokens_total", tier="small", kind="completion") == 8
    assert sample_value(stack, "tierserve_tokens_total", tier="cache", kind="completion") == 4
    # Price of the two generated answers: (9 * 1.0 + 4 * 2.0) / 1000 each, for tenant alpha; hits cost nothing.
    assert sample_value(stack, "tierserve_cost_usd_total", tier="small", tenant="alpha") == pytest.approx(0.034)
    assert sample_value(stack, "tierserve_cost_usd_total", tier="cache", tenant="alpha") == 0.0
    # The identical repeat was answered before anything was embedded; the hot request skipped the cache but was
    # embedded for the router (router.embed_when_bypassed).
    assert sample_value(stack, "tierserve_stage_seconds_count", stage="embed") == 2
    assert sample_value(stack, "tierserve_stage_seconds_count", stage="cache_exact") == 2


# ------------------------------------------------------------------------------ the official client


async def test_openai_client_chat(stack: Stack) -> None:
    client = stack.openai()
    completion = await client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=16
    )
    assert completion.choices[0].message.content == "Paris is the capital."
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 13

    raw = await client.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=16
    )
    assert raw.headers["x-tierserve-cache"] == "hit"
    assert raw.parse().choices[0].message.content == "Paris is the capital."
    assert stack.small.calls == 1
    await client.close()


async def test_openai_client_chat_stream(stack: Stack) -> None:
    client = stack.openai()
    stream = await client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": EASY}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    roles, pieces, finishes, usages = [], [], [], []
    async for chunk in stream:
        if chunk.usage is not None:
            usages.append(chunk.usage)
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            pieces.append(choice.delta.content or "")
            finishes.append(choice.finish_reason)
    assert roles[0] == "assistant"
    assert "".join(pieces) == "Paris is the capital."
    assert [f for f in finishes if f] == ["stop"]
    assert len(usages) == 1 and usages[0].completion_tokens == 4
    await client.close()


async def test_openai_client_completions_and_models(stack: Stack) -> None:
    client = stack.openai()
    completion = await client.completions.create(model="small", prompt="Once upon a time", temperature=0)
    assert completion.choices[0].text == "Paris is the capital."
    texts = [
        c.choices[0].text
        async for c in await client.completions.create(model="small", prompt="Tell me more", temperature=0, stream=True)
        if c.choices
    ]
    assert "".join(texts) == "Paris is the capital."
    models = await client.models.list()
    assert [m.id for m in models.data] == ["auto", "small", "large", "all-MiniLM-L6-v2"]
    await client.close()


async def test_openai_client_errors(make_stack: StackFactory) -> None:
    stack = await make_stack(large=FakeTier(error=FakeTier.context_length_error()))
    client = stack.openai()
    messages = [{"role": "user", "content": QUESTION}]
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model="nope", messages=messages)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        await client.chat.completions.create(model="large", messages=messages)
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        await client.chat.completions.create(model="small", messages=messages, max_tokens=-1)
    assert invalid.value.code == "invalid_value"
    await client.close()
    stranger = stack.openai(api_key="sk-stranger")
    with pytest.raises(openai.AuthenticationError) as denied:
        await stranger.models.list()
    assert denied.value.code == "invalid_api_key"
    await stranger.close()


# ------------------------------------------------------------------------------ single-flight, admin


async def test_identical_concurrent_misses_generate_once(make_stack: StackFactory) -> None:
    small = FakeTier(["Paris", "."], hold_after=1)
    stack = await make_stack(small=small)
    leader = asyncio.create_task(stack.chat())
    await asyncio.wait_for(small.holding.wait(), 5)
    followers = [asyncio.create_task(stack.chat()) for _ in range(3)]
    await asyncio.sleep(0.05)
    small.release()
    responses = [await leader, *[await f for f in followers]]
    assert small.calls == 1
    assert [r.headers["x-tierserve-cache"] for r in responses] == ["miss", "hit", "hit", "hit"]
    texts = {r.json()["choices"][0]["message"]["content"] for r in responses}
    assert texts == {"Paris."}


async def test_followers_generate_themselves_when_the_leader_fails(make_stack: StackFactory) -> None:
    died = {"event": "error", "status": 503, "code": "engine_dead", "message": "engine died"}
    small = FakeTier(["Paris", ".", "!"], hold_after=1, error=died, error_after=2)  # holds, then dies
    # No retries: the engine dies before the first token, which would otherwise be retried (test_failover.py).
    no_retries = {"small": {"reliability": {"retries": 0}}}
    stack = await make_stack(small=small, raise_app_exceptions=False, tier_options=no_retries)
    leader = asyncio.create_task(stack.chat())
    await asyncio.wait_for(small.holding.wait(), 5)
    follower = asyncio.create_task(stack.chat())
    await asyncio.sleep(0.05)
    small.release()
    assert (await leader).status_code == 503
    assert (await follower).status_code == 503  # it tried on its own: same broken tier
    assert small.calls == 2


async def test_admin_api_needs_its_key(make_stack: StackFactory) -> None:
    disabled = await make_stack()
    assert_openai_error(await disabled.client.get("/admin/cache/stats", headers=ALPHA), 403, "forbidden")
    stack = await make_stack(admin_key="admin-key-0123456789")
    assert_openai_error(await stack.client.get("/admin/cache/stats", headers=ALPHA), 401, "invalid_api_key")


async def test_admin_stats_invalidate_export(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key="admin-key-0123456789")
    admin = {"authorization": "Bearer admin-key-0123456789"}
    await stack.chat(headers=ALPHA)
    await stack.chat(headers=BETA)
    stats = (await stack.client.get("/admin/cache/stats", headers=admin)).json()
    assert stats["tenants"]["alpha"]["stored"] == 1 and stats["tenants"]["beta"]["stored"] == 1
    export = await stack.client.get("/admin/cache/export", params={"tenant": "alpha"}, headers=admin)
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [(e["tenant"], e["query"], e["model"]) for e in lines] == [("alpha", QUESTION, "small")]
    assert "vector_b64" not in lines[0]
    removed = await stack.client.post("/admin/cache/invalidate", json={"tenant": "alpha"}, headers=admin)
    assert removed.json()["removed"] == 1
    assert (await stack.chat(headers=ALPHA)).headers["x-tierserve-cache"] == "miss"
    assert (await stack.chat(headers=BETA)).headers["x-tierserve-cache"] == "hit"
    bad = await stack.client.post("/admin/cache/invalidate", json={"tenant": 3}, headers=admin)
    assert_openai_error(bad, 422, "invalid_value")


async def test_a_tier_version_bump_invalidates_its_answers(make_stack: StackFactory, redis_url: str) -> None:
    first = await make_stack()
    await first.chat()
    assert (await first.chat()).headers["x-tierserve-cache"] == "hit"
    config = first.service.config
    tiers = [t.model_copy(update={"version": "2"}) if t.name == "small" else t for t in config.tiers]
    upgraded = build_gateway(
        config.model_copy(update={"tiers": tiers}),
        {"small": first.small, "large": first.large},
        first.cache,
        Router(HeuristicScorer(config.router.weights), ThresholdPolicy(["small", "large"], [0.5])),
        GatewayMetrics(),
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_http_app(upgraded)), base_url="http://t")
    response = await client.post("/v1/chat/completions", json=chat_body(), headers=ALPHA)
    await client.aclose()
    assert response.headers["x-tierserve-cache"] == "miss"
