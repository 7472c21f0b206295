"""The official `openai` client against the running stack: real vLLM tiers, Ray Serve, Redis, embeddings."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import ALPHA_KEY, BETA_KEY, Stack

pytestmark = pytest.mark.slow

FINISHES = {"stop", "length"}


def fresh_seed() -> int:
    """A seed no earlier request used: a fresh cache key for an unchanged prompt."""
    return uuid.uuid4().int % 2**31


def cacheable(question: str) -> dict[str, Any]:
    """A request the cache stores (temperature 0, room to finish) under a key no earlier request used;
    at temperature 0 the seed, part of the key, leaves the answer unchanged."""
    return {
        "model": "small",
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 128,
        "temperature": 0,
        "seed": fresh_seed(),
    }


def unique(text: str) -> str:
    """A question nobody asked before in this session, so the cache cannot answer it."""
    return f"{text} (ref {uuid.uuid4().hex[:8]})"


def test_models_lists_every_tier_and_auto(stack: Stack) -> None:
    ids = [m.id for m in stack.client().models.list().data]
    assert ids == ["auto", "small", "large", "all-MiniLM-L6-v2"]


def test_chat_non_streaming_pinned_tier(stack: Stack) -> None:
    raw = stack.client().chat.completions.with_raw_response.create(
        model="small",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": unique("What is 3 + 4?")}],
        max_tokens=24,
        temperature=0.7,
        top_p=0.9,
        seed=7,
        user="e2e",
    )
    completion = raw.parse()
    assert raw.headers["x-tierserve-tier"] == "small"
    assert raw.headers["x-tierserve-cache"] == "bypass"  # temperature above the cache's limit
    assert raw.headers["x-request-id"]
    assert completion.model == "small"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in FINISHES
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 5
    assert 1 <= usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_streaming_with_usage(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="large",
        messages=[{"role": "user", "content": unique("Write one sentence about the sea.")}],
        max_tokens=16,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.strip()
    assert len(finishes) == 1 and finishes[0] in FINISHES
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 16
    assert all(c.model == "large" for c in chunks)


def test_completions_streamed_and_not(stack: Stack) -> None:
    client = stack.client()
    prompt = unique("The three primary colours are")
    full = client.completions.create(model="large", prompt=prompt, max_tokens=8, temperature=0.0)
    assert full.choices[0].text
    assert full.usage is not None and full.usage.completion_tokens <= 8
    streamed = list(client.completions.create(model="large", prompt=prompt, max_tokens=8, temperature=0.0, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == full.choices[0].text


def test_stop_sequence_and_seed(stack: Stack) -> None:
    client = stack.client()
    question = unique("Count from one to ten in words, separated by commas.")
    answers = [
        client.chat.completions.create(
            model="small",
            messages=[{"role": "user", "content": question}],
            max_tokens=40,
            temperature=0.9,
            seed=1234,
            stop=["five"],
        )
        for _ in range(2)
    ]
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content  # same seed
    for answer in answers:
        assert "five" not in (answer.choices[0].message.content or "")


def test_auto_routes_and_reports_score(stack: Stack) -> None:
    # The tier follows the trained score and configs/test.yaml's threshold (0.5), whatever the weights say.
    prompts = [
        "hi",
        "Explain step by step why the following Python function is O(n log n), then prove it formally: "
        "def f(xs): return sorted(xs)",
    ]
    for prompt in prompts:
        raw = stack.client().chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": unique(prompt)}], max_tokens=8, temperature=0.5
        )
        score = float(raw.headers["x-tierserve-route-score"])
        assert 0.0 <= score <= 1.0
        assert raw.headers["x-tierserve-tier"] == ("large" if score >= 0.5 else "small")
        assert raw.headers["x-tierserve-route-reason"] == "score"
    # A client can pin the tier of an auto request (router.request_overrides is on by default).
    raw = stack.client().chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": unique("hi")}],
        max_tokens=8,
        temperature=0.5,
        extra_headers={"x-tierserve-pin-tier": "large"},
    )
    assert raw.headers["x-tierserve-tier"] == "large"
    assert raw.headers["x-tierserve-route-reason"] == "pinned"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model_not_found"),
        ({"model": "auto", "messages": []}, 422, "invalid_value"),
        ({"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 422, "invalid_value"),
        ({"model": "auto", "messages": "hello"}, 422, "invalid_value"),
        ({"model": "small", "messages": [{"role": "user", "content": "word " * 3000}]}, 400, "context_length_exceeded"),
        ({"model": "small", "prompt": "x", "max_tokens": 5000}, 400, "context_length_exceeded"),
    ],
)
def test_bad_requests_get_openai_errors(stack: Stack, body: dict[str, object], status: int, code: str) -> None:
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    response = httpx.post(f"{stack.url}{path}", json=body, headers={"Authorization": f"Bearer {ALPHA_KEY}"}, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] and error["type"]


def test_invalid_json_oversized_body_and_bad_key(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {ALPHA_KEY}", "Content-Type": "application/json"}
    broken = httpx.post(f"{stack.url}/v1/chat/completions", content=b"{not json", headers=headers, timeout=30)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    huge = {"model": "small", "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    too_big = httpx.post(f"{stack.url}/v1/chat/completions", json=huge, headers=headers, timeout=30)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    with pytest.raises(openai.AuthenticationError):
        stack.client("sk-wrong").models.list()


def test_openai_client_raises_typed_errors(stack: Stack) -> None:
    client = stack.client()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}], max_tokens=4096)
    assert "max_model_len=2048" in str(excinfo.value)  # vLLM's own words


def test_repeated_question_is_served_from_cache(stack: Stack) -> None:
    client = stack.client(ALPHA_KEY)
    request = cacheable("What is 2 + 2?")
    started = time.perf_counter()
    first = client.chat.completions.with_raw_response.create(**request)
    miss_s = time.perf_counter() - started
    started = time.perf_counter()
    second = client.chat.completions.with_raw_response.create(**request)
    hit_s = time.perf_counter() - started
    assert first.parse().choices[0].finish_reason == "stop"  # only complete answers are stored
    assert first.headers["x-tierserve-cache"] == "miss"
    assert second.headers["x-tierserve-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    hit, miss = second.parse().usage, first.parse().usage
    assert hit is not None and miss is not None
    assert (hit.prompt_tokens, hit.completion_tokens) == (miss.prompt_tokens, miss.completion_tokens)
    # The cost rides in usage's extra fields: the miss at the small tier's prices, the hit at the cache's (0 here).
    assert miss.model_extra is not None and hit.model_extra is not None
    assert miss.model_extra["cost_usd"] > 0 and hit.model_extra["cost_usd"] == 0
    assert hit.model_extra["saved_usd"] >= miss.model_extra["saved_usd"]
    assert hit_s < miss_s

    # Replayed as a stream: same text, and the same chunk shape as a live stream.
    stream = client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == first.parse().choices[0].message.content
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == first.parse().usage.completion_tokens

    # Another tenant never gets alpha's answer.
    other = stack.client(BETA_KEY).chat.completions.with_raw_response.create(**request)
    assert other.headers["x-tierserve-cache"] == "miss"


def test_streamed_miss_is_stored_and_replayed(stack: Stack) -> None:
    client = stack.client(BETA_KEY)
    request = cacheable("Say hello.")
    with client.chat.completions.with_streaming_response.create(**request, stream=True) as live:
        assert live.headers["x-tierserve-cache"] == "miss"
        live_lines = [line for line in live.iter_lines() if line]
    with client.chat.completions.with_streaming_response.create(**request, stream=True) as replay:
        assert replay.headers["x-tierserve-cache"] == "hit"
        replay_lines = [line for line in replay.iter_lines() if line]
    assert live_lines[-1] == replay_lines[-1] == "data: [DONE]"

    def shape(lines: list[str]) -> list[tuple[bool, str | None]]:
        out = []
        for line in lines[:-1]:
            choice = json.loads(line.removeprefix("data: "))["choices"][0]
            out.append((choice["delta"].get("role") is not None, choice["finish_reason"]))
        return out

    assert shape(live_lines) == shape(replay_lines)


def test_two_replicas_of_a_tier_both_serve(stack: Stack) -> None:
    def ask(i: int) -> str:
        raw = stack.client().chat.completions.with_raw_response.create(
            model="small",
            messages=[{"role": "user", "content": unique(f"Name a fruit #{i}")}],
            max_tokens=4,
            temperature=1.0,
        )
        return raw.headers["x-tierserve-replica"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        replicas = set(pool.map(ask, range(16)))
    assert len(replicas) == 2


def test_health_and_metrics(stack: Stack) -> None:
    health = httpx.get(f"{stack.url}/health", timeout=60)
    assert health.status_code == 200
    report = health.json()
    assert report["status"] == "ok" and set(report["tiers"]) == {"small", "large"}
    assert all(tier["ok"] for tier in report["tiers"].values())
    metrics = httpx.get(f"{stack.url}/metrics", timeout=30).text
    assert 'tierserve_requests_total{cache="miss",endpoint="chat",status="200",tier="small"}' in metrics
    assert "tierserve_time_to_first_token_seconds_bucket" in metrics
    assert 'tierserve_tokens_total{kind="completion",tier="small"}' in metrics


def test_redis_outage_bypasses_the_cache_and_it_resumes(stack: Stack) -> None:
    import psutil

    client = stack.client(ALPHA_KEY)
    request = cacheable("What is 2 + 2?")
    assert client.chat.completions.with_raw_response.create(**request).headers["x-tierserve-cache"] == "miss"
    time.sleep(1.5)  # Redis appends to its log every second: let the entry reach the disk
    servers = [p for p in psutil.Process(stack.process.pid).children(recursive=True) if p.name() == "redis-server"]
    assert len(servers) == 1
    servers[0].kill()
    servers[0].wait(10)

    outage = client.chat.completions.with_raw_response.create(**request)
    assert outage.headers["x-tierserve-cache"] == "bypass"
    assert outage.parse().choices[0].message.content

    deadline = time.monotonic() + 120
    outcome = "bypass"
    while outcome != "hit" and time.monotonic() < deadline:
        time.sleep(2)
        outcome = client.chat.completions.with_raw_response.create(**request).headers["x-tierserve-cache"]
    assert outcome == "hit"  # Redis came back with its data, and the cache resumed by itself
