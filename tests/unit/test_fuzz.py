"""Schemathesis against the gateway's own OpenAPI document, positive and negative data: no input is ever answered
with a 5xx. The gateway runs for real (uvicorn on loopback, real Redis for the cache) over fake tiers and the
hashing embedder, so thousands of cases take seconds.

`make test` runs a short pass; `make fuzz` sets TIERSERVE_FUZZ_EXAMPLES so the whole run is at least 10,000 cases.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from cache import CacheStore, SemanticCache
from router.policy import Router, ThresholdPolicy
from router.scorer import HeuristicScorer
from serving.config import parse_config
from serving.gateway import build_gateway
from serving.http import build_http_app
from serving.metrics import GatewayMetrics
from serving.redis_server import free_port
from tests.fakes import FakeTier, HashingEmbedder

EXAMPLES = int(os.environ.get("TIERSERVE_FUZZ_EXAMPLES", "40"))
KEY = "sk-fuzz"


@pytest.fixture(scope="module")
def gateway_url(redis_url: str) -> Iterator[str]:
    config = parse_config(
        {
            "tiers": [{"name": "small", "model": "s"}, {"name": "large", "model": "l"}],
            "router": {"thresholds": [0.5]},
            "cache": {"redis": {"key_prefix": f"fuzz-{uuid.uuid4().hex[:8]}"}},
            "gateway": {"api_keys": {KEY: "fuzz"}, "max_body_bytes": 200_000},
        }
    )
    cache = SemanticCache(config.cache, HashingEmbedder(), CacheStore(config.cache.redis, redis_url))
    router = Router(HeuristicScorer(config.router.weights), ThresholdPolicy(["small", "large"], [0.5]))
    tiers = {"small": FakeTier(), "large": FakeTier(["A", " longer", " answer."])}
    service = build_gateway(config, tiers, cache, router, GatewayMetrics())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_http_app(service), port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the fuzzed gateway did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_openapi_document_describes_the_bodies(gateway_url: str) -> None:
    document = httpx.get(f"{gateway_url}/openapi.json").json()
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletionRequest")
    assert "422" in chat["responses"] and "503" in chat["responses"]
    assert {"ChatCompletionRequest", "CompletionRequest", "EmbeddingsRequest", "ErrorResponse"} <= set(
        document["components"]["schemas"]
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_is_answered_with_a_5xx(gateway_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    strategy = st.one_of(*(operation.as_strategy(generation_mode=mode) for operation in operations))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = httpx.Client(base_url=gateway_url, timeout=30)

    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url=gateway_url)
        headers = {**(kwargs.get("headers") or {}), "authorization": f"Bearer {KEY}"}
        response = session.request(
            kwargs["method"],
            kwargs["url"],
            headers=headers,
            params=kwargs.get("params"),
            content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
            json=kwargs.get("json"),
        )
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.path} {kwargs.get('json')!r:.300} -> {response.text[:300]}")
        assert response.status_code < 500, failures[-1]

    try:
        check()
    finally:
        session.close()
        print(f"fuzz {mode.value}: {sum(statuses.values())} cases, statuses {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= EXAMPLES
    assert not failures
