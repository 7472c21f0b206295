"""`GET /admin/status`: the fleet in one report (serving/status.py gathers the parts; `tierserve status` shows it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families

from serving.gateway import GatewayService
from serving.stack_metrics import Exposition, read_expositions
from serving.status import merge_windows, read_presences, serve_deployments, tier_engine_stats
from serving.tenancy.meter import Scope
from serving.tenancy.windows import to_usd

logger = logging.getLogger(__name__)


def _ray_nodes() -> list[dict[str, Any]]:
    import ray

    if not ray.is_initialized():
        return []
    nodes = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        resources = node.get("Resources", {})
        custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory", "object_store_memory")}
        nodes.append(
            {
                "node_id": node.get("NodeID"),
                "ip": node.get("NodeManagerAddress"),
                "alive": bool(node.get("Alive")),
                "cpus": resources.get("CPU", 0.0),
                "gpus": resources.get("GPU", 0.0),
                "memory_gb": round(resources.get("memory", 0.0) / 2**30, 1),
                "resources": {k: v for k, v in custom.items() if not k.startswith("node:")},
            }
        )
    return nodes


async def _blocking(call: Any, default: Any) -> Any:
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), timeout=10)
    except Exception as error:  # Ray's view is a part of the report, never a reason for it to fail
        logger.warning("status: %s failed: %r", getattr(call, "__name__", call), error)
        return default


def _breakers(expositions: Iterable[Exposition]) -> dict[str, dict[str, int]]:
    names = {0: "closed", 1: "half-open", 2: "open"}
    found: dict[str, dict[str, int]] = {}
    for exposition in expositions:
        if exposition.role != "gateway":
            continue
        for family in text_string_to_metric_families(exposition.text):
            if family.name != "tierserve_breaker_state":
                continue
            for sample in family.samples:
                state = names.get(int(sample.value), str(sample.value))
                counts = found.setdefault(sample.labels.get("tier", ""), {})
                counts[state] = counts.get(state, 0) + 1
    return found


async def _redis(service: GatewayService) -> dict[str, Any]:
    if service.redis is None:
        return {"role": None}
    try:
        info = await service.redis.info("replication")
        memory = await service.redis.info("memory")
    except Exception as error:
        return {"role": "unreachable", "error": type(error).__name__}
    return {
        "role": info.get("role"),
        "connected_replicas": info.get("connected_slaves", 0),
        "used_memory": memory.get("used_memory_human"),
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _budgets(service: GatewayService) -> dict[str, dict[str, Any]]:
    meter, redis = service.meter, service.redis
    if meter is None or redis is None:
        return {}
    now = datetime.now(UTC)
    burn = {}
    for tenant, policy in service.config.tenancy.tenants.items():
        if policy.budget_usd is None:
            continue
        # The budget's hash (serving/tenancy/scripts.py): `spent`, and `r:<request id>` = "<micro-USD>|<expiry>"
        # per reservation of a request in flight.
        raw: dict[Any, Any] = await redis.hgetall(meter.budget_key(Scope("tenant", tenant, policy), now))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        spent = int(fields.get("spent", 0))
        held = sum(int(value.split("|")[0]) for field, value in fields.items() if field.startswith("r:"))
        burn[tenant] = {
            "window": policy.budget_window,
            "budget_usd": policy.budget_usd,
            "spent_usd": round(to_usd(spent), 6),
            "held_usd": round(to_usd(held), 6),
            "used": round(to_usd(spent + held) / policy.budget_usd, 4),
        }
    return burn


async def fleet_status(service: GatewayService) -> dict[str, Any]:
    prefix = service.config.cache.redis.key_prefix
    presences: list[dict[str, Any]] = []
    expositions: list[Exposition] = []
    if service.redis is not None:
        try:
            presences = await read_presences(service.redis, prefix)
            expositions = await read_expositions(service.redis, prefix)
        except Exception as error:
            logger.warning("status: cannot read presences from Redis: %r", error)
    nodes = await _blocking(_ray_nodes, [])
    deployments = await _blocking(serve_deployments, {})
    engines = {(e.tier, e.replica): tier_engine_stats(e.text) for e in expositions if e.role == "tier"}
    gateways = [p for p in presences if p.get("role") == "gateway"]
    recent = merge_windows([p.get("window", {}) for p in gateways])
    breakers = _breakers(expositions)
    tiers: dict[str, Any] = {}
    for tier in service.config.tiers:
        replicas = [
            {
                "replica": p["replica"],
                "node_ip": p.get("node_ip"),
                "node_id": p.get("node_id"),
                **engines.get((tier.name, p["replica"]), {}),
            }
            for p in presences
            if p.get("role") == "tier" and p.get("tier") == tier.name
        ]
        by_node: dict[str, int] = {}
        for replica in replicas:
            by_node[replica["node_ip"] or "?"] = by_node.get(replica["node_ip"] or "?", 0) + 1
        tiers[tier.name] = {
            "deployment": deployments.get(f"tier-{tier.name}"),
            "replicas": sorted(replicas, key=lambda r: r["replica"]),
            "replicas_by_node": by_node,
            "queue": sum(r.get("waiting", 0.0) for r in replicas),
            "running": sum(r.get("running", 0.0) for r in replicas),
            "breakers": breakers.get(tier.name, {}),
            **recent["tiers"].get(tier.name, {"answers_per_min": 0.0, "tokens_per_s": 0.0, "ttft_p50_s": None}),
        }
    entries: dict[str, int] = {}
    for gateway in gateways:  # each replica holds every tenant's index it has seen; the largest count is current
        for tenant, count in gateway.get("cache_entries", {}).items():
            entries[tenant] = max(entries.get(tenant, 0), count)
    tenants = set(entries) | set(recent["tenants"])
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "answered_by": service.replica,
        "nodes": nodes,
        "gateways": [{"replica": g.get("replica"), "node_ip": g.get("node_ip"), "pid": g.get("pid")} for g in gateways],
        "gateway_deployment": deployments.get("gateway"),
        "tiers": tiers,
        "cache": {
            "hits_per_min": recent["tiers"].get("cache", {}).get("answers_per_min", 0.0),
            "tenants": {
                tenant: {"entries": entries.get(tenant, 0), **recent["tenants"].get(tenant, {"answers": 0})}
                for tenant in sorted(tenants)
            },
        },
        "redis": await _redis(service),
        "budgets": await _budgets(service),
        "window_s": recent["window_s"],
    }


def install_status_routes(app: FastAPI, service: GatewayService) -> None:
    @app.get("/admin/status")
    async def status(request: Request) -> dict[str, Any]:
        service.authenticate_admin(request.headers.get("authorization"))
        return await fleet_status(service)
