"""Shadow scoring: answers of the smaller tier and cache hits are asked again of the largest tier after the user
has the answer, within the scorer's own budget; agreement becomes metrics and drift signals. Recorded eval runs
become metrics and the drift report's eval section."""

from __future__ import annotations

import asyncio
import json
import re

from serving.pipeline.shadow import shadow_body, token_f1
from tests.fakes import FakeTier
from tests.unit.gateway_stack import ALPHA, BETA, StackFactory

ADMIN_KEY = "admin-secret-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _sample(text: str, source: str, tier: str, outcome: str) -> float:
    pattern = rf'tierserve_shadow_requests_total\{{outcome="{outcome}",source="{source}",tier="{tier}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_the_shadow_request_is_whole_one_choice_and_capped() -> None:
    body = json.dumps(
        {"model": "auto", "messages": [], "stream": True, "stream_options": {"include_usage": True}, "n": 3,
         "logprobs": True, "top_logprobs": 2, "max_tokens": 500, "temperature": 0.3}
    ).encode()  # fmt: skip
    sent = json.loads(shadow_body(body, 64))
    assert sent == {"model": "auto", "messages": [], "stream": False, "max_tokens": 64, "temperature": 0.3}
    assert json.loads(shadow_body(b'{"prompt": "x", "max_tokens": 10}', 64))["max_tokens"] == 10
    assert json.loads(shadow_body(b'{"prompt": "x"}', 64))["max_tokens"] == 64
    assert json.loads(shadow_body(b'{"messages": [], "max_completion_tokens": 900}', 64)) == {
        "messages": [], "stream": False, "max_completion_tokens": 64
    }  # fmt: skip


def test_token_f1() -> None:
    assert token_f1("Paris is the capital", "the capital is Paris") == 1.0
    assert token_f1("Paris", "Rome") == 0.0
    assert 0 < token_f1("Paris is the capital", "Paris") < 1


async def test_a_smaller_tiers_answer_is_scored_on_the_largest_after_the_user_has_it(make_stack: StackFactory) -> None:
    large = FakeTier(["Paris", " is", " the", " capital."], prompt_tokens=40, replica="large-1", hold_after=1)
    stack = await make_stack(large=large, shadow={"share": 1.0})
    assert "shadow" in stack.service.stage_names
    response = await stack.chat(model="small")  # answered while the shadow is still generating
    assert (
        response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Paris is the capital."
    )
    await asyncio.wait_for(large.holding.wait(), 5)
    scraped = (await stack.client.get("/metrics")).text
    assert re.search(r"tierserve_shadow_inflight\{replica=\"local\"\} 1\.0", scraped)
    large.release()
    assert stack.service.shadow is not None
    await asyncio.wait_for(stack.service.shadow.drain(), 5)
    sent = large.payloads[-1]
    assert sent["request_id"].endswith("-shadow") and sent["stream"] is False
    assert sent["max_tokens"] == 128
    scraped = (await stack.client.get("/metrics")).text
    assert _sample(scraped, "pinned", "small", "scored") == 1.0
    assert re.search(r'tierserve_shadow_agreements_total\{source="pinned",tier="small"\} 1\.0', scraped)
    assert re.search(r'tierserve_shadow_similarity_bucket\{le="1.0",source="pinned",tier="small"\} 1\.0', scraped)
    assert re.search(r"tierserve_shadow_cost_usd_total \d", scraped)
    assert re.search(r"tierserve_shadow_inflight\{replica=\"local\"\} 0\.0", scraped)


async def test_routed_answers_that_disagree_and_cache_hits_are_labelled(make_stack: StackFactory) -> None:
    stack = await make_stack(shadow={"share": 1.0, "cache_share": 1.0})  # large answers "A long answer."
    assert (await stack.chat(model="auto", content="hi")).status_code == 200  # routed to small
    assert stack.service.shadow is not None
    await asyncio.wait_for(stack.service.shadow.drain(), 5)
    hit = await stack.chat(model="auto", content="hi")
    assert hit.headers["x-tierserve-cache"] == "hit"
    await asyncio.wait_for(stack.service.shadow.drain(), 5)
    scraped = (await stack.client.get("/metrics")).text
    assert _sample(scraped, "routed", "small", "scored") == 1.0
    assert _sample(scraped, "cache", "small", "scored") == 1.0
    assert re.search(r'tierserve_shadow_agreements_total\{source="routed",tier="small"\} 0\.0', scraped)
    assert len(stack.large.requests) == 2 and all(r.request_id.endswith("-shadow") for r in stack.large.requests)


async def test_no_shadow_for_the_largest_tier_an_excluded_tenant_or_a_full_queue(make_stack: StackFactory) -> None:
    stack = await make_stack(shadow={"share": 1.0, "tenants": {"beta": 0.0}})
    assert (await stack.chat(model="large")).status_code == 200
    assert (await stack.chat(model="small", headers=BETA)).status_code == 200
    assert stack.service.shadow is not None
    await asyncio.wait_for(stack.service.shadow.drain(), 5)
    assert len(stack.large.requests) == 1  # the user's own request to large; no shadow
    full = await make_stack(shadow={"share": 1.0, "max_queue": 0})
    assert (await full.chat(model="small", headers=ALPHA)).status_code == 200
    scraped = (await full.client.get("/metrics")).text
    assert _sample(scraped, "pinned", "small", "queue_full") == 1.0 and not full.large.requests


