"""A GatewayService behind its real FastAPI edge, with fake tiers, a hashing embedder and a real Redis:
the stack the unit tests of the HTTP edge, routing and tracing drive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from fastapi import FastAPI
from opentelemetry.trace import Tracer

from cache import CacheStore, SemanticCache
from guards import Classifier, Guards
from router import Router
from router.policy import ThresholdPolicy
from router.scorer import HeuristicScorer
from serving.audit import AuditLog
from serving.config import parse_config
from serving.gateway import GatewayService, build_gateway
from serving.http import build_http_app
from serving.metrics import GatewayMetrics
from tests.fakes import FakeTier, HashingEmbedder

ALPHA = {"authorization": "Bearer sk-alpha"}
BETA = {"authorization": "Bearer sk-beta"}
EASY = "hi"
HARD = (
    "Explain step by step why this Python function deadlocks, compare the trade-offs of two fixes and "
    "justify which design you would choose: def run(a, b): a.acquire(); b.acquire(); return a"
)
QUESTION = "What is the capital of France?"


def chat_body(content: str = QUESTION, **overrides: Any) -> dict[str, Any]:
    return {
        "model": "small",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        **overrides,
    }


def completion_body(prompt: str = "Once upon a time", **overrides: Any) -> dict[str, Any]:
    return {"model": "small", "prompt": prompt, "temperature": 0, **overrides}


@dataclass
class Stack:
    app: FastAPI
    service: GatewayService
    small: FakeTier
    large: FakeTier
    cache: SemanticCache | None
    metrics: GatewayMetrics
    client: httpx.AsyncClient

    def openai(self, api_key: str = "sk-alpha") -> openai.AsyncOpenAI:
        http_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t")
        return openai.AsyncOpenAI(api_key=api_key, base_url="http://t/v1", http_client=http_client, max_retries=0)

    async def chat(self, headers: dict[str, str] | None = ALPHA, **body: Any) -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=chat_body(**body), headers=headers)


StackFactory = Callable[..., Awaitable[Stack]]


async def stack_factory(redis_url: str, key_prefix: str) -> AsyncIterator[StackFactory]:
    """Yields a factory of stacks and closes every stack it made."""
    made: list[Stack] = []

    async def factory(
        *,
        small: FakeTier | None = None,
        large: FakeTier | None = None,
        redis: str | None = None,
        cache: bool = True,
        gateway: dict[str, Any] | None = None,
        raise_app_exceptions: bool = True,
        tracer: Tracer | None = None,
        tenancy: dict[str, Any] | None = None,
        admin_key: str | None = None,
        tier_options: dict[str, dict[str, Any]] | None = None,
        audit: AuditLog | None = None,
        guards: dict[str, Any] | None = None,
        classifier: Classifier | None = None,
        drift: dict[str, Any] | None = None,
        shadow: dict[str, Any] | None = None,
        redis_options: dict[str, Any] | None = None,
    ) -> Stack:
        extra = tier_options or {}
        config = parse_config(
            {
                "tiers": [
                    {
                        "name": "small",
                        "model": "SmolLM2-135M-Instruct",
                        "prepared": "smollm2-135m-instruct",
                        "price_per_1k_prompt_tokens": 1.0,
                        "price_per_1k_completion_tokens": 2.0,
                        **extra.get("small", {}),
                    },
                    {"name": "large", "model": "gemma-3-270m", "prepared": "gemma3-270m", **extra.get("large", {})},
                ],
                "router": {"thresholds": [0.5]},
                "cache": {
                    "redis": {
                        "key_prefix": key_prefix,
                        "retry_after_s": 30,
                        "socket_timeout_s": 2.0,
                        **(redis_options or {}),
                    }
                },
                "gateway": {
                    "api_keys": {"sk-alpha": "alpha", "sk-beta": "beta"},
                    "max_body_bytes": 4096,
                    "health_cache_s": 0,
                    **(gateway or {}),
                },
                "tenancy": {**(tenancy or {})},
                "guards": {**(guards or {})},
                "drift": {**(drift or {})},
                "shadow": {**(shadow or {})},
            }
        )
        semantic = None
        if cache:
            store = CacheStore(config.cache.redis, redis or redis_url)
            semantic = SemanticCache(config.cache, HashingEmbedder(), store)
        small = small or FakeTier(["Paris", " is", " the", " capital."], prompt_tokens=9, replica="small-1")
        large = large or FakeTier(["A", " long", " answer."], prompt_tokens=40, replica="large-1")
        router = Router(HeuristicScorer(config.router.weights), ThresholdPolicy(["small", "large"], [0.5]))
        metrics = GatewayMetrics()
        service = build_gateway(
            config,
            {"small": small, "large": large},
            semantic,
            router,
            metrics,
            tracer,
            redis_url=redis or redis_url,
            admin_key=admin_key,
            audit=audit,
            guards=Guards(config.guards, classifier) if guards is not None else None,
        )
        app = build_http_app(service)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        client = httpx.AsyncClient(transport=transport, base_url="http://t")
        stack = Stack(app, service, small, large, semantic, metrics, client)
        made.append(stack)
        return stack

    yield factory
    for stack in made:
        await stack.client.aclose()
        await stack.service.close()
        if stack.cache is not None:
            await stack.cache.close()
