"""Prometheus metrics of one gateway replica, in its own registry (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
            "Cost of answers at the configured prices, by tier ('cache' for hits at the cache's price) and tenant.",
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
        self.saved = Counter(
            "tierserve_cost_saved_usd",
            "What the cache and the router saved against answering everything on the largest tier, by tenant and by.",
            ["tenant", "by"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "tierserve_limit_refusals",
            "Requests refused by a rate limit or budget, by scope kind and reason.",
            ["scope", "reason"],
            registry=self.registry,
        )
        self.budget_used = Gauge(
            "tierserve_budget_used_ratio",
            "Share of a budget settled or held in this period, as this replica last saw it (scope: key or tenant).",
            ["scope", "name"],
            registry=self.registry,
        )
        self.budget_soft = Gauge(
            "tierserve_budget_soft_limit",
            "1 while a budget is past its soft limit (tenancy.soft_limit), as this replica last saw it.",
            ["scope", "name"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "tierserve_breaker_state",
            "Circuit breaker of each tier in this gateway replica: 0 closed, 1 half-open, 2 open.",
            ["tier"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "tierserve_breaker_transitions",
            "Circuit breaker state changes, by tier and the state entered.",
            ["tier", "state"],
            registry=self.registry,
        )
        self.retries = Counter(
            "tierserve_retries",
            "Calls retried on the same tier before their first byte, by tier and outcome (retried, budget_exhausted).",
            ["tier", "outcome"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "tierserve_fallbacks",
            "Requests moved to a fallback tier, by the tier they left, the tier that took them, and why.",
            ["from_tier", "to_tier", "reason"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "tierserve_degraded_answers",
            "Requests answered from the cache at the degraded threshold because every tier of their chain was open.",
            ["tier"],
            registry=self.registry,
        )
        self.guard_verdicts = Counter(
            "tierserve_guard_verdicts",
            "Input guard verdicts (pass, flag, block, route) of requests it scored.",
            ["verdict"],
            registry=self.registry,
        )
        self.guard_findings = Counter(
            "tierserve_guard_findings",
            "What the guards found: side (input, output) and category (pii, secret, leak).",
            ["side", "category"],
            registry=self.registry,
        )
        self.drift_score = Gauge(
            "tierserve_drift_score",
            "Drift of each signal against the baseline in this gateway replica (1 = at the alarm line).",
            ["signal"],
            registry=self.registry,
        )
        self.drift_alarm = Gauge(
            "tierserve_drift_alarm",
            "1 while the signal's drift alarm is up in this gateway replica.",
            ["signal"],
            registry=self.registry,
        )
        self.shadow_requests = Counter(
            "tierserve_shadow_requests",
            "Shadow samples by source (routed, pinned, cache), the tier whose answer was checked, and outcome "
            "(scored, queue_full, busy, failed, skipped).",
            ["source", "tier", "outcome"],
            registry=self.registry,
        )
        self.shadow_agreements = Counter(
            "tierserve_shadow_agreements",
            "Scored shadow samples whose answer the largest tier agreed with (at or above the agreement line).",
            ["source", "tier"],
            registry=self.registry,
        )
        self.shadow_similarity = Histogram(
            "tierserve_shadow_similarity",
            "Cosine similarity between an answer and the largest tier's answer to the same request.",
            ["source", "tier"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0),
            registry=self.registry,
        )
        self.shadow_cost = Counter(
            "tierserve_shadow_cost_usd",
            "What the shadow generations cost at the largest tier's prices.",
            registry=self.registry,
        )
        self.shadow_preemptions = Counter(
            "tierserve_shadow_preemptions",
            "Shadow generations stopped because user requests needed the room (idle mode); each waits again.",
            registry=self.registry,
        )
        self.shadow_inflight = Gauge(
            "tierserve_shadow_inflight",
            "Shadow generations in flight in this gateway replica.",
            registry=self.registry,
        )
        self.shed = Counter(
            "tierserve_shed",
            "Requests refused at once because their tier was full (overloaded) or their tenant over its share.",
            ["tier", "reason"],
            registry=self.registry,
        )
        self.shed_limit = Gauge(
            "tierserve_shed_limit",
            "The adaptive in-flight limit of each tier in this gateway replica.",
            ["tier"],
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "tierserve_redis_up",
            "1 when this gateway replica could read Redis at the last scrape of /metrics, 0 when it could not.",
            registry=self.registry,
        )
        self.unmetered = Gauge(
            "tierserve_unmetered_settlements",
            "Settlements of requests served while Redis was down, waiting to be written.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