async def test_a_busy_largest_tier_keeps_the_sample_waiting_then_drops_it(make_stack: StackFactory) -> None:
    stack = await make_stack(
        shadow={"share": 1.0, "timeout_s": 0.5, "busy_share": 0.5},
        tier_options={"large": {"reliability": {"shed": {"initial_limit": 2}}}},
    )
    shed = next(stage for stage in stack.service._stages if stage.name == "shed")
    load = shed.load("large")  # type: ignore[attr-defined]
    load.inflight = 1  # a user request holds half of the large tier's admission limit
    assert (await stack.chat(model="small")).status_code == 200
    assert stack.service.shadow is not None
    await asyncio.wait_for(stack.service.shadow.drain(), 5)
    scraped = (await stack.client.get("/metrics")).text
    assert _sample(scraped, "pinned", "small", "busy") == 1.0 and not stack.large.requests
    load.inflight = 0


async def test_shadow_agreement_is_a_drift_signal(make_stack: StackFactory) -> None:
    stack = await make_stack(
        admin_key=ADMIN_KEY,
        shadow={"share": 1.0},
        drift={"baseline_size": 100, "window": 50, "check_every": 5, "patience": 1},
    )
    small = stack.small
    for i in range(20):  # the baseline of the shadow signal (a fifth of the traffic's): the tiers agree
        small.pieces = ["A", " long", " answer."]
        assert (await stack.chat(model="small", content=f"question {i}")).status_code == 200
        assert stack.service.shadow is not None
        await stack.service.shadow.drain()
    for i in range(10):  # then they stop agreeing
        small.pieces = [f"Completely {i}", " different", " words."]
        assert (await stack.chat(model="small", content=f"other {i}")).status_code == 200
        await stack.service.shadow.drain()
    report = (await stack.client.get("/admin/drift", headers=ADMIN)).json()
    signal = report["signals"]["shadow_pinned"]
    assert signal["alarm"] and signal["baseline_mean"] > 0.99 > signal["window_mean"]
    assert report["shadow_seen"] == 30


async def test_recorded_eval_runs_become_metrics_and_drift(make_stack: StackFactory) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY)
    first = {"set": "default", "mean_score": 0.9, "by_tier": {"small": 0.88, "large": 1.0}, "cases": 12}
    assert (await stack.client.post("/admin/evals", json=first, headers=ADMIN)).status_code == 201
    second = {**first, "mean_score": 0.8, "by_tier": {"small": 0.75}}
    assert (await stack.client.post("/admin/evals", json=second, headers=ADMIN)).status_code == 201
    listed = (await stack.client.get("/admin/evals", headers=ADMIN)).json()["data"]
    assert [row["mean_score"] for row in listed] == [0.8, 0.9]
    report = (await stack.client.get("/admin/drift", headers=ADMIN)).json()["evals"]["default"]
    assert report["alarm"] and report["drop"] == 0.1 and report["runs"] == 2
    scraped = (await stack.client.get("/metrics")).text
    assert 'tierserve_eval_score{set="default",tier="all"} 0.8' in scraped
    assert 'tierserve_eval_baseline_score{set="default"} 0.9' in scraped
    assert 'tierserve_eval_alarm{set="default"} 1.0' in scraped
    marked = {**second, "baseline": True}
    assert (await stack.client.post("/admin/evals", json=marked, headers=ADMIN)).status_code == 201
    report = (await stack.client.get("/admin/drift", headers=ADMIN)).json()["evals"]["default"]
    assert not report["alarm"] and report["baseline"] == 0.8
    bad = await stack.client.post("/admin/evals", json={**first, "mean_score": 2}, headers=ADMIN)
    assert bad.status_code in (400, 422) and bad.json()["error"]["param"] == "mean_score"
    assert (await stack.client.post("/admin/evals", json=first)).status_code == 401


async def test_in_idle_mode_a_shadow_yields_to_a_user_request_and_runs_again_after(make_stack: StackFactory) -> None:
    large = FakeTier(["Paris", " is", " the", " capital."], prompt_tokens=40, replica="large-1", hold_after=1)
    stack = await make_stack(large=large, shadow={"share": 1.0, "mode": "idle"})
    assert (await stack.chat(model="small")).status_code == 200
    await asyncio.wait_for(large.holding.wait(), 5)  # the shadow is generating
    shed = next(stage for stage in stack.service._stages if stage.name == "shed")
    load = shed.load("small")  # type: ignore[attr-defined]
    load.inflight = 1  # a user request arrives on the small tier: the shadow must stop at once
    for _ in range(100):
        if large.closed:
            break
        await asyncio.sleep(0.02)
    assert large.closed == 1
    scraped = (await stack.client.get("/metrics")).text
    assert re.search(r"tierserve_shadow_preemptions_total 1\.0", scraped)
    large.release()
    load.inflight = 0  # room again: the sample runs again and is scored
    assert stack.service.shadow is not None
    await asyncio.wait_for(stack.service.shadow.drain(), 5)
    assert large.calls == 2  # the stopped generation and the one that ran to the end
    scraped = (await stack.client.get("/metrics")).text
    assert _sample(scraped, "pinned", "small", "scored") == 1.0
