"""The gateway: one request through a pipeline of small stages (serving/pipeline/), free of Ray and HTTP.

    audit -> admission -> prompt -> limits -> guard_input -> cache_lookup -> route -> degrade -> shed -> dispatch
      -> respond (the output guard screens the answer as it leaves)
    on a complete answer: cache_store, then observe (metrics, cost, the trace's end)
    once it has ended, whatever way: the closers (limits: settle the budgets, free the slot, write the ledger)

Tiers are reached through `TierClient` (the typed tier contract), so the same pipeline runs over Ray Serve handles
in production and over fakes in unit tests. `build_gateway` is the one place that assembles it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from opentelemetry.trace import NoOpTracer, Tracer

from cache import SemanticCache, connect_async
from drift import DriftDetector
from guards import Guards
from router import Router
from serving.audit import AuditLog
from serving.config import AUTO_MODEL, StackConfig
from serving.embeddings import EMBEDDING_MODEL
from serving.errors import ServingError
from serving.eval_records import eval_exposition, read_evals
from serving.health import TierHealth
from serving.jobs import Job
from serving.metrics import GatewayMetrics
from serving.pipeline.admission import Admission
from serving.pipeline.audit import AuditTrail
from serving.pipeline.auth import Authenticator
from serving.pipeline.cache_exact import ExactRepeat
from serving.pipeline.cache_lookup import CacheLookup
from serving.pipeline.cache_store import CacheStore
from serving.pipeline.context import OPEN, Flights, Reply, RequestContext
from serving.pipeline.costs import with_cost, with_cost_chunk
from serving.pipeline.degrade import Degrade
from serving.pipeline.dispatch import Dispatch, TierClient
from serving.pipeline.drift_watch import DriftWatch
from serving.pipeline.guard_input import InputGuard
from serving.pipeline.guard_output import OutputGuard
from serving.pipeline.limits import Limits
from serving.pipeline.observe import Observe
from serving.pipeline.prompt import PromptTemplate
from serving.pipeline.respond import Respond
from serving.pipeline.route import Route
from serving.pipeline.shadow import Shadow, ShadowScorer
from serving.pipeline.shed import Shed
from serving.prompts import PromptStore
from serving.protocol import ModelCard, ModelList
from serving.reliability import Breakers
from serving.stack_metrics import Exposition, merge_expositions, read_expositions
from serving.status import RecentAnswers, node_identity
from serving.tenancy import KeyDirectory, KeyStore, Meter, Principal
from serving.tenancy.pricing import Prices
from serving.tenancy.windows import to_usd

# What an error response carries of its request's headers: what names it in the audit log and the traces.
_IDENTITY_HEADERS = ("x-request-id", "x-tierserve-gateway", "x-tierserve-trace-id")

__all__ = ["GatewayService", "Stage", "TierClient", "build_gateway"]


class Stage(Protocol):
    """One step of a request's way in: it reads and fills the context; setting `ctx.reply` ends the way in."""

    name: str

    async def run(self, ctx: RequestContext) -> None: ...


def model_versions(config: StackConfig) -> dict[str, str]:
    """What a cached answer was made with, per model name: a tier's version, or for `auto` every tier's and the
    router's configuration (an upgrade of either stops old answers from matching)."""
    versions = {tier.name: tier.version for tier in config.tiers}
    every = ",".join(f"{tier.name}@{tier.version}" for tier in config.tiers)
    versions[AUTO_MODEL] = f"{every};router={config.router.model_dump_json()}"
    return versions


