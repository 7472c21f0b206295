"""Each stage of the gateway's pipeline alone, with fakes of its neighbours; and the tier contract without Ray."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import NoOpTracer

from cache.semantic import Outcome
from cache.store import CachedAnswer
from router.policy import Decision, Overrides, Router, ThresholdPolicy
from router.scorer import HeuristicScorer
from serving.config import StackConfig, parse_config
from serving.contract import TierDelta, TierEvent, TierFailed, TierFinished, TierRequest, TierStarted
from serving.errors import AuthenticationFailed, Forbidden, InvalidRequest, NotFound, TierUnavailable
from serving.gateway import build_gateway
from serving.jobs import Job, job_from_chat
from serving.metrics import GatewayMetrics
from serving.pipeline.admission import Admission
from serving.pipeline.auth import Authenticator
from serving.pipeline.cache_store import CacheStore
from serving.pipeline.context import CacheVisit, RequestContext
from serving.pipeline.dispatch import Dispatch
from serving.pipeline.observe import Observe
from serving.pipeline.route import Route
from serving.protocol import ChatCompletionRequest
from serving.reliability import Breakers
from serving.tenancy import KeyDirectory
from serving.tenancy.pricing import Prices
from tests.fakes import FakeTier


def config(**extra: Any) -> StackConfig:
    return parse_config(
        {
            "tiers": [{"name": "small", "model": "s"}, {"name": "large", "model": "l"}],
            "router": {"scorer": "heuristic", "thresholds": [0.5], **extra.pop("router", {})},
            "cache": {"enabled": False},
            **extra,
        }
    )


def job(model: str = "small", **body: Any) -> Job:
    data = {"model": model, "messages": [{"role": "user", "content": "What is 2 + 2?"}], **body}
    return job_from_chat(ChatCompletionRequest.model_validate(data), json.dumps(data).encode(), data, "r-1", "alpha")


def context(the_job: Job | None = None, stack: StackConfig | None = None) -> RequestContext:
    return Observe(stack or config(), GatewayMetrics(), NoOpTracer(), prices(stack or config())).start(the_job or job())


def router(stack: StackConfig) -> Router:
    return Router(HeuristicScorer(stack.router.weights), ThresholdPolicy(["small", "large"], [0.5]))


AFTER_LIMITS = ["cache_lookup", "route", "degrade", "shed", "dispatch", "respond"]


def test_the_gateway_is_the_list_of_stages() -> None:
    stack = config()
    gateway = build_gateway(stack, {"small": FakeTier(), "large": FakeTier()}, None, router(stack), GatewayMetrics())
    assert gateway.stage_names == ["drift", "admission", "prompt", *AFTER_LIMITS]


async def test_with_redis_the_prompt_and_limits_stages_join_after_admission(redis_url: str) -> None:
    stack = config()
    tiers = {"small": FakeTier(), "large": FakeTier()}
    gateway = build_gateway(stack, tiers, None, router(stack), GatewayMetrics(), redis_url=redis_url)
    assert gateway.stage_names == ["drift", "admission", "prompt", "limits", *AFTER_LIMITS]
    await gateway.close()


def test_no_stage_module_is_big() -> None:
    folder = Path(__file__).resolve().parents[2] / "serving" / "pipeline"
    sizes = {path.name: len(path.read_text().splitlines()) for path in folder.glob("*.py")}
    assert max(sizes.values()) <= 250, sizes


def test_the_tier_contract_pickles_as_ray_sends_it() -> None:
    request = TierRequest(endpoint="chat", body=b'{"model": "x"}', request_id="r", trace_headers={"traceparent": "t"})
    events: list[TierEvent] = [
        TierStarted(replica="a"),
        TierDelta(data="{}", text="hi", finishes=True),
        TierFinished("stop", 3, 1, body="{}", text="hi"),
        TierFailed(kind="client", status=400, message="bad", code="c", param="seed"),
    ]
    assert pickle.loads(pickle.dumps(request)) == request
    assert pickle.loads(pickle.dumps(events)) == events


# ------------------------------------------------------------------------------------------------ auth


def prices(stack: StackConfig) -> Prices:
    return Prices(stack, stack.tenancy)


def authenticator(stack: StackConfig) -> Authenticator:
    directory = KeyDirectory(None, stack.tenancy, stack.gateway.api_keys, stack.gateway.default_tenant)
    return Authenticator(directory, None)


async def test_yaml_keys_name_the_tenant() -> None:
    keys = authenticator(config(gateway={"api_keys": {"sk-a": "alpha", "sk-b": "beta"}}))
    assert (await keys.principal("Bearer sk-b")).tenant == "beta"
    for bad in (None, "Bearer sk-c", "Basic sk-a", "sk-a"):
        with pytest.raises(AuthenticationFailed, match="API key"):
            await keys.principal(bad)
    assert (await authenticator(config()).principal(None)).tenant == "default"  # no keys: open


# ------------------------------------------------------------------------------------------- admission


async def test_admission_refuses_unknown_models_and_tiers_above_the_cap() -> None:
    stack = config(router={"tenants": {"alpha": {"max_tier": "small"}}})
    admission = Admission(stack, ["small", "large"], router(stack))
    with pytest.raises(NotFound):
        await admission.run(context(job("gpt-4")))
    with pytest.raises(Forbidden):
        await admission.run(context(job("large")))
    ctx = context(job("auto"))
    await admission.run(ctx)
    assert ctx.overrides.cap == "small"
    pinned = context(dataclasses.replace(job("auto"), route_pin="nope"))
    with pytest.raises(InvalidRequest):
        await admission.run(pinned)


# ----------------------------------------------------------------------------------------------- route


async def test_route_pins_a_named_model_and_scores_auto() -> None:
    stack = config()
    route = Route(stack, router(stack), None)
    ctx = context(job("large"))
    await route.run(ctx)
    assert ctx.tier == "large" and ctx.decision is None
    ctx = context(job("auto"))
    await route.run(ctx)
    assert ctx.decision is not None and ctx.tier == ctx.decision.tier
    assert ctx.headers["x-tierserve-route-reason"] == "score"


# -------------------------------------------------------------------------------------------- dispatch


class ScriptedTier:
    """A tier that answers each call with the next script of events."""

    def __init__(self, *scripts: list[TierEvent]) -> None:
        self.scripts = list(scripts)
        self.requests: list[TierRequest] = []

    async def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]:
        self.requests.append(request)
        for event in self.scripts.pop(0):
            yield event

    async def probe(self) -> Any:
        raise NotImplementedError


async def test_dispatch_keeps_a_client_error_a_4xx() -> None:
    stack = config()
    tier = ScriptedTier([TierFailed(kind="client", status=400, message="seed: too big", param="seed")])
    dispatch = Dispatch(
        stack, {"small": tier, "large": ScriptedTier()}, router(stack), {}, Breakers(stack, GatewayMetrics())
    )
    ctx = context()
    ctx.tier = "small"
    with pytest.raises(InvalidRequest) as caught:
        await dispatch.run(ctx)
    assert caught.value.status == 400 and caught.value.param == "seed"
    assert tier.requests[0].body == ctx.job.body  # the client's JSON, as it came


async def test_dispatch_escalates_an_empty_routed_answer_once() -> None:
    stack = config(router={"escalation": {"enabled": True}})
    small = ScriptedTier([TierStarted("s"), TierFinished("length", 5, 4, body="{}", text="")])
    large = ScriptedTier([TierStarted("l"), TierFinished("stop", 5, 2, body="{}", text="ok")])
    dispatch = Dispatch(stack, {"small": small, "large": large}, router(stack), {}, Breakers(stack, GatewayMetrics()))
    ctx = context(job("auto"))
    ctx.tier, ctx.decision = "small", Decision(tier="small", score=0.1, reason="score")
    await dispatch.run(ctx)
    assert ctx.tier == "large" and ctx.escalated_from == "small"
    assert ctx.headers["x-tierserve-escalated-from"] == "small"
    assert isinstance(ctx.first, TierStarted) and ctx.first.replica == "l"


async def test_dispatch_turns_a_dead_replica_into_503() -> None:
    stack = config()
    dispatch = Dispatch(
        stack,
        {"small": FakeTier(fail="start"), "large": FakeTier()},
        router(stack),
        {},
        Breakers(stack, GatewayMetrics()),
    )
    ctx = context()
    ctx.tier = "small"
    with pytest.raises(TierUnavailable):
        await dispatch.run(ctx)


# ---------------------------------------------------------------------------------- cache store, observe


class RecordingCache:
    def __init__(self) -> None:
        self.stored: list[tuple[str, str, str]] = []

    async def store(self, tenant: str, namespace: str, query: str, vector: Any, answer: Any, **_: Any) -> bool:
        self.stored.append((tenant, namespace, query))
        return True


async def test_cache_store_keeps_misses_and_lands_the_flight() -> None:
    cache = RecordingCache()
    store = CacheStore(cache, {"small": "1"})  # type: ignore[arg-type]
    answer = CachedAnswer(pieces=["4"], finish_reason="stop", prompt_tokens=5, completion_tokens=1, tier="small")
    ctx = context()
    ctx.visit = CacheVisit(Outcome.MISS, "ns", None, flight=asyncio.get_running_loop().create_future())
    await store.on_answer(ctx, answer)
    assert cache.stored == [("alpha", "ns", "What is 2 + 2?")]
    assert ctx.visit.flight is not None and ctx.visit.flight.result() == answer
    ctx = context()  # a bypassed request is not stored
    await store.on_answer(ctx, answer)
    assert len(cache.stored) == 1


def test_observe_counts_and_prices_an_answer() -> None:
    stack = config(
        tiers=[{"name": "small", "model": "s", "price_per_1k_prompt_tokens": 1.0}, {"name": "large", "model": "l"}]
    )
    metrics = GatewayMetrics()
    observe = Observe(stack, metrics, NoOpTracer(), prices(stack))
    ctx = observe.start(job())
    answer = CachedAnswer(pieces=["4"], finish_reason="stop", prompt_tokens=500, completion_tokens=1, tier="small")
    observe.answered(ctx, answer, tier="small", cache="miss")
    assert metrics.registry.get_sample_value(
        "tierserve_cost_usd_total", {"tier": "small", "tenant": "alpha"}
    ) == pytest.approx(0.5)
    assert ctx.headers["x-request-id"] == "r-1"


def test_overrides_default_to_none() -> None:
    assert context().overrides == Overrides()
