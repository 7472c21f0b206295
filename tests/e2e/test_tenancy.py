"""Keys, limits and budgets on a real stack: two gateway replicas in Ray Serve, real vLLM tiers, a Redis started
here (so the test can dump it). Keys are made with the `tierserve keys` command, as an operator would. Last, the
`large` tier's replica is killed by pid under requests, which its fallback chain must absorb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import redis
import yaml
from openai import OpenAI

from serving.redis_server import LocalRedis
from tests.e2e.conftest import ROOT, running_stack, small_and_large, stack_url

ADMIN_KEY = "e2e-admin-key-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@dataclass(frozen=True)
class TenancyStack:
    url: str
    redis: LocalRedis
    data: Path
    pid: int  # the `tierserve serve` process: its descendants are this stack's Ray processes

    def cli(self, *args: str) -> str:
        """`tierserve ... --url URL` against this stack, as its operator (the admin key in the environment)."""
        env = {**os.environ, "TIERSERVE_ADMIN_KEY": ADMIN_KEY}
        cli = [sys.executable, "-m", "commands.main", *args, "--url", self.url]
        done = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def keys(self, *args: str) -> dict[str, Any]:
        """`tierserve keys ... --json` against this stack."""
        result: dict[str, Any] = json.loads(self.cli("keys", *args, "--json"))
        return result


@pytest.fixture(scope="module")
def tenancy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyStack]:
    folder = tmp_path_factory.mktemp("tenancy")
    own_redis = LocalRedis(data_dir=folder / "redis", persist=True).start()
    config = {
        "models_dir": str((ROOT / ".tierserve" / "models").resolve()),
        "data_dir": str(folder / "data"),
        "tiers": small_and_large(price_per_1k_prompt_tokens=0.5, price_per_1k_completion_tokens=1.0),
        "router": {"thresholds": [0.99]},
        "cache": {"enabled": False, "redis": {"url": own_redis.url}},
        "gateway": {
            "deployment": {"num_replicas": 2, "num_cpus": 0.25, "max_ongoing_requests": 256},
            "health_timeout_s": 5,
            "health_cache_s": 1,
        },
        "tenancy": {"key_cache_s": 0.5},
        "ray": {"num_cpus": 4},
    }
    path = folder / "tenancy.yaml"
    path.write_text(yaml.safe_dump(config))
    try:
        with running_stack(path, folder / "tierserve.log", {"TIERSERVE_ADMIN_KEY": ADMIN_KEY}) as process:
            yield TenancyStack(url=stack_url(process), redis=own_redis, data=folder / "redis", pid=process.pid)
    finally:
        own_redis.stop()


def _body(i: int, max_tokens: int) -> dict[str, Any]:
    return {"model": "small", "messages": [{"role": "user", "content": f"Say hi #{i}"}], "max_tokens": max_tokens}


def _ask(url: str, key: str | None, i: int, max_tokens: int = 2) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/chat/completions", json=_body(i, max_tokens), headers=headers, timeout=300)


def _burst(url: str, key: str | None, count: int, max_tokens: int = 2) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda i: _ask(url, key, i, max_tokens), range(count)))


def test_requests_per_minute_hold_across_two_gateway_replicas(tenancy_stack: TenancyStack) -> None:
    created = tenancy_stack.keys("create", "--tenant", "acme", "--rpm", "30")
    assert created["key"].startswith("tsk-") and created["id"]
    responses = _burst(tenancy_stack.url, created["key"], 100)
    statuses = [r.status_code for r in responses]
    unmetered = [r for r in responses if r.headers.get("x-tierserve-metering") == "unmetered"]
    assert statuses.count(200) == 30 and statuses.count(429) == 70, (statuses, len(unmetered))
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)
    gateways = {r.headers["x-tierserve-gateway"] for r in responses if r.status_code == 200}
    assert len(gateways) == 2  # both gateway replicas admitted some: the limit held across them
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200) == list(
        range(30)
    )
    # Until now the stack was open; a key exists now, so a request without one is a 401 on every replica.
    assert {r.status_code for r in _burst(tenancy_stack.url, None, 8)} == {401}


def test_tokens_per_minute_hold_across_two_gateway_replicas(tenancy_stack: TenancyStack) -> None:
    """100 concurrent requests against a key whose tokens/min fit ten of their prompts: a prompt is charged at
    admission by its size (about four bytes a token, corrected to vLLM's count when the answer ends), so the
    prompts admitted across both replicas never add up to more than the limit."""
    estimates = [
        -(-len(httpx.Request("POST", tenancy_stack.url, json=_body(i, 2)).content) // 4) + 4 for i in range(100)
    ]
    limit = max(estimates) * 10
    created = tenancy_stack.keys("create", "--tenant", "tokens", "--tpm", str(limit))
    responses = _burst(tenancy_stack.url, created["key"], 100)
    ok = [i for i, r in enumerate(responses) if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 100, [r.text for r in responses[:3]]
    # At most ten: fewer when an early answer's correction (vLLM counts the chat template too) lands first.
    assert 1 <= len(ok) <= 10 and sum(estimates[i] for i in ok) <= limit, (len(ok), limit)
    assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_exceeded"}
    for r in refused:  # OpenAI's headers on a refusal too: the limit, what is left, when it frees
        assert int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-limit-tokens"] == str(limit)
        assert int(r.headers["x-ratelimit-remaining-tokens"]) < max(estimates)
    # Both replicas refused while no more than ten were admitted in all: they hold one limit (a limit of each
    # replica's own would have let each admit ten).
    assert len({r.headers["x-tierserve-gateway"] for r in refused}) == 2


def test_the_operator_commands_list_update_rotate_and_report(tenancy_stack: TenancyStack) -> None:
    created = tenancy_stack.keys("create", "--tenant", "ops", "--rpm", "50", "--name", "ci")
    key_id = created["id"]
    listed = tenancy_stack.keys("list", "--tenant", "ops")["data"]
    assert [(r["id"], r["name"], r["limits"]["rpm"]) for r in listed] == [(key_id, "ci", 50)]
    assert "ops" in tenancy_stack.cli("keys", "list")  # the table an operator reads
    updated = tenancy_stack.keys("update", key_id, "--rpm", "2", "--models", "small")
    assert updated["record"]["limits"]["rpm"] == 2 and updated["record"]["models"] == ["small"]
    time.sleep(1.0)  # every replica sees the change within a second
    statuses = [_ask(tenancy_stack.url, created["key"], i).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    tenancy_stack.keys("update", key_id, "--clear", "rpm")
    rotated = tenancy_stack.keys("rotate", key_id)
    assert rotated["id"] == key_id and rotated["key"] != created["key"]
    time.sleep(1.0)
    assert _ask(tenancy_stack.url, created["key"], 9).status_code == 401  # the old secret is dead everywhere
    answered = _ask(tenancy_stack.url, rotated["key"], 10)
    assert answered.status_code == 200 and float(answered.headers["x-tierserve-cost-usd"]) > 0
    assert float(answered.headers["x-tierserve-saved-usd"]) >= 0  # against the largest tier
    report = json.loads(tenancy_stack.cli("cost", "report", "--by", "key", "--since", "1h", "--json"))
    row = next(r for r in report["rows"] if r["group"] == key_id)
    # Two answered before the rotation and one after; the request refused at admission did no work, bills nothing.
    assert row["requests"] == 3 and row["cost_usd"] > 0
    assert "saved by cache" in tenancy_stack.cli("cost", "report", "--by", "tenant")


def test_a_budget_race_never_overshoots_and_the_ledger_is_the_spend(tenancy_stack: TenancyStack) -> None:
    # Worst case of one request: its body bytes + 16 template tokens at 0.5/1k, plus 8 completion tokens at 1/1k.
    body = {"model": "small", "messages": [{"role": "user", "content": "Say hi #10"}], "max_tokens": 8}
    sent = httpx.Request("POST", tenancy_stack.url, json=body).content  # the bytes the gateway sizes the prompt by
    worst = ((len(sent) + 16) * 0.5 + 8 * 1.0) / 1000
    created = tenancy_stack.keys(
        "create", "--tenant", "budgeted", "--budget-usd", f"{worst * 10:.6f}", "--budget-window", "day"
    )
    responses = _burst(tenancy_stack.url, created["key"], 50, max_tokens=8)
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 50 and len(ok) >= 10, [r.text for r in responses[:3]]
    assert {r.json()["error"]["code"] for r in refused} <= {"insufficient_quota"}
    spent = sum(r.json()["usage"]["cost_usd"] for r in ok)
    assert spent <= worst * 10 + worst  # never past the budget by more than one reservation
    report = httpx.get(f"{tenancy_stack.url}/admin/cost", params={"by": "key"}, headers=ADMIN, timeout=30).json()
    row = next(r for r in report["rows"] if r["group"] == created["id"])
    assert row["requests"] == 50 and row["cost_usd"] == pytest.approx(spent, abs=1e-5)
    for r in ok:  # the cost a client sees is the tokens it was told of, at the tier's prices
        usage = r.json()["usage"]
        expected = (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.0) / 1000
        assert usage["cost_usd"] == pytest.approx(expected, abs=2e-6)
        assert float(r.headers["x-tierserve-cost-usd"]) == pytest.approx(expected, abs=2e-6)


def test_revocation_reaches_every_replica_within_a_second_and_keys_are_hashed_at_rest(
    tenancy_stack: TenancyStack,
) -> None:
    created = tenancy_stack.keys("create", "--tenant", "revoked", "--models", "small")
    key = created["key"]
    served = _burst(tenancy_stack.url, key, 8)
    assert {r.status_code for r in served} == {200}
    tenancy_stack.keys("revoke", created["id"])
    time.sleep(1.0)
    after = _burst(tenancy_stack.url, key, 16)
    assert {r.status_code for r in after} == {401}
    # A dump of Redis (what a backup or a stolen RDB file holds) has the key's id and hash, never the secret.
    client = redis.Redis.from_url(tenancy_stack.redis.url)
    client.save()
    client.close()
    dumped = b"".join(path.read_bytes() for path in tenancy_stack.data.rglob("*") if path.is_file())
    assert created["id"].encode() in dumped
    assert key.split("-", 2)[2].encode() not in dumped
    shown = tenancy_stack.keys("show", created["id"])
    assert shown["record"]["revoked"] is True and "digest" not in shown["record"]


def test_a_versioned_prompt_is_approved_served_and_audited(tenancy_stack: TenancyStack) -> None:
    key = tenancy_stack.keys("create", "--tenant", "prompted")["key"]
    created = json.loads(tenancy_stack.cli("prompts", "create", "support", "--text", "Answer in one word.", "--json"))
    ref = f"support@{created['version']}"
    client = OpenAI(base_url=f"{tenancy_stack.url}/v1", api_key=key, max_retries=0)
    ask = {"model": "small", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    with pytest.raises(openai.PermissionDeniedError):  # not approved yet
        client.chat.completions.create(**ask, extra_headers={"x-tierserve-prompt": ref})  # type: ignore[call-overload]
    tenancy_stack.cli("prompts", "approve", "support", str(created["version"]))
    served = client.chat.completions.with_raw_response.create(**ask, extra_headers={"x-tierserve-prompt": ref})  # type: ignore[call-overload]
    assert served.headers["x-tierserve-prompt-version"] == ref and served.parse().choices[0].message.content
    records = [json.loads(line) for line in tenancy_stack.cli("audit", "export", "--tenant", "prompted").splitlines()]
    assert [r["prompt_version"] for r in records if r["status"] == 200] == [ref]
    assert json.loads(tenancy_stack.cli("audit", "verify"))["ok"]


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    time.sleep(5)  # every replica publishes every 2 s
    text = httpx.get(f"{url}/metrics", timeout=60).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_one_scrape_holds_both_gateways_and_every_engine(tenancy_stack: TenancyStack) -> None:
    created = tenancy_stack.keys("create", "--tenant", "scraped")

    def answered(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        return sum(v for (name, labels), v in samples.items() if name == "tierserve_requests_total")

    before = _scrape(tenancy_stack.url)
    responses = _burst(tenancy_stack.url, created["key"], 20)
    assert {r.status_code for r in responses} == {200}
    assert len({r.headers["x-tierserve-gateway"] for r in responses}) == 2
    after = _scrape(tenancy_stack.url)
    assert answered(after) - answered(before) == 20  # counted once each, whichever replica answered or was scraped
    gateways = {dict(labels).get("replica") for name, labels in after if name == "tierserve_breaker_state"}
    assert len(gateways) == 2  # gauges stay per gateway replica
    engines = {dict(labels)["tier"] for name, labels in after if name == "vllm:num_requests_running"}
    assert engines == {"small", "large"}
    assert any(name.startswith("vllm:time_to_first_token_seconds") for name, _ in after)


def test_a_killed_tier_replica_is_absorbed_by_its_fallback(tenancy_stack: TenancyStack) -> None:
    """kill -9 of `large`'s only replica: Ray Serve holds its requests until a new replica is up (tens of seconds on
    CPU); the first-token deadline (8 s) moves them to `small`, the breaker opens after two, and the rest go to
    `small` at once. /health names `large` within the health period. No request fails."""
    key = tenancy_stack.keys("create", "--tenant", "chaos")["key"]
    assert _ask_model(tenancy_stack.url, key, "large", 0).status_code == 200
    replicas = [
        p for p in psutil.Process(tenancy_stack.pid).children(recursive=True)
        if "ServeReplica:tierserve:tier-large" in " ".join(p.cmdline())
    ]  # fmt: skip
    assert len(replicas) == 1
    replicas[0].kill()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda i: _ask_model(tenancy_stack.url, key, "large", i), range(12)))
    assert [r.status_code for r in responses] == [200] * 12, [r.text[:200] for r in responses]
    assert all(r.headers["x-tierserve-fallback-from"] == "large" for r in responses)
    assert all(r.headers["x-tierserve-tier"] == "small" for r in responses)
    assert time.monotonic() - started < 60
    health = httpx.get(f"{tenancy_stack.url}/health", timeout=30)
    assert health.status_code == 503 and "large" in health.json()["failing"]
    # Each gateway replica keeps its own breaker; the health answer comes from either of them.
    states = {
        httpx.get(f"{tenancy_stack.url}/health", timeout=30).json()["breakers"]["large"]["state"] for _ in range(6)
    }
    assert states & {"opened", "half-opened"}, states


def _ask_model(url: str, key: str, model: str, i: int) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"Say hi #{i}"}], "max_tokens": 4}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=300)
