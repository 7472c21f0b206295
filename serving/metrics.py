"""Prometheus metrics of one gateway replica, in its own registry (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tierserve_requests",
            "Requests answered, by endpoint, tier, cache outcome and HTTP status.",
            ["endpoint", "tier", "cache", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tierserve_request_latency_seconds",
            "End-to-end latency of successful requests.",
            ["endpoint", "tier", "cache"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "tierserve_time_to_first_token_seconds",
            "Time from request arrival to the first content token.",
            ["tier", "cache"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "tierserve_tokens",
            "Tokens processed, by tier and kind (prompt/completion); cache hits count as tier 'cache'.",
            ["tier", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "tierserve_cost_usd",
            "Cost of generated answers at the configured per-tier prices.",
            ["tier", "tenant"],
            registry=self.registry,
        )
        self.stage = Histogram(
            "tierserve_stage_seconds",
            "Time spent in each gateway stage (embed, cache_lookup, route, cache_store).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.route_score = Histogram(
            "tierserve_route_score",
            "Difficulty scores given by the router.",
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=self.registry,
        )

        self.route_decisions = Counter(
            "tierserve_route_decisions",
            "Routed (model=auto) requests by chosen tier and reason (score, pinned, capped).",
            ["tier", "reason"],
            registry=self.registry,
        )
        self.escalations = Counter(
            "tierserve_router_escalations",
            "Routed requests retried on the next tier up (reason: error, empty_length).",
            ["from_tier", "to_tier", "reason"],
            registry=self.registry,
        )
        self.cost_largest = Counter(
            "tierserve_cost_largest_tier_usd",
            "What the generated answers would have cost on the largest tier (minus tierserve_cost_usd: the saving).",
            ["tenant"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
