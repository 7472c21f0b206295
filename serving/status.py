"""The fleet in one report (`GET /admin/status`, `tierserve status`): nodes, tiers with their replicas per node and
health, queue depth, TTFT p50 and tokens/s over the last minute, circuit breakers, cache entries and hit ratio per
tenant, Redis's role, budget burn.

Every replica publishes a presence record to Redis beside its metrics (where it runs, and for a gateway its last
minute of answers); the gateway asked merges them with Ray's view of the nodes and Serve's of the deployments."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "APP_NAME",
    "RecentAnswers",
    "node_identity",
    "presence_key",
    "read_presences",
    "serve_deployments",
    "tier_engine_stats",
]

WINDOW_S = 60.0
APP_NAME = "tierserve"  # the Serve application `tierserve serve` deploys


def presence_key(prefix: str, role: str, replica: str, tier: str | None = None) -> str:
    return f"{prefix}:presence:{role}:{tier or '-'}:{replica}"


def serve_deployments() -> dict[str, dict[str, Any]]:
    """Serve's view of the application's deployments: status and replicas per state, as plain text."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return {}
    application = serve.status().applications.get(APP_NAME)
    if application is None:
        return {}
    return {
        name: {
            "status": str(getattr(overview.status, "value", overview.status)),
            "replica_states": {str(getattr(s, "value", s)): n for s, n in overview.replica_states.items()},
            "message": overview.message,
        }
        for name, overview in application.deployments.items()
    }


def node_identity() -> dict[str, Any]:
    """Where this process runs: its Ray node (when in Ray), host address and pid."""
    found: dict[str, Any] = {"pid": os.getpid()}
    try:
        import ray

        if ray.is_initialized():
            found["node_id"] = ray.get_runtime_context().get_node_id()
            found["node_ip"] = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    except Exception:  # outside Ray (tests, tools): the pid is all there is
        pass
    return found


@dataclass(frozen=True)
class _Answer:
    at: float
    tier: str  # the tier that made it, "cache" for a hit
    tenant: str
    ttft_s: float
    completion_tokens: int


class RecentAnswers:
    """One gateway replica's answers of the last minute (bounded), summarised for its presence record."""

    def __init__(self, window_s: float = WINDOW_S, most: int = 20_000) -> None:
        self._window_s = window_s
        self._answers: deque[_Answer] = deque(maxlen=most)

    def record(self, tier: str, tenant: str, ttft_s: float, completion_tokens: int) -> None:
        self._answers.append(_Answer(time.time(), tier, tenant, ttft_s, completion_tokens))

    def summary(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        while self._answers and self._answers[0].at < now - self._window_s:
            self._answers.popleft()
        tiers: dict[str, dict[str, Any]] = {}
        tenants: dict[str, dict[str, int]] = {}
        for answer in self._answers:
            tier = tiers.setdefault(answer.tier, {"answers": 0, "tokens": 0, "ttft_s": []})
            tier["answers"] += 1
            tier["tokens"] += answer.completion_tokens
            if len(tier["ttft_s"]) < 2000:
                tier["ttft_s"].append(round(answer.ttft_s, 4))
            tenant = tenants.setdefault(answer.tenant, {"answers": 0, "hits": 0})
            tenant["answers"] += 1
            tenant["hits"] += int(answer.tier == "cache")
        return {"window_s": self._window_s, "tiers": tiers, "tenants": tenants}


async def read_presences(client: Any, prefix: str) -> list[dict[str, Any]]:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:presence:*", count=500)]
    if not keys:
        return []
    found = []
    for raw in await client.mget(keys):
        if raw:
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
    return found


def tier_engine_stats(exposition: str) -> dict[str, float]:
    """A tier replica's vLLM gauges: requests running and waiting, KV-cache use."""
    wanted = {
        "vllm:num_requests_running": "running",
        "vllm:num_requests_waiting": "waiting",
        "vllm:kv_cache_usage_perc": "kv_cache_usage",
        "vllm:gpu_cache_usage_perc": "kv_cache_usage",
    }
    stats: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        name = wanted.get(family.name)
        if name is not None:
            stats[name] = sum(sample.value for sample in family.samples)
    return stats


def merge_windows(windows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Every gateway replica's last minute, together: per tier answers/min, tokens/s and TTFT p50; per tenant the
    cache's hit ratio."""
    tiers: dict[str, dict[str, Any]] = {}
    tenants: dict[str, dict[str, int]] = {}
    window_s = max((float(w.get("window_s", WINDOW_S)) for w in windows), default=WINDOW_S)
    for window in windows:
        for name, tier in window.get("tiers", {}).items():
            merged = tiers.setdefault(name, {"answers": 0, "tokens": 0, "ttft_s": []})
            merged["answers"] += tier["answers"]
            merged["tokens"] += tier["tokens"]
            merged["ttft_s"] += tier["ttft_s"]
        for name, tenant in window.get("tenants", {}).items():
            merged_tenant = tenants.setdefault(name, {"answers": 0, "hits": 0})
            merged_tenant["answers"] += tenant["answers"]
            merged_tenant["hits"] += tenant["hits"]
    return {
        "window_s": window_s,
        "tiers": {
            name: {
                "answers_per_min": round(tier["answers"] * 60 / window_s, 2),
                "tokens_per_s": round(tier["tokens"] / window_s, 2),
                "ttft_p50_s": round(statistics.median(tier["ttft_s"]), 3) if tier["ttft_s"] else None,
            }
            for name, tier in tiers.items()
        },
        "tenants": {
            name: {"answers": t["answers"], "hit_ratio": round(t["hits"] / t["answers"], 3) if t["answers"] else None}
            for name, t in tenants.items()
        },
    }
