"""Timing protection: with it on, every generation carries the tenant as vLLM's prefix-cache salt."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from router import Router
from router.policy import ThresholdPolicy
from router.scorer import HeuristicScorer
from serving.config import parse_config
from serving.gateway import build_gateway
from serving.http import build_http_app
from serving.metrics import GatewayMetrics
from tests.fakes import FakeTier


async def ask_as_both_tenants(timing_protection: bool) -> list[dict[str, Any]]:
    config = parse_config(
        {
            "tiers": [
                {"name": "small", "model": "SmolLM2-135M-Instruct", "prepared": "smollm2-135m-instruct"},
                {"name": "large", "model": "gemma-3-270m", "prepared": "gemma3-270m"},
            ],
            "cache": {"timing_protection": timing_protection},
            "gateway": {"api_keys": {"sk-alpha": "alpha", "sk-beta": "beta"}},
        }
    )
    small = FakeTier(["Paris."], prompt_tokens=9)
    router = Router(HeuristicScorer(config.router.weights), ThresholdPolicy(["small", "large"], [0.5]))
    service = build_gateway(config, {"small": small, "large": FakeTier(["x"])}, None, router, GatewayMetrics())
    transport = httpx.ASGITransport(app=build_http_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for key in ("sk-alpha", "sk-beta"):
            body = {"model": "small", "messages": [{"role": "user", "content": "Capital of France?"}]}
            response = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200
    return small.payloads


@pytest.mark.parametrize("timing_protection", [True, False])
async def test_prefix_cache_is_salted_per_tenant_only_when_asked(timing_protection: bool) -> None:
    payloads = await ask_as_both_tenants(timing_protection)
    salts = [payload.get("cache_salt") for payload in payloads]
    # Same prompt from two tenants: salted, vLLM can never reuse alpha's KV blocks for beta.
    assert salts == (["alpha", "beta"] if timing_protection else [None, None])
    assert payloads[0]["messages"] == payloads[1]["messages"]
