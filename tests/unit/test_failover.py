"""Retries, fallback chains, circuit breakers and first-token deadlines before the first byte (fake tiers)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.fakes import FakeTier
from tests.unit.gateway_stack import Stack, StackFactory


def sample(stack: Stack, name: str, **labels: str) -> float | None:
    return stack.metrics.registry.get_sample_value(name, labels)


def quick(retries: int = 0, fallback: list[str] | None = None, **breaker: Any) -> dict[str, Any]:
    return {
        "reliability": {
            "retries": retries,
            "backoff_s": 0.001,
            "backoff_max_s": 0.01,
            "fallback": fallback or [],
            "breaker": {"failures": 3, "open_s": 0.3, **breaker},
        }
    }


async def test_a_call_that_fails_before_its_first_byte_is_retried(make_stack: StackFactory) -> None:
    small = FakeTier(["Paris."], fail_first=1)
    stack = await make_stack(small=small, cache=False, tier_options={"small": quick(retries=2)})
    response = await stack.chat()
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Paris."
    assert small.calls == 2
    assert sample(stack, "tierserve_retries_total", tier="small", outcome="retried") == 1


async def test_a_replica_lost_after_accepting_but_before_its_first_token_is_retried(
    make_stack: StackFactory,
) -> None:
    """The tier had said it started (and sent vLLM's role chunk), but no text: nothing has reached the client, so
    the request moves to the fallback and is answered whole, streamed or not."""
    large = FakeTier(["lost"], fail="opening")
    small = FakeTier(["Paris."])
    options = quick(retries=1, fallback=["small"], failures=10)
    stack = await make_stack(small=small, large=large, cache=False, tier_options={"large": options})
    for stream in (False, True):
        response = await stack.chat(model="large", stream=stream)
        assert response.status_code == 200, response.text
        assert '"error"' not in response.text and "Paris." in response.text
        assert response.headers["x-tierserve-fallback-from"] == "large"
    assert large.calls == 4 and large.closed == 4  # each request: a try and a retry, then the chain


async def test_a_client_error_is_never_retried_nor_sent_elsewhere(make_stack: StackFactory) -> None:
    small = FakeTier(error=FakeTier.context_length_error())
    large = FakeTier()
    stack = await make_stack(
        small=small, large=large, cache=False, tier_options={"small": quick(retries=2, fallback=["large"])}
    )
    response = await stack.chat()
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert small.calls == 1 and large.calls == 0


async def test_a_pinned_model_falls_back_down_its_chain(make_stack: StackFactory) -> None:
    large = FakeTier(fail="start")
    small = FakeTier(["from small"])
    stack = await make_stack(
        small=small, large=large, cache=False, tier_options={"large": quick(retries=1, fallback=["small"])}
    )
    response = await stack.chat(model="large")
    assert response.status_code == 200, response.text
    assert response.headers["x-tierserve-fallback-from"] == "large"
    assert response.headers["x-tierserve-tier"] == "small"
    assert response.json()["choices"][0]["message"]["content"] == "from small"
    assert large.calls == 2  # the first try and one retry, then the chain
    assert sample(stack, "tierserve_fallbacks_total", from_tier="large", to_tier="small", reason="tier_unavailable")


async def test_the_breaker_opens_refuses_without_calling_then_probes_and_closes(make_stack: StackFactory) -> None:
    large = FakeTier(fail="start")
    stack = await make_stack(large=large, cache=False, tier_options={"large": quick(failures=3, open_s=0.3)})
    for _ in range(3):
        assert (await stack.chat(model="large")).status_code == 503
    assert large.calls == 3
    refused = await stack.chat(model="large")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
    assert refused.headers["retry-after"] == "1"
    assert large.calls == 3  # open: no call was made
    assert sample(stack, "tierserve_breaker_state", tier="large") == 2
    health = (await stack.client.get("/health")).json()
    assert health["breakers"]["large"]["state"] == "opened"
    await asyncio.sleep(0.35)
    large.fail = None  # the tier is back: the first request after open_s probes it and closes the breaker
    assert (await stack.chat(model="large")).status_code == 200
    assert sample(stack, "tierserve_breaker_state", tier="large") == 0
    assert large.calls == 4


async def test_an_open_breaker_sends_traffic_to_the_fallback_without_calling(make_stack: StackFactory) -> None:
    large = FakeTier(fail="start")
    small = FakeTier(["ok"])
    stack = await make_stack(
        small=small, large=large, cache=False, tier_options={"large": quick(fallback=["small"], failures=2)}
    )
    for _ in range(4):
        response = await stack.chat(model="large")
        assert response.status_code == 200 and response.headers["x-tierserve-fallback-from"] == "large"
    assert large.calls == 2  # after two failures the breaker opened: the last two went straight to small
    assert small.calls == 4


async def test_a_first_token_deadline_moves_the_request_to_the_fallback(make_stack: StackFactory) -> None:
    large = FakeTier(["never"], hold_after=0)  # accepts, then says nothing
    small = FakeTier(["in time"])
    options = quick(fallback=["small"])
    options["reliability"]["first_token_timeout_s"] = 0.2
    stack = await make_stack(small=small, large=large, cache=False, tier_options={"large": options})
    for stream in (False, True):
        response = await stack.chat(model="large", stream=stream)
        assert response.status_code == 200
        assert response.headers["x-tierserve-fallback-from"] == "large"
        assert "in time" in response.text
    assert large.closed == 2  # each abandoned call was closed (vLLM aborts it)
    large.release()


async def test_without_a_fallback_a_missed_first_token_is_a_504(make_stack: StackFactory) -> None:
    large = FakeTier(["never"], hold_after=0)
    options = quick()
    options["reliability"]["first_token_timeout_s"] = 0.2
    stack = await make_stack(large=large, cache=False, tier_options={"large": options})
    response = await stack.chat(model="large")
    assert response.status_code == 504 and response.json()["error"]["code"] == "first_token_timeout"
    large.release()


async def test_a_request_past_its_total_deadline_before_its_first_token_is_neither_retried_nor_sent_on(
    make_stack: StackFactory,
) -> None:
    """The whole time was spent waiting: another try or another tier would only make the client wait longer."""
    large = FakeTier(["never"], hold_after=0)
    small = FakeTier(["too late"])
    options = quick(retries=2, fallback=["small"])
    options["reliability"]["total_timeout_s"] = 0.2
    stack = await make_stack(small=small, large=large, cache=False, tier_options={"large": options})
    response = await stack.chat(model="large")
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
    assert large.calls == 1 and small.calls == 0
    large.release()


async def test_retries_stop_when_the_budget_is_spent(make_stack: StackFactory) -> None:
    small = FakeTier(fail="start")
    stack = await make_stack(
        small=small,
        cache=False,
        gateway={"retry_budget_ratio": 0.0, "retry_budget_min": 1},
        tier_options={"small": quick(retries=3, failures=50)},
    )
    assert (await stack.chat()).status_code == 503
    assert small.calls == 2  # one retry allowed in the window
    assert (await stack.chat()).status_code == 503
    assert small.calls == 3  # none left
    assert sample(stack, "tierserve_retries_total", tier="small", outcome="budget_exhausted") == 2


async def test_a_full_tier_sheds_at_once_with_retry_after(make_stack: StackFactory) -> None:
    small = FakeTier(["a", "b"], hold_after=1)
    options = {"reliability": {"shed": {"initial_limit": 2, "min_limit": 1}}}
    stack = await make_stack(small=small, cache=False, tier_options={"small": options})
    held = [asyncio.create_task(stack.chat(content=f"q{i}", stream=True)) for i in range(2)]
    await asyncio.wait_for(small.holding.wait(), 5)
    while small.calls < 2:
        await asyncio.sleep(0.01)
    shed = await stack.chat(content="one more", headers={"authorization": "Bearer sk-beta"})
    assert shed.status_code == 503 and shed.json()["error"]["code"] == "overloaded"
    assert int(shed.headers["retry-after"]) >= 1
    assert small.calls == 2  # answered without reaching the tier
    small.release()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
    assert (await stack.chat(content="after")).status_code == 200
    assert sample(stack, "tierserve_shed_total", tier="small", reason="overloaded") == 1


async def test_a_tenants_burst_is_shed_before_another_tenants_request(make_stack: StackFactory) -> None:
    small = FakeTier(["a", "b"], hold_after=1)
    options = {"reliability": {"shed": {"initial_limit": 4}}}
    stack = await make_stack(small=small, cache=False, tier_options={"small": options})
    first_beta = asyncio.create_task(stack.chat(content="beta 0", headers={"authorization": "Bearer sk-beta"}))
    await asyncio.wait_for(small.holding.wait(), 5)
    small.release()
    assert (await first_beta).status_code == 200  # beta has used the tier lately
    small.rearm()
    burst = [asyncio.create_task(stack.chat(content=f"alpha {i}", stream=True)) for i in range(3)]
    await asyncio.wait_for(small.holding.wait(), 5)
    while small.calls < 4:
        await asyncio.sleep(0.01)
    # Alone, alpha took three quarters of the tier; its next request is refused, beta's still gets the last slot.
    over_share = await stack.chat(content="alpha again")
    assert over_share.status_code == 429 and over_share.json()["error"]["code"] == "tenant_share_exceeded"
    assert int(over_share.headers["retry-after"]) >= 1
    beta = asyncio.create_task(stack.chat(content="beta", headers={"authorization": "Bearer sk-beta"}, stream=True))
    while small.calls < 5:
        await asyncio.sleep(0.01)
    full = await stack.chat(content="beta 2", headers={"authorization": "Bearer sk-beta"})
    assert full.status_code == 503 and full.json()["error"]["code"] == "overloaded"
    small.release()
    assert [r.status_code for r in await asyncio.gather(*burst, beta)] == [200, 200, 200, 200]


async def test_a_tenant_alone_may_use_the_whole_tier(make_stack: StackFactory) -> None:
    small = FakeTier(["a", "b"], hold_after=1)
    stack = await make_stack(
        small=small, cache=False, tier_options={"small": {"reliability": {"shed": {"initial_limit": 4}}}}
    )
    held = [asyncio.create_task(stack.chat(content=f"alpha {i}", stream=True)) for i in range(4)]
    await asyncio.wait_for(small.holding.wait(), 5)
    while small.calls < 4:
        await asyncio.sleep(0.01)
    assert (await stack.chat(content="fifth")).json()["error"]["code"] == "overloaded"  # full, not over a share
    small.release()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200] * 4


def test_the_limit_shrinks_when_first_tokens_come_late_and_grows_back() -> None:
    from serving.reliability import TierLoad

    load = TierLoad(initial=20, minimum=2, maximum=40, ttft_target_s=0.0001)
    assert load.admit("t") is None
    load.release("t", ttft_s=1.0, elapsed_s=1.0)  # late
    assert load.limit == 18
    for _ in range(200):
        assert load.admit("t") is None
        load.release("t", ttft_s=0.00001, elapsed_s=0.01)  # timely
    assert 18 < load.limit <= 40


class Flaky(FakeTier):
    """Fails every other call before its first event: never twice in a row."""

    async def generate(self, request: Any) -> Any:  # type: ignore[override]
        self.fail = "start" if self.calls % 2 == 0 else None
        async for event in super().generate(request):
            yield event


async def test_the_breaker_also_opens_on_a_failure_ratio(make_stack: StackFactory) -> None:
    small = Flaky(["ok"])
    options = quick(failures=100, failure_ratio=0.5, min_calls=6, window_s=30)
    stack = await make_stack(small=small, cache=False, tier_options={"small": options})
    statuses = [(await stack.chat(content=f"q{i}")).status_code for i in range(6)]
    assert statuses == [503, 200] * 3  # never two failures in a row
    assert sample(stack, "tierserve_breaker_state", tier="small") == 2  # yet half failed: open
    refused = await stack.chat(content="next")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
    assert small.calls == 6


class SlowToolCall(FakeTier):
    """Streams a tool call's first piece at once (no text), then takes its time over the rest."""

    async def generate(self, request: Any) -> Any:  # type: ignore[override]
        from serving.contract import TierDelta, TierFinished, TierStarted

        self.calls += 1
        yield TierStarted(replica="tools-1")
        call = '{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}'
        yield TierDelta(
            data='{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":['
            + call
            + "]}}]}"
        )
        await asyncio.sleep(0.5)
        yield TierFinished("tool_calls", 9, 12)


async def test_a_tool_call_counts_as_the_first_token(make_stack: StackFactory) -> None:
    options = quick()
    options["reliability"]["first_token_timeout_s"] = 0.2
    stack = await make_stack(small=SlowToolCall(), cache=False, tier_options={"small": options})
    response = await stack.chat(stream=True)
    assert response.status_code == 200 and "get_weather" in response.text
    assert "first_token_timeout" not in response.text


async def test_with_every_tier_of_the_chain_open_a_cached_answer_is_served_else_503(make_stack: StackFactory) -> None:
    large, small = FakeTier(["from large"]), FakeTier(["Paris."])
    stack = await make_stack(
        small=small,
        large=large,
        tier_options={"large": quick(fallback=["small"], failures=1, open_s=30), "small": quick(failures=1, open_s=30)},
    )
    assert (await stack.chat(model="small")).headers["x-tierserve-cache"] == "miss"  # small's answer is cached
    large.fail, small.fail = "start", "start"
    tripped = await stack.chat(model="large", content="Something nobody asked before")
    assert tripped.status_code == 503  # large failed, then small: both breakers are open now
    calls = (large.calls, small.calls)
    # The same question for `large`: its own namespace has nothing, but `small` (its fallback) answered it.
    degraded = await stack.chat(model="large")
    assert degraded.status_code == 200, degraded.text
    assert degraded.json()["choices"][0]["message"]["content"] == "Paris."
    assert degraded.headers["x-tierserve-cache"] == "degraded"
    assert degraded.headers["x-tierserve-degraded"] == "circuit_open"
    assert degraded.headers["x-tierserve-tier"] == "small"
    assert (large.calls, small.calls) == calls  # no tier was called
    assert sample(stack, "tierserve_degraded_answers_total", tier="large") == 1
    # Nothing cached close to this one: a 503 that says when to come back.
    refused = await stack.chat(model="large", content="A question with no cached answer at all")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
    assert int(refused.headers["retry-after"]) >= 1
    # While any tier of the chain still takes calls, the chain is tried instead.
    healthy = await make_stack(small=FakeTier(["Paris."]), large=FakeTier(["from large"]), tier_options={})
    assert (await healthy.chat(model="large")).headers["x-tierserve-cache"] == "miss"
