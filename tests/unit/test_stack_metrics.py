"""One /metrics for the stack: gateway counters and histograms summed over replicas, gauges per replica, vLLM's
engine metrics labelled by tier and replica; the merged text parses back as Prometheus text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from serving.stack_metrics import Exposition, merge_expositions, metrics_key
from tests.unit.gateway_stack import StackFactory


def _gateway(requests: int, breaker: float) -> str:
    registry = CollectorRegistry()
    counter = Counter("tierserve_requests", "Requests.", ["status"], registry=registry)
    counter.labels("200").inc(requests)
    Gauge("tierserve_breaker_state", "Breaker.", ["tier"], registry=registry).labels("large").set(breaker)
    latency = Histogram("tierserve_request_latency_seconds", "Latency.", buckets=[0.1, 1.0], registry=registry)
    for _ in range(requests):
        latency.observe(0.05)
    return generate_latest(registry).decode()


def _vllm(running: int) -> str:
    registry = CollectorRegistry()
    Gauge("vllm:num_requests_running", "Running.", ["model_name"], registry=registry).labels("small").set(running)
    return generate_latest(registry).decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_sum_gauges_stay_per_replica_and_engines_get_tier_labels() -> None:
    merged = merge_expositions(
        [
            Exposition("gateway", "g1", _gateway(30, 0)),
            Exposition("gateway", "g2", _gateway(12, 2)),
            Exposition("tier", "s1", _vllm(3), tier="small"),
            Exposition("tier", "s2", _vllm(1), tier="small"),
        ]
    )
    samples = _samples(merged)
    assert samples[("tierserve_requests_total", (("status", "200"),))] == 42
    assert samples[("tierserve_request_latency_seconds_count", ())] == 42
    assert samples[("tierserve_request_latency_seconds_bucket", (("le", "0.1"),))] == 42
    assert samples[("tierserve_breaker_state", (("replica", "g2"), ("tier", "large")))] == 2
    assert samples[("tierserve_breaker_state", (("replica", "g1"), ("tier", "large")))] == 0
    running = (("model_name", "small"), ("replica", "s1"), ("tier", "small"))
    assert samples[("vllm:num_requests_running", running)] == 3
    assert not [name for name, _ in samples if name.endswith("_created")]


async def test_the_gateway_scrape_merges_what_other_replicas_published(
    make_stack: StackFactory, key_prefix: str, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    stack = await make_stack()
    assert (await stack.chat()).status_code == 200
    client = aioredis.Redis.from_url(redis_url)
    try:
        other = _gateway(5, 2)
        await client.set(metrics_key(key_prefix, "gateway", "g-other"), other, px=10_000)
        await client.set(metrics_key(key_prefix, "tier", "s1", "small"), _vllm(2), px=10_000)
        scraped = (await stack.client.get("/metrics")).text
    finally:
        await client.aclose()
    samples = _samples(scraped)
    running = (("model_name", "small"), ("replica", "s1"), ("tier", "small"))
    assert samples[("vllm:num_requests_running", running)] == 2
    assert samples[("tierserve_breaker_state", (("replica", "g-other"), ("tier", "large")))] == 2
    answered = [
        v for (name, labels), v in samples.items() if name == "tierserve_requests_total" and ("status", "200") in labels
    ]
    assert sum(answered) == 6  # this replica's one answer and the other replica's five
    assert samples[("tierserve_redis_up", (("replica", "local"),))] == 1


async def test_the_scrape_says_when_redis_cannot_be_read(make_stack: StackFactory) -> None:
    from serving.redis_server import free_port

    stack = await make_stack(redis=f"redis://127.0.0.1:{free_port()}/0", cache=False)  # nothing listens there
    scraped = (await stack.client.get("/metrics")).text
    assert _samples(scraped)[("tierserve_redis_up", (("replica", "local"),))] == 0