class GatewayService:
    def __init__(
        self,
        config: StackConfig,
        stages: Sequence[Stage],
        observe: Observe,
        auth: Authenticator,
        health: TierHealth,
        cache: SemanticCache | None,
        metrics: GatewayMetrics,
        redis: aioredis.Redis | None = None,
        meter: Meter | None = None,
        keys: KeyStore | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._config = config
        self._stages = list(stages)
        self._observe = observe
        self._auth = auth
        self._health = health
        self._cache = cache
        self._metrics = metrics
        self._redis = redis
        self._meter = meter
        self.keys = keys
        self.audit = audit
        self.prompts: PromptStore | None = None  # versioned system prompts (with Redis)
        self.replica = "local"  # this gateway replica's id (its key among the published metrics)
        self.drift: DriftDetector | None = None  # this replica's watch on its traffic
        self.shadow: ShadowScorer | None = None  # this replica's shadow scoring on the largest tier
        self.recent = RecentAnswers()  # this replica's answers of the last minute (its presence record)
        self._created = int(time.time())

    def presence(self) -> dict[str, Any]:
        """This replica's presence record for `tierserve status`: where it runs, its last minute, its cache."""
        cache = self._cache
        entries = {tenant: cache.entries(tenant) for tenant in cache.tenants()} if cache is not None else {}
        return {
            "role": "gateway",
            "replica": self.replica,
            **node_identity(),
            "window": self.recent.summary(),
            "cache_entries": entries,
        }

    @property
    def redis(self) -> aioredis.Redis | None:
        return self._redis

    @property
    def meter(self) -> Meter | None:
        return self._meter

    async def close(self) -> None:
        if self.shadow is not None:
            await self.shadow.close()
        if self.audit is not None:
            await self.audit.close()
        if self._meter is not None:
            await self._meter.close()
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def metrics(self) -> GatewayMetrics:
        return self._metrics

    async def stack_metrics(self) -> str:
        """The whole stack's metrics (every gateway and tier replica that published to Redis lately), merged;
        this replica's own when there is no Redis or it cannot be read."""
        if self._redis is None:
            return self._metrics.render().decode()
        try:
            published = await read_expositions(self._redis, self._config.cache.redis.key_prefix)
        except Exception:
            self._metrics.redis_up.set(0)  # read at scrape time: the scrape itself says Redis is down
            return merge_expositions([Exposition("gateway", self.replica, self._metrics.render().decode())])
        self._metrics.redis_up.set(1)
        own = self._metrics.render().decode()
        others = [e for e in published if not (e.role == "gateway" and e.replica == self.replica)]
        try:
            evals = await read_evals(self._redis, self._config.cache.redis.key_prefix, limit=100)
        except Exception:
            evals = []
        if evals:
            others.append(Exposition("stack", "redis", eval_exposition(evals, self._config.drift.eval_drop)))
        return merge_expositions([Exposition("gateway", self.replica, own), *others])

    @property
    def config(self) -> StackConfig:
        return self._config

    @property
    def cache(self) -> SemanticCache | None:
        return self._cache

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self._stages]

    async def authenticate(self, authorization: str | None) -> Principal:
        return await self._auth.principal(authorization)

    def authenticate_admin(self, authorization: str | None) -> None:
        self._auth.admin(authorization)

    async def handle(self, job: Job, principal: Principal = OPEN) -> Reply:
        """Answer one request: its context goes through the stages until one of them has the reply. The trace
        ends here for refusals and whole answers, or with the last chunk of a live stream; the closers run once
        the request has ended (for a stream, when it has been written or abandoned)."""
        ctx = self._observe.start(job)
        ctx.principal = principal
        try:
            for stage in self._stages:
                await stage.run(ctx)
                if ctx.reply is not None:
                    break
        except ServingError as error:
            if ctx.call is not None and not error.counted:  # failed on its tier: counted with it
                self._observe.count_failure(ctx, error)
            ctx.status, ctx.error = error.status, error.code or type(error).__name__
            for name in _IDENTITY_HEADERS:  # an error names its request too (its audit record, its trace)
                if name in ctx.headers:
                    error.headers.setdefault(name, ctx.headers[name])
            error.audited = self.audit is not None
            ctx.trace.end(error.status, error.code or type(error).__name__)
            await asyncio.shield(ctx.close())
            raise
        except asyncio.CancelledError:
            ctx.trace.end(499, "client_closed")  # the client went away while its answer was being prepared
            await asyncio.shield(ctx.close())
            raise
        except BaseException as error:
            ctx.status = 500
            ctx.trace.end(500, type(error).__name__)
            await asyncio.shield(ctx.close())
            raise
        reply = ctx.reply
        if reply is None:
            await ctx.close()
            raise RuntimeError(f"no stage answered request {job.request_id}")
        if reply.stream is None:
            ctx.trace.end(200)
            await ctx.close()
            return with_cost(reply, ctx.charge)
        reply.stream = self._closing(ctx, reply.stream)
        return reply

    @staticmethod
    async def _closing(ctx: RequestContext, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """The stream as it leaves: the cost joins the usage chunk; the closers run when it ends or is dropped."""
        try:
            async for chunk in stream:
                yield with_cost_chunk(chunk, ctx.charge) if ctx.charge is not None else chunk
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            await asyncio.shield(ctx.close())

    def models(self) -> ModelList:
        cards = [ModelCard(id=AUTO_MODEL, created=self._created, root="router")]
        cards += [
            ModelCard(id=t.name, created=self._created, root=self._config.model_path(t)) for t in self._config.tiers
        ]
        if self._cache is not None:  # its embedder also serves /v1/embeddings
            cards.append(ModelCard(id=EMBEDDING_MODEL, created=self._created, root="embeddings"))
        return ModelList(data=cards)

    async def health(self) -> tuple[bool, dict[str, Any]]:
        return await self._health.report()


def tenancy_prefix(config: StackConfig) -> str:
    return f"{config.cache.redis.key_prefix}:t"


def build_gateway(
    config: StackConfig,
    tiers: Mapping[str, TierClient],
    cache: SemanticCache | None,
    router: Router,
    metrics: GatewayMetrics,
    tracer: Tracer | None = None,
    *,
    redis_url: str | None = None,
    admin_key: str | None = None,
    replica: str | None = None,
    audit: AuditLog | None = None,
    guards: Guards | None = None,
) -> GatewayService:
    """The gateway from its parts; the Ray deployment, the tests and the benchmarks all build it here. With Redis,
    keys live there and limits and budgets hold across replicas; without, only the YAML keys exist."""
    versions = model_versions(config)
    flights: Flights = {}
    prices = Prices(config, config.tenancy)
    recent = RecentAnswers()
    observe = Observe(config, metrics, tracer or NoOpTracer(), prices, replica, recent)
    breakers = Breakers(config, metrics)
    dispatch = Dispatch(config, tiers, router, flights, breakers)
    if guards is not None and guards.embed is None and cache is not None:
        guards.embed = cache.embed_async  # one embedding of the query serves the guard, the cache and the router
    if guards is not None and guards.classifier.embedding_dim and guards.embed is None:
        raise ValueError("the injection classifier reads sentence embeddings: give the guards an embedder")
    output_guard = OutputGuard(guards) if guards is not None else None
    respond = Respond(dispatch, [CacheStore(cache, versions)], observe, output_guard)
    canary = guards is not None and guards.config.output.leakage and guards.config.output.canary
    redis: aioredis.Redis | None = None
    meter: Meter | None = None
    prompts: PromptStore | None = None
    stages: list[Stage] = [AuditTrail(audit)] if audit is not None else []
    watch = DriftWatch(DriftDetector(config.drift.values()), list(tiers)) if config.drift.enabled else None
    if watch is not None:
        stages.append(watch)
    shed = Shed(config)
    shadow = shadow_scorer(config, tiers, metrics, shed, prices, cache.embed_async if cache is not None else None)
    if shadow is not None:
        stages.append(Shadow(config.shadow, shadow))
    stages.append(Admission(config, list(tiers), router))
    if redis_url is not None:
        # A bounded pool: a burst of requests queues for a connection instead of opening a socket each (new
        # connections on a busy replica were slower than the timeout and failed requests open).
        timeout = config.tenancy.redis_timeout_s
        redis = connect_async(redis_url, blocking_pool=32, socket_timeout=timeout, socket_connect_timeout=timeout)
        meter = Meter(redis, tenancy_prefix(config), config.tenancy, config.gateway.request_timeout_s + 60, metrics)
        prompts = PromptStore(redis, config.cache.redis.key_prefix)
        stages += [PromptTemplate(prompts, canary), Limits(meter, prices)]
    elif any(not config.tenancy.policy(t).empty for t in [*config.tenancy.tenants, "\0"]):
        raise ValueError("tenancy limits and budgets need Redis (give the gateway a Redis URL)")
    else:
        stages.append(PromptTemplate(None))  # a request naming a prompt gets a clear 400
    input_guard = InputGuard(guards) if guards is not None else None
    if cache is not None:  # an identical repeat the guard clears from its first visit is answered before it
        stages.append(ExactRepeat(cache, versions, respond, input_guard.cleared if input_guard else None))
    if input_guard is not None:
        stages.append(input_guard)
    stages += [
        CacheLookup(cache, versions, flights, respond, config.gateway.request_timeout_s),
        Route(config, router, cache),
        Degrade(config, cache, breakers, versions, flights, respond),
        shed,
        dispatch,
        respond,
    ]
    health = TierHealth(config.gateway, tiers, cache, breakers)
    keys = KeyStore(redis, tenancy_prefix(config)) if redis is not None else None
    directory = KeyDirectory(
        keys,
        config.tenancy,
        config.gateway.api_keys,
        config.gateway.default_tenant,
    )
    auth = Authenticator(directory, admin_key)
    service = GatewayService(config, stages, observe, auth, health, cache, metrics, redis, meter, keys, audit)
    service.prompts = prompts
    service.replica = replica or "local"
    service.drift = watch.detector if watch is not None else None
    service.shadow = shadow
    service.recent = recent
    return service


def shadow_scorer(
    config: StackConfig,
    tiers: Mapping[str, TierClient],
    metrics: GatewayMetrics,
    shed: Shed,
    prices: Prices,
    embed: Callable[[str], Awaitable[Any]] | None,
) -> ShadowScorer | None:
    """The shadow scorer when the config samples anything and there is a larger tier to ask; its drift signals
    watch the agreement with a baseline sized for a sampled signal (a fifth of the traffic's)."""
    settings = config.shadow
    sampling = settings.share > 0 or settings.cache_share > 0 or any(s > 0 for s in settings.tenants.values())
    target = config.tiers[-1].name
    if not sampling or len(config.tiers) < 2 or target not in tiers:
        return None
    load = shed.load(target)
    loads = [found for tier in config.tiers if (found := shed.load(tier.name)) is not None]

    def busy() -> bool:
        if settings.mode == "idle":  # tiers share the hardware: any user request in flight comes first
            return any(each.inflight > 0 for each in loads)
        return load is not None and load.inflight >= settings.busy_share * load.limit

    def cost_usd(prompt_tokens: int, completion_tokens: int) -> float:
        return to_usd(prices.answered(target, prompt_tokens, completion_tokens).cost_micro)

    drift = None
    if config.drift.enabled:
        values = config.drift.values()
        drift = DriftDetector(
            dataclasses.replace(
                values,
                baseline_size=max(20, values.baseline_size // 5),
                window=max(10, values.window // 5),
                check_every=max(1, values.check_every // 5),
            )
        )
    for tier in config.tiers[:-1]:  # every series from the start: dashboards and rules read 0, not nothing
        for source in ("routed", "pinned", "cache"):
            metrics.shadow_requests.labels(source, tier.name, "scored")
            metrics.shadow_agreements.labels(source, tier.name)
    return ShadowScorer(
        settings,
        target,
        tiers[target],
        metrics,
        embed=embed,
        busy=busy,
        cost_usd=cost_usd,
        salted=config.cache.timing_protection,
        drift=drift,
        preemptible=settings.mode == "idle",
    )
