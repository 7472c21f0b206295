"""The router inside the gateway: headers, tenant and request overrides, escalation, cost metrics.

Three fake tiers behind the real FastAPI edge; the scorer is a stub whose score each test sets, so what is
checked is the gateway's use of the decision (the scorer itself is tested in test_router*.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cache import CacheStore, SemanticCache
from router import RouteInput, Router
from router.policy import ThresholdPolicy
from serving.config import parse_config
from serving.gateway import build_gateway
from serving.http import build_http_app
from serving.metrics import GatewayMetrics
from tests.fakes import FakeTier, HashingEmbedder

TIERS = ["small", "medium", "large"]


class StubScorer:
    """Returns `score`; remembers what it was asked to score."""

    def __init__(self, score: float) -> None:
        self.value = score
        self.seen: list[RouteInput] = []

    def score(self, request: RouteInput) -> float:
        self.seen.append(request)
        return self.value


@dataclass
class Stack:
    client: httpx.AsyncClient
    tiers: dict[str, FakeTier]
    scorer: StubScorer
    metrics: GatewayMetrics
    cache: SemanticCache | None

    async def ask(self, content: str = "hello", headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        payload = {"model": "auto", "messages": [{"role": "user", "content": content}], "temperature": 0, **body}
        return await self.client.post("/v1/chat/completions", json=payload, headers=headers or {})

    def sample(self, name: str, **labels: str) -> float | None:
        for family in text_string_to_metric_families(self.metrics.render().decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None


Factory = Callable[..., Any]


@pytest.fixture
async def make_stack(redis_url: str, key_prefix: str) -> AsyncIterator[Factory]:
    made: list[Stack] = []

    async def factory(
        score: float = 0.1, router: dict[str, Any] | None = None, cache: bool = False, **tiers: FakeTier
    ) -> Stack:
        config = parse_config(
            {
                "tiers": [
                    {"name": n, "model": n, "price_per_1k_prompt_tokens": p, "price_per_1k_completion_tokens": p}
                    for n, p in zip(TIERS, (1.0, 4.0, 10.0), strict=True)
                ],
                "router": {"thresholds": [0.4, 0.8], **(router or {})},
                "cache": {"redis": {"key_prefix": key_prefix}},
                "gateway": {"api_keys": {"sk-a": "alpha", "sk-b": "beta"}},
            }
        )
        fakes = {n: tiers.get(n) or FakeTier([f"from {n}"], prompt_tokens=10, replica=f"{n}-1") for n in TIERS}
        scorer = StubScorer(score)
        semantic = None
        if cache:
            semantic = SemanticCache(config.cache, HashingEmbedder(), CacheStore(config.cache.redis, redis_url))
        metrics = GatewayMetrics()
        service = build_gateway(config, fakes, semantic, Router(scorer, ThresholdPolicy(TIERS, [0.4, 0.8])), metrics)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_http_app(service)), base_url="http://t")
        stack = Stack(client, fakes, scorer, metrics, semantic)
        made.append(stack)
        return stack

    yield factory
    for stack in made:
        await stack.client.aclose()
        if stack.cache is not None:
            await stack.cache.close()


A = {"authorization": "Bearer sk-a"}
B = {"authorization": "Bearer sk-b"}


# 0.8 is a threshold: a score on a cut point goes up.
@pytest.mark.parametrize(("score", "tier"), [(0.1, "small"), (0.5, "medium"), (0.8, "large"), (0.95, "large")])
async def test_three_tiers_by_score_with_headers_and_metrics(make_stack: Factory, score: float, tier: str) -> None:
    stack = await make_stack(score=score)
    response = await stack.ask(headers=A)
    assert response.status_code == 200
    expected = tier
    assert response.headers["x-tierserve-tier"] == expected
    assert response.headers["x-tierserve-route-score"] == f"{score:.4f}"
    assert response.headers["x-tierserve-route-reason"] == "score"
    assert response.json()["choices"][0]["message"]["content"] == f"from {expected}"
    assert stack.sample("tierserve_route_decisions_total", tier=expected, reason="score") == 1.0


async def test_request_headers_pin_and_cap(make_stack: Factory) -> None:
    stack = await make_stack(score=0.95)
    capped = await stack.ask(headers={**A, "x-tierserve-max-tier": "medium"})
    assert (capped.headers["x-tierserve-tier"], capped.headers["x-tierserve-route-reason"]) == ("medium", "capped")
    pinned = await stack.ask(headers={**A, "x-tierserve-pin-tier": "small"})
    assert (pinned.headers["x-tierserve-tier"], pinned.headers["x-tierserve-route-reason"]) == ("small", "pinned")
    # The cap wins over a pin above it.
    both = await stack.ask(headers={**A, "x-tierserve-pin-tier": "large", "x-tierserve-max-tier": "small"})
    assert both.headers["x-tierserve-tier"] == "small"
    unknown = await stack.ask(headers={**A, "x-tierserve-max-tier": "huge"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_tier" and "huge" in unknown.json()["error"]["message"]


async def test_request_overrides_can_be_switched_off(make_stack: Factory) -> None:
    stack = await make_stack(score=0.95, router={"request_overrides": False})
    response = await stack.ask(headers={**A, "x-tierserve-max-tier": "small"})
    assert response.headers["x-tierserve-tier"] == "large"


async def test_tenant_pin_and_cap(make_stack: Factory) -> None:
    stack = await make_stack(
        score=0.95, router={"tenants": {"alpha": {"max_tier": "medium"}, "beta": {"pin_tier": "small"}}}
    )
    assert (await stack.ask(headers=A)).headers["x-tierserve-tier"] == "medium"
    assert (await stack.ask(headers=B)).headers["x-tierserve-tier"] == "small"
    # A request cannot lift the tenant's cap ...
    lifted = await stack.ask(headers={**A, "x-tierserve-pin-tier": "large"})
    assert lifted.headers["x-tierserve-tier"] == "medium"
    # ... and an explicit model above it is refused.
    explicit = await stack.ask(headers=A, model="large")
    assert explicit.status_code == 403 and explicit.json()["error"]["code"] == "tier_not_allowed"
    assert (await stack.ask(headers=A, model="small")).status_code == 200


def test_tenant_overrides_naming_unknown_tiers_fail_config_validation() -> None:
    from serving.config import ConfigError

    with pytest.raises(ConfigError, match="unknown tier"):
        parse_config(
            {
                "tiers": [{"name": "small", "model": "a"}, {"name": "large", "model": "b"}],
                "router": {"tenants": {"alpha": {"max_tier": "medium"}}},
            }
        )


async def test_escalates_once_on_a_failing_tier(make_stack: Factory) -> None:
    stack = await make_stack(score=0.1, router={"escalation": {"enabled": True}}, small=FakeTier(fail="start"))
    response = await stack.ask(headers=A)
    assert response.status_code == 200
    assert response.headers["x-tierserve-tier"] == "medium"
    assert response.headers["x-tierserve-escalated-from"] == "small"
    assert response.json()["choices"][0]["message"]["content"] == "from medium"
    assert stack.sample("tierserve_router_escalations_total", from_tier="small", to_tier="medium", reason="error") == 1


async def test_escalates_an_empty_answer_cut_at_max_tokens_also_when_streaming(make_stack: Factory) -> None:
    empty = FakeTier([], finish_reason="length")
    stack = await make_stack(score=0.1, router={"escalation": {"enabled": True}}, small=empty)
    response = await stack.ask(headers=A, stream=True)
    assert response.status_code == 200 and response.headers["x-tierserve-tier"] == "medium"
    assert "from medium" in response.text and response.text.rstrip().endswith("data: [DONE]")
    assert empty.calls == 1 and stack.tiers["medium"].calls == 1
    labels = {"from_tier": "small", "to_tier": "medium", "reason": "empty_length"}
    assert stack.sample("tierserve_router_escalations_total", **labels) == 1


async def test_no_escalation_when_disabled_capped_or_at_the_top(make_stack: Factory) -> None:
    off = await make_stack(score=0.1, small=FakeTier(fail="start"))
    assert (await off.ask(headers=A)).status_code == 503
    capped = await make_stack(score=0.1, router={"escalation": {"enabled": True}}, small=FakeTier(fail="start"))
    assert (await capped.ask(headers={**A, "x-tierserve-max-tier": "small"})).status_code == 503
    top = await make_stack(score=0.99, router={"escalation": {"enabled": True}}, large=FakeTier(fail="start"))
    assert (await top.ask(headers=A)).status_code == 503
    # Explicitly named tiers are never escalated.
    named = await make_stack(router={"escalation": {"enabled": True}}, small=FakeTier(fail="start"))
    assert (await named.ask(headers=A, model="small")).status_code == 503


async def test_escalation_happens_once(make_stack: Factory) -> None:
    stack = await make_stack(
        score=0.1,
        router={"escalation": {"enabled": True}},
        small=FakeTier(fail="start"),
        medium=FakeTier(fail="start"),
    )
    assert (await stack.ask(headers=A)).status_code == 503
    assert stack.tiers["large"].calls == 0


async def test_non_empty_truncated_answer_is_not_escalated(make_stack: Factory) -> None:
    stack = await make_stack(
        score=0.1, router={"escalation": {"enabled": True}}, small=FakeTier(["partial"], finish_reason="length")
    )
    response = await stack.ask(headers=A)
    assert response.headers["x-tierserve-tier"] == "small"
    assert response.json()["choices"][0]["finish_reason"] == "length"


async def test_routing_saving_against_the_largest_tier_is_counted_beside_the_real_cost(make_stack: Factory) -> None:
    stack = await make_stack(score=0.1)
    await stack.ask(headers=A)
    # FakeTier: 10 prompt tokens, 1 completion token; small costs 1/1k, large 10/1k per token.
    assert stack.sample("tierserve_cost_usd_total", tier="small", tenant="alpha") == pytest.approx(11 / 1000)
    # On the largest tier the same tokens would have cost 110/1k: routing saved the difference.
    assert stack.sample("tierserve_cost_saved_usd_total", tenant="alpha", by="routing") == pytest.approx(99 / 1000)


async def test_router_reuses_the_cache_embedding_and_embeds_when_bypassed(make_stack: Factory) -> None:
    stack = await make_stack(score=0.1, cache=True)
    await stack.ask("what is routing", headers=A)
    first = stack.scorer.seen[-1]
    assert first.embedding is not None and first.embedding.shape == (384,)
    assert np.allclose(first.embedding, HashingEmbedder().embed(["what is routing"])[0])
    # Hot sampling bypasses the cache; the router still gets an embedding of the same text.
    await stack.ask("what is routing", headers=A, temperature=1.0)
    assert stack.scorer.seen[-1].embedding is not None
    off = await make_stack(score=0.1, cache=True, router={"embed_when_bypassed": False})
    await off.ask("what is routing", headers=A, temperature=1.0)
    assert off.scorer.seen[-1].embedding is None
    no_cache = await make_stack(score=0.1)
    await no_cache.ask("x", headers=A)
    assert no_cache.scorer.seen[-1].embedding is None
