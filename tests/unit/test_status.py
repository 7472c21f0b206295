"""`/admin/status` and `tierserve status`'s screen over a gateway with fake tiers and a real Redis: replicas come
from the presence records the replicas publish (written here as a tier replica writes it), engine queues from
their published metrics, the last minute from the gateway's own answers, Redis's role from Redis itself."""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from rich.console import Console

from commands.status import render_status
from serving.stack_metrics import metrics_key
from serving.status import RecentAnswers, merge_windows, presence_key
from tests.unit.gateway_stack import StackFactory

ADMIN_KEY = "admin-secret-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
ENGINE = """# HELP vllm:num_requests_running Running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="small"} 3.0
# HELP vllm:num_requests_waiting Waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="small"} 5.0
"""


def test_the_last_minute_is_summed_over_gateway_replicas() -> None:
    one, two = RecentAnswers(), RecentAnswers()
    for ttft in (0.1, 0.2, 0.3):
        one.record("small", "alpha", ttft, 10)
    two.record("small", "beta", 0.9, 20)
    two.record("cache", "beta", 0.01, 20)
    merged = merge_windows([one.summary(), two.summary()])
    assert merged["tiers"]["small"] == {"answers_per_min": 4.0, "tokens_per_s": 0.83, "ttft_p50_s": 0.25}
    assert merged["tenants"]["beta"] == {"answers": 2, "hit_ratio": 0.5}
    assert RecentAnswers(window_s=60).summary(now=0)["tiers"] == {}


async def test_the_status_report_joins_presences_engines_answers_redis_and_budgets(
    make_stack: StackFactory, redis_url: str, key_prefix: str
) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY, tenancy={"tenants": {"alpha": {"budget_usd": 10}}})
    for _ in range(2):  # a miss, then a hit
        assert (await stack.chat(model="small")).status_code == 200
    client = aioredis.Redis.from_url(redis_url)
    try:
        where = {"role": "tier", "tier": "small", "replica": "small#a", "node_ip": "10.0.0.2", "pid": 7}
        await client.set(presence_key(key_prefix, "tier", "small#a", "small"), json.dumps(where), px=10_000)
        await client.set(metrics_key(key_prefix, "tier", "small#a", "small"), ENGINE, px=10_000)
        gateway = stack.service.presence()
        await client.set(presence_key(key_prefix, "gateway", "local"), json.dumps(gateway), px=10_000)
    finally:
        await client.aclose()
    report = (await stack.client.get("/admin/status", headers=ADMIN)).json()
    small = report["tiers"]["small"]
    assert small["replicas"] == [
        {"replica": "small#a", "node_ip": "10.0.0.2", "node_id": None, "running": 3.0, "waiting": 5.0}
    ]
    assert small["replicas_by_node"] == {"10.0.0.2": 1} and small["queue"] == 5.0
    assert small["answers_per_min"] == 1.0 and small["ttft_p50_s"] is not None
    assert report["cache"]["tenants"]["alpha"]["entries"] == 1
    assert report["cache"]["tenants"]["alpha"]["hit_ratio"] == 0.5
    assert report["redis"]["role"] == "master"
    assert report["budgets"]["alpha"]["budget_usd"] == 10 and report["budgets"]["alpha"]["spent_usd"] > 0
    assert report["nodes"] == [] and report["gateways"][0]["replica"] == "local"  # no Ray in a unit test
    console = Console(record=True, width=160)
    console.print(render_status(report))
    screen = console.export_text()
    assert "10.0.0.2: 1" in screen and "budget burn" in screen and "redis: master" in screen
    assert (await stack.client.get("/admin/status")).status_code == 401
