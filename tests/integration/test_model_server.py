"""A real vLLM engine inside a real Ray Serve deployment (ModelServer), called through its handle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from serving.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tier_handle() -> Iterator[Any]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    from serving.app import _engine_env, deployment_options
    from serving.deployments import ModelServer

    config = load_config("configs/test.yaml")
    tier = config.tier("small")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        options = deployment_options(tier.deployment.model_copy(update={"num_replicas": 1}), env=_engine_env(0))
        app = ModelServer.options(name="tier-small", **options).bind(  # type: ignore[attr-defined]
            tier.model_dump(mode="json"), config.model_path(tier)
        )
        yield serve.run(app, name="model-server-test", route_prefix=None)
    finally:
        serve.shutdown()
        ray.shutdown()


def generate(handle: Any, **payload: Any) -> list[dict[str, Any]]:
    sampling = {"max_tokens": 16, "temperature": 0.0, **payload.pop("sampling", {})}
    return list(handle.options(stream=True).generate.remote({"request_id": None, "sampling": sampling, **payload}))


def test_chat_generation_streams_plain_events(tier_handle: Any) -> None:
    events = generate(tier_handle, messages=[{"role": "user", "content": "What is 2 + 2?"}])
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and set(kinds[1:-1]) == {"delta"}
    start, end = events[0], events[-1]
    assert start["prompt_tokens"] > 5 and start["replica"]
    assert end["finish_reason"] in {"stop", "length"}
    # The final token (end of turn) may carry no text, so the last delta can count one fewer.
    assert events[-2]["completion_tokens"] <= end["completion_tokens"] <= 16
    assert "".join(e["text"] for e in events if e["event"] == "delta").strip()


def test_completion_prompt_and_stop(tier_handle: Any) -> None:
    events = generate(tier_handle, prompt="1, 2, 3, 4,", sampling={"max_tokens": 24, "stop": ["7"]})
    text = "".join(e["text"] for e in events if e["event"] == "delta")
    assert "7" not in text
    assert events[-1]["event"] == "end"


def test_same_seed_same_sample(tier_handle: Any) -> None:
    runs = [
        generate(tier_handle, prompt="Once upon a time", sampling={"temperature": 1.0, "seed": 42}) for _ in range(2)
    ]
    texts = ["".join(e["text"] for e in run if e["event"] == "delta") for run in runs]
    assert texts[0] == texts[1]


def test_context_overflow_is_a_request_error_not_a_crash(tier_handle: Any) -> None:
    events = generate(tier_handle, prompt="word " * 2500)
    assert events == [
        {"event": "error", "status": 400, "code": "context_length_exceeded", "message": events[0]["message"]}
    ]
    assert "maximum context length is 2048" in events[0]["message"]
    # The engine is still healthy afterwards.
    assert tier_handle.probe.remote().result()["ok"] is True


def test_salted_prompts_generate_the_same_answer(tier_handle: Any) -> None:
    # Timing protection passes the tenant as vLLM's cache_salt: the real engine accepts it, and a salt only
    # separates prefix-cache blocks, never changes what greedy decoding produces.
    messages = [{"role": "user", "content": "Name a primary colour."}]
    texts = [
        "".join(e["text"] for e in generate(tier_handle, messages=messages, **salt) if e["event"] == "delta")
        for salt in ({}, {"cache_salt": "alpha"}, {"cache_salt": "beta"})
    ]
    assert texts[0] and texts[0] == texts[1] == texts[2]
