"""Keys, rate limits, budgets and the ledger through the gateway, on a real Redis. Two gateways built on the same
Redis stand for two replicas (the Ray Serve e2e test does the same with real replicas)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from serving.jobs import job_from_chat
from serving.protocol import ChatCompletionRequest
from serving.redis_server import LocalRedis
from tests.fakes import FakeTier
from tests.unit.gateway_stack import Stack, StackFactory, chat_body

ADMIN_KEY = "admin-key-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
OPEN: dict[str, Any] = {"api_keys": {}}
# The rate-limit tests send more at once than the fake tier's shedding limit (32) would admit for one tenant:
# shedding has its own tests (test_failover.py); here the limits alone decide.
NO_SHED = {"small": {"reliability": {"shed": {"enabled": False}}}}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def create_key(stack: Stack, **fields: Any) -> tuple[str, str]:
    response = await stack.client.post("/admin/keys", json={"tenant": "acme", **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return body["key"], body["id"]


def counter_sum(stack: Stack, name: str) -> float:
    """A counter's total over all its labels, as a Prometheus `sum(...)` would give it."""
    return sum(
        sample.value
        for metric in stack.metrics.registry.collect()
        if metric.name == name
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def ask(stack: Stack, key: str | None, **body: Any) -> httpx.Response:
    headers = bearer(key) if key is not None else {}
    return await stack.client.post("/v1/chat/completions", json=chat_body(**body), headers=headers)


async def test_the_stack_stays_open_until_a_key_exists_then_every_route_needs_one(make_stack: StackFactory) -> None:
    stack = await make_stack(gateway=OPEN, admin_key=ADMIN_KEY, tenancy={"key_cache_s": 0.2})
    assert (await ask(stack, None)).status_code == 200  # no key anywhere: open, one default tenant
    key, key_id = await create_key(stack, name="ci")
    await asyncio.sleep(0.25)
    for response in (await ask(stack, None), await ask(stack, "tsk-000000000000-" + "x" * 43)):
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert (await stack.client.get("/v1/models")).status_code == 401
    ok = await ask(stack, key, content="who am i")
    assert ok.status_code == 200
    listed = (await stack.client.get("/admin/keys", headers=ADMIN)).json()["data"]
    assert [(r["id"], r["tenant"], r["name"]) for r in listed] == [(key_id, "acme", "ci")]
    assert "digest" not in listed[0] and key not in str(listed)
    # Revoked: refused on this replica within key_cache_s.
    revoked = await stack.client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)
    assert revoked.json()["record"]["revoked"] is True
    await asyncio.sleep(0.25)
    refused = await ask(stack, key)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    # Rotated: a new secret for the same id, the old one stays refused.
    rotated = (await stack.client.post(f"/admin/keys/{key_id}/rotate", headers=ADMIN)).json()
    assert rotated["id"] == key_id and rotated["key"] != key
    await asyncio.sleep(0.25)
    assert (await ask(stack, rotated["key"])).status_code == 200
    assert (await ask(stack, key)).status_code == 401


async def test_admin_routes_need_the_admin_key(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY)
    assert (await stack.client.get("/admin/keys", headers=bearer("sk-alpha"))).status_code == 401
    assert (await stack.client.get("/admin/keys")).status_code == 401
    missing = await stack.client.get("/admin/keys/000000000000", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"
    bad = await stack.client.post("/admin/keys", json={"tenant": "a", "rpm": -1}, headers=ADMIN)
    assert bad.status_code == 422
    unknown_model = await stack.client.post("/admin/keys", json={"tenant": "a", "models": ["gpt-9"]}, headers=ADMIN)
    assert unknown_model.status_code == 400 and unknown_model.json()["error"]["param"] == "models"
    disabled = await make_stack()
    assert (await disabled.client.get("/admin/keys", headers=ADMIN)).status_code == 403


async def test_a_key_limited_to_some_models_gets_403_elsewhere(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY)
    key, _ = await create_key(stack, models=["small"])
    assert (await ask(stack, key, model="small")).status_code == 200
    refused = await ask(stack, key, model="large")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    models = (await stack.client.get("/v1/models", headers=bearer(key))).json()["data"]
    assert [card["id"] for card in models] == ["small"]


async def test_keys_are_not_readable_in_redis(make_stack: StackFactory, redis_url: str, key_prefix: str) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY)
    key, key_id = await create_key(stack)
    secret = key.split("-", 2)[2]
    client = aioredis.Redis.from_url(redis_url)
    dumped = [await client.dump(name) async for name in client.scan_iter(f"{key_prefix}*")]
    await client.aclose()
    assert dumped and not any(secret.encode() in value for value in dumped if value)
    assert any(key_id.encode() in value for value in dumped if value)  # the id is there, the secret is not


