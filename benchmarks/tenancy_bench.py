"""What keys, rate limits and budgets add to a request, with Redis on loopback.

1. The limits' own Redis work on the request path: admission (requests/min, tokens/min, a concurrency slot, one
   script) plus the budget reservation (one script), p50/p99, and the settlement after the answer (one script).
2. The gateway's flow per request (`GatewayService.handle` over an instant tier), interleaved: the same key with no
   limits (the anchor) and with every limit and a budget, p50/p99 and the ratio.
3. Requests/s of the HTTP app on identical cache hits at concurrency 16 (in process, ASGI), without and with limits.

    python -m benchmarks.tenancy_bench [--requests 3000] [--out docs/tenancy-bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from benchmarks.trace_bench import InstantTier
from cache import CacheStore, SemanticCache, SentenceTransformerEmbedder
from router import build_router
from serving.config import StackConfig, parse_config
from serving.gateway import GatewayService, build_gateway
from serving.http import build_http_app
from serving.jobs import job_from_chat
from serving.metrics import GatewayMetrics
from serving.protocol import ChatCompletionRequest
from serving.redis_server import LocalRedis
from serving.tenancy import Limits, Meter, Principal, Settlement

LIMITED = Limits(rpm=10**8, tpm=10**10, max_concurrent=10**6, budget_usd=10**6, budget_window="month")


def _config(prefix: str, limited: bool) -> StackConfig:
    tenancy = {"tenants": {"bench": LIMITED.model_dump()}} if limited else {}
    return parse_config(
        {
            "tiers": [
                {
                    "name": "small",
                    "model": "small",
                    "price_per_1k_prompt_tokens": 0.1,
                    "price_per_1k_completion_tokens": 0.2,
                },
                {
                    "name": "large",
                    "model": "large",
                    "price_per_1k_prompt_tokens": 1,
                    "price_per_1k_completion_tokens": 2,
                },
            ],
            "router": {"scorer": "heuristic", "thresholds": [0.5]},
            "cache": {"redis": {"key_prefix": prefix, "socket_timeout_s": 2.0}},
            "tenancy": tenancy,
        }
    )


def _pct(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "n": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1e3, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 3),
    }


async def _meter_path(url: str, requests: int) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    config = _config(f"bench-{uuid.uuid4().hex[:8]}", True)
    meter = Meter(client, config.cache.redis.key_prefix, config.tenancy, 360, GatewayMetrics())
    principal = Principal("bench", "key-1", limits=LIMITED)
    admit, finish = [], []
    for number in range(requests):
        started = time.perf_counter()
        ticket = await meter.admit(principal, f"r{number}", 40)
        await meter.reserve(ticket, 5000)
        admitted = time.perf_counter()
        await meter.finish(ticket, Settlement("small", "small", "miss", 200, 37, 12, 1234))
        finish.append(time.perf_counter() - admitted)
        admit.append(admitted - started)
    await client.aclose()
    return {"admit_and_reserve": _pct(admit), "settle": _pct(finish)}


async def _flow(services: dict[str, GatewayService], requests: int) -> dict[str, Any]:
    data = {"model": "small", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    body = ChatCompletionRequest.model_validate(data)
    raw = json.dumps(data).encode()
    times: dict[str, list[float]] = {name: [] for name in services}
    principal = Principal("bench", "key-1")
    for number in range(requests):
        for name, service in services.items():  # interleaved: both see the same machine at the same moments
            job = job_from_chat(body, raw, data, f"{name}-{number}-{uuid.uuid4().hex[:6]}", "bench")
            started = time.perf_counter()
            await service.handle(job, principal)
            times[name].append(time.perf_counter() - started)
    return {name: _pct(values) for name, values in times.items()}


async def _hits_per_second(app_services: dict[str, GatewayService], concurrency: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
    }
    for name, service in app_services.items():
        transport = httpx.ASGITransport(app=build_http_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            first = await client.post("/v1/chat/completions", json=body)
            assert first.status_code == 200, first.text
            done, errors = 0, 0
            deadline = time.perf_counter() + seconds

            async def user(until: float = deadline) -> None:
                nonlocal done, errors
                while time.perf_counter() < until:
                    response = await client.post("/v1/chat/completions", json=body)
                    if response.status_code == 200 and response.headers.get("x-tierserve-cache") == "hit":
                        done += 1
                    else:
                        errors += 1

            started = time.perf_counter()
            await asyncio.gather(*(user() for _ in range(concurrency)))
            out[name] = {"hits_per_s": round(done / (time.perf_counter() - started), 1), "errors": errors}
    return out


async def _run(url: str, requests: int, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"requests": requests}
    result["meter"] = await _meter_path(url, requests)
    services: dict[str, GatewayService] = {}
    embedder = SentenceTransformerEmbedder()
    caches: list[SemanticCache] = []
    for name, limited in (("no_limits", False), ("limits_and_budget", True)):
        config = _config(f"bench-{uuid.uuid4().hex[:8]}", limited)
        cache = SemanticCache(config.cache, embedder, CacheStore(config.cache.redis, url))
        caches.append(cache)
        services[name] = build_gateway(
            config,
            {"small": InstantTier(), "large": InstantTier()},
            cache,
            build_router(config.router, ["small", "large"]),
            GatewayMetrics(),
            redis_url=url if limited else None,  # the anchor: no limits stage, no ledger
        )
    await _flow(services, requests // 10)  # warm-up
    result["flow"] = await _flow(services, requests)
    result["flow"]["ratio_p50"] = round(
        result["flow"]["limits_and_budget"]["p50_ms"] / result["flow"]["no_limits"]["p50_ms"], 3
    )
    result["hits"] = await _hits_per_second(services, 16, seconds)
    result["hits"]["ratio"] = round(
        result["hits"]["limits_and_budget"]["hits_per_s"] / result["hits"]["no_limits"]["hits_per_s"], 3
    )
    for service in services.values():
        await service.close()
    for cache in caches:
        await cache.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="Timed requests per measurement.")
    parser.add_argument("--seconds", type=float, default=15.0, help="Seconds per hits/s run.")
    parser.add_argument("--out", type=Path, default=None, help="Write the figures as JSON here too.")
    args = parser.parse_args(argv)
    with LocalRedis() as server:
        result = asyncio.run(_run(server.url, args.requests, args.seconds))
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