async def test_requests_per_minute_hold_across_two_gateways(make_stack: StackFactory) -> None:
    """100 concurrent requests against a key limited to 30 a minute, spread over two gateways: 30 admitted."""
    first = await make_stack(admin_key=ADMIN_KEY, cache=False, tier_options=NO_SHED)
    second = await make_stack(admin_key=ADMIN_KEY, cache=False, tier_options=NO_SHED)
    key, _ = await create_key(first, rpm=30)
    responses = await asyncio.gather(*(ask((first, second)[i % 2], key, content=f"q{i}") for i in range(100)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 30 and statuses.count(429) == 70
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    # Each refusal names its request, as an answer does (the id its audit record and logs carry).
    refusal_ids = [r.headers["x-request-id"] for r in responses if r.status_code == 429]
    assert len(set(refusal_ids)) == 70 and all(refusal_ids)
    # A refusal carries OpenAI's headers too: the limit, nothing left, and when a request is counted out.
    assert (refused.headers["x-ratelimit-limit-requests"], refused.headers["x-ratelimit-remaining-requests"]) == (
        "30",
        "0",
    )
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    admitted = [r for r in responses if r.status_code == 200]
    assert {r.headers["x-ratelimit-limit-requests"] for r in admitted} == {"30"}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in admitted)
    assert remaining == list(range(30))  # each admission saw the one before it, whichever gateway took it
    assert all(r.headers["x-ratelimit-reset-requests"].endswith("s") for r in admitted)


async def test_tokens_per_minute_count_prompts_at_admission_and_completions_after(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY, cache=False)
    key, _ = await create_key(stack, tpm=400)
    first = await ask(stack, key, content="a question")
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "400"
    # The fake answers with 9 prompt and 4 completion tokens; the estimate at admission is corrected to them.
    second = await ask(stack, key, content="a question")
    assert 400 - 13 - 13 - 60 <= int(second.headers["x-ratelimit-remaining-tokens"]) <= 400 - 13
    responses = [await ask(stack, key, content="a question") for _ in range(40)]
    assert {r.status_code for r in responses} == {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["x-ratelimit-limit-tokens"] == "400"
    assert 0 <= int(refused.headers["x-ratelimit-remaining-tokens"]) < 400 and "retry-after" in refused.headers
    too_large = await ask(stack, key, content="word " * 600)  # about 750 tokens: above the limit alone
    assert too_large.status_code == 429 and "too large" in too_large.json()["error"]["message"]


async def test_concurrent_requests_are_bounded(make_stack: StackFactory) -> None:
    small = FakeTier(["a", "b"], hold_after=1)
    stack = await make_stack(admin_key=ADMIN_KEY, small=small, cache=False)
    key, _ = await create_key(stack, max_concurrent=3)
    tasks = [asyncio.create_task(ask(stack, key, content=f"q{i}", stream=True)) for i in range(3)]
    await asyncio.wait_for(small.holding.wait(), 5)
    while small.calls < 3:
        await asyncio.sleep(0.01)
    refused = await ask(stack, key, content="one more")
    assert refused.status_code == 429 and "in flight" in refused.json()["error"]["message"]
    small.release()
    assert [t.status_code for t in await asyncio.gather(*tasks)] == [200, 200, 200]
    assert (await ask(stack, key, content="after")).status_code == 200  # the slots were freed


async def test_a_budget_holds_under_a_race_and_the_ledger_is_the_settled_spend(
    make_stack: StackFactory, redis_url: str, key_prefix: str
) -> None:
    """50 concurrent requests against a budget that covers 10 worst cases: spend never passes budget plus one
    reservation, and the ledger sums to what the budget settled."""
    small = FakeTier(["x"] * 4, hold_after=2)
    stack = await make_stack(admin_key=ADMIN_KEY, small=small, cache=False, tier_options=NO_SHED)
    body_size = len(httpx.Request("POST", "http://t", json=chat_body(content="q00", max_tokens=16)).content)
    worst = ((body_size + 16) * 1.0 + 16 * 2.0) / 1000  # small: 1 USD per 1k prompt, 2 per 1k completion tokens
    key, key_id = await create_key(stack, budget_usd=round(worst * 10 + 1e-6, 6), budget_window="day")
    tasks = [asyncio.create_task(ask(stack, key, content=f"q{i:02d}", max_tokens=16)) for i in range(50)]
    await asyncio.wait_for(small.holding.wait(), 5)
    await asyncio.sleep(0.2)
    small.release()
    responses = await asyncio.gather(*tasks)
    ok = [r for r in responses if r.status_code == 200]
    quota = [r for r in responses if r.status_code == 429]
    assert len(ok) == 10 and len(quota) == 40
    error = quota[0].json()["error"]
    assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
    assert "daily budget of key" in error["message"] and "resets at" in error["message"]
    spent = sum(r.json()["usage"]["cost_usd"] for r in ok)
    assert spent <= worst * 10 + worst
    report = (await stack.client.get("/admin/cost", params={"by": "key"}, headers=ADMIN)).json()
    row = next(r for r in report["rows"] if r["group"] == key_id)
    assert row["requests"] == 50  # every request has one entry, refused ones at no cost
    assert row["cost_usd"] == pytest.approx(spent, abs=1e-6)
    client = aioredis.Redis.from_url(redis_url)
    budgets = [name async for name in client.scan_iter(f"{key_prefix}:t:budget:key:{key_id}:*")]
    settled = int(await client.hget(budgets[0], "spent") or 0)
    await client.aclose()
    assert settled / 1e6 == pytest.approx(spent, abs=1e-6)


async def test_cost_report_reconciles_with_the_prometheus_counters(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY, tenancy={"cache_hit_price_per_1k_tokens": 0.5})
    for content in ("one", "two", "one", "three", "two"):
        assert (await stack.chat(content=content)).status_code == 200
    await stack.chat(model="large", content="big")
    report = (await stack.client.get("/admin/cost", params={"by": "tier", "since": "1h"}, headers=ADMIN)).json()
    by_tier = {row["group"]: row for row in report["rows"]}
    assert by_tier["cache"]["requests"] == 2 and by_tier["small"]["requests"] == 3
    assert report["total"]["cost_usd"] == pytest.approx(counter_sum(stack, "tierserve_cost_usd"), abs=1e-5)
    saved = counter_sum(stack, "tierserve_cost_saved_usd")
    total = report["total"]
    assert total["saved_by_cache_usd"] + total["saved_by_routing_usd"] == pytest.approx(saved, abs=1e-5)
    assert by_tier["cache"]["cost_usd"] > 0  # hits cost the cache's price


async def test_redis_down_serves_unmetered_then_settles(make_stack: StackFactory, tmp_path: Any) -> None:
    own = LocalRedis(data_dir=tmp_path, persist=True).start()  # type: ignore[arg-type]
    try:
        stack = await make_stack(
            redis=own.url,
            admin_key=ADMIN_KEY,
            cache=False,
            tenancy={"tenants": {"strict": {"rpm": 100, "fail_open": False}}, "key_cache_s": 0.2},
        )
        open_key, _ = await create_key(stack, rpm=100)
        strict = await stack.client.post("/admin/keys", json={"tenant": "strict"}, headers=ADMIN)
        strict_key = strict.json()["key"]
        assert (await ask(stack, open_key)).status_code == 200
        assert (await ask(stack, strict_key)).status_code == 200
        own.stop()
        await asyncio.sleep(0.3)  # past key_cache_s: the keys now come from the local copy
        served = await ask(stack, open_key, content="while down")
        assert served.status_code == 200 and served.headers["x-tierserve-metering"] == "unmetered"
        refused = await ask(stack, strict_key, content="while down")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert stack.service.meter is not None and stack.service.meter.deferred == 1
        own.start()
        for _ in range(50):
            if stack.service.meter.deferred == 0:
                break
            await asyncio.sleep(0.1)
        assert stack.service.meter.deferred == 0
        report = (await stack.client.get("/admin/cost", params={"by": "tenant"}, headers=ADMIN)).json()
        assert {r["group"]: r["requests"] for r in report["rows"]}["acme"] == 2  # the unmetered one settled
    finally:
        own.stop()


async def test_tokens_per_minute_hold_across_two_gateways(make_stack: StackFactory) -> None:
    """Concurrent requests all in flight at admission: exactly as many as their prompt estimates fit are admitted."""
    small = FakeTier(["a", "b"], hold_after=1)
    first = await make_stack(admin_key=ADMIN_KEY, small=small, cache=False, tier_options=NO_SHED)
    second = await make_stack(admin_key=ADMIN_KEY, small=small, cache=False, tier_options=NO_SHED)
    body = chat_body(content="q00", stream=True)
    estimate = -(-len(httpx.Request("POST", "http://t", json=body).content) // 4) + 4  # what admission charges
    key, _ = await create_key(first, tpm=estimate * 12)
    tasks = [asyncio.create_task(ask((first, second)[i % 2], key, content=f"q{i:02d}", stream=True)) for i in range(40)]
    await asyncio.wait_for(small.holding.wait(), 5)
    await asyncio.sleep(0.3)
    small.release()
    statuses = [r.status_code for r in await asyncio.gather(*tasks)]
    assert statuses.count(200) == 12 and statuses.count(429) == 28


async def test_a_cancelled_stream_is_settled_at_the_tokens_it_used_and_frees_its_slot(
    make_stack: StackFactory, redis_url: str, key_prefix: str
) -> None:
    small = FakeTier(["a", "b", "c", "d"], hold_after=2)
    stack = await make_stack(admin_key=ADMIN_KEY, small=small, cache=False)
    key, key_id = await create_key(stack, max_concurrent=1, budget_usd=100.0)
    principal = await stack.service.authenticate(f"Bearer {key}")
    data = chat_body(content="long", stream=True)
    raw = json.dumps(data).encode()
    job = job_from_chat(ChatCompletionRequest.model_validate(data), raw, data, "cancelled-1", principal.tenant)
    reply = await stack.service.handle(job, principal)
    assert reply.stream is not None
    chunks = aiter(reply.stream)
    received = [await anext(chunks) for _ in range(3)]  # the role chunk, "a", "b"
    assert '"b"' in received[-1]
    await chunks.aclose()  # what the HTTP server does when the client hangs up mid-answer
    for _ in range(50):
        report = (await stack.client.get("/admin/cost", params={"by": "key"}, headers=ADMIN)).json()
        if report["rows"]:
            break
        await asyncio.sleep(0.05)
    row = next(r for r in report["rows"] if r["group"] == key_id)
    assert row["requests"] == 1 and row["completion_tokens"] == 2  # the two deltas it streamed
    assert row["cost_usd"] > 0
    client = aioredis.Redis.from_url(redis_url)
    assert await client.zcard(f"{key_prefix}:t:inflight:key:{key_id}") == 0  # the slot is free again
    await client.aclose()
    small.release()
    assert (await ask(stack, key, content="next")).status_code == 200


async def _budget_fields(redis_url: str, key_prefix: str, key_id: str) -> dict[str, int]:
    client = aioredis.Redis.from_url(redis_url)
    fields: dict[str, int] = {}
    async for name in client.scan_iter(f"{key_prefix}:t:budget:key:{key_id}:*"):
        fields |= {k.decode(): int(v) for k, v in (await client.hgetall(name)).items()}
    await client.aclose()
    return fields


async def test_a_failed_and_a_timed_out_stream_are_settled_and_release_what_they_held(
    make_stack: StackFactory, redis_url: str, key_prefix: str
) -> None:
    """The worst case is held while a request runs; a stream that fails midway or passes its deadline gives the
    hold back and is charged what it streamed (the ledger says so), and its concurrency slot is free again."""
    failing = FakeTier(["a", "b", "c", "d"], fail="midway")
    stack = await make_stack(admin_key=ADMIN_KEY, small=failing, cache=False)
    key, key_id = await create_key(stack, max_concurrent=1, budget_usd=100.0)
    failed = await ask(stack, key, content="fails", stream=True)
    assert failed.status_code == 200 and '"error"' in failed.text  # in-band: the stream had begun
    slow = FakeTier(["a", "b", "c", "d"], hold_after=2)
    timed = await make_stack(
        admin_key=ADMIN_KEY, small=slow, cache=False, tier_options={"small": {"reliability": {"total_timeout_s": 0.5}}}
    )
    late = await ask(timed, key, content="too slow", stream=True)
    assert late.status_code == 200 and '"error"' in late.text and "timeout" in late.text.lower()
    slow.release()
    fields = await _budget_fields(redis_url, key_prefix, key_id)
    assert not [name for name in fields if name.startswith("r:")]  # nothing still held
    report = (await stack.client.get("/admin/cost", params={"by": "key"}, headers=ADMIN)).json()
    row = next(r for r in report["rows"] if r["group"] == key_id)
    assert row["requests"] == 2 and row["completion_tokens"] == 1 + 2  # what each streamed before it ended
    assert fields["spent"] == round(row["cost_usd"] * 1e6)  # the budget holds exactly the ledger's spend
    client = aioredis.Redis.from_url(redis_url)
    assert await client.zcard(f"{key_prefix}:t:inflight:key:{key_id}") == 0
    await client.aclose()


async def test_a_larger_limit_holds_within_two_percent_across_two_gateways(make_stack: StackFactory) -> None:
    """The issue's bound at larger limits (±2 %): 400 concurrent requests against 300 a minute."""
    first = await make_stack(admin_key=ADMIN_KEY, cache=False, tier_options=NO_SHED)
    second = await make_stack(admin_key=ADMIN_KEY, cache=False, tier_options=NO_SHED)
    key, _ = await create_key(first, rpm=300)
    responses = await asyncio.gather(*(ask((first, second)[i % 2], key, content=f"q{i}") for i in range(400)))
    admitted = [r.status_code for r in responses].count(200)
    assert abs(admitted - 300) <= 6 and [r.status_code for r in responses].count(429) == 400 - admitted
