"""The gateway: one request through a pipeline of small stages (serving/pipeline/), free of Ray and HTTP.

    admission -> cache_lookup -> route -> dispatch -> respond
    on a complete answer: cache_store, then observe (metrics, cost, the trace's end)

Tiers are reached through `TierClient` (the typed tier contract), so the same pipeline runs over Ray Serve handles
in production and over fakes in unit tests. `build_gateway` is the one place that assembles it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.trace import NoOpTracer, Tracer

from cache import SemanticCache
from router import Router
from serving.config import AUTO_MODEL, StackConfig
from serving.embeddings import EMBEDDING_MODEL
from serving.errors import ServingError
from serving.health import TierHealth
from serving.jobs import Job
from serving.metrics import GatewayMetrics
from serving.pipeline.admission import Admission
from serving.pipeline.auth import ApiKeys
from serving.pipeline.cache_lookup import CacheLookup
from serving.pipeline.cache_store import CacheStore
from serving.pipeline.context import Flights, Reply, RequestContext
from serving.pipeline.dispatch import Dispatch, TierClient
from serving.pipeline.observe import Observe
from serving.pipeline.respond import Respond
from serving.pipeline.route import Route
from serving.protocol import ModelCard, ModelList

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
        auth: ApiKeys,
        health: TierHealth,
        cache: SemanticCache | None,
        metrics: GatewayMetrics,
    ) -> None:
        self._config = config
        self._stages = list(stages)
        self._observe = observe
        self._auth = auth
        self._health = health
        self._cache = cache
        self._metrics = metrics
        self._created = int(time.time())

    @property
    def metrics(self) -> GatewayMetrics:
        return self._metrics

    @property
    def config(self) -> StackConfig:
        return self._config

    @property
    def cache(self) -> SemanticCache | None:
        return self._cache

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self._stages]

    def authenticate(self, authorization: str | None) -> str:
        return self._auth.tenant(authorization)

    def authenticate_admin(self, authorization: str | None) -> None:
        self._auth.admin(authorization)

    async def handle(self, job: Job) -> Reply:
        """Answer one request: its context goes through the stages until one of them has the reply. The trace
        ends here for refusals and whole answers, or with the last chunk of a live stream."""
        ctx = self._observe.start(job)
        try:
            for stage in self._stages:
                await stage.run(ctx)
                if ctx.reply is not None:
                    break
        except ServingError as error:
            if ctx.call is not None and not error.counted:  # failed on its tier: counted with it
                self._observe.count_failure(ctx, error)
            ctx.trace.end(error.status, error.code or type(error).__name__)
            raise
        except asyncio.CancelledError:
            ctx.trace.end(499, "client_closed")  # the client went away while its answer was being prepared
            raise
        except BaseException as error:
            ctx.trace.end(500, type(error).__name__)
            raise
        if ctx.reply is None:
            raise RuntimeError(f"no stage answered request {job.request_id}")
        if ctx.reply.stream is None:
            ctx.trace.end(200)
        return ctx.reply

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


def build_gateway(
    config: StackConfig,
    tiers: Mapping[str, TierClient],
    cache: SemanticCache | None,
    router: Router,
    metrics: GatewayMetrics,
    tracer: Tracer | None = None,
) -> GatewayService:
    """The gateway from its parts; the Ray deployment, the tests and the benchmarks all build it here."""
    versions = model_versions(config)
    flights: Flights = {}
    observe = Observe(config, metrics, tracer or NoOpTracer())
    dispatch = Dispatch(config, tiers, router, flights)
    respond = Respond(dispatch, [CacheStore(cache, versions)], observe)
    stages: list[Stage] = [
        Admission(config, list(tiers), router),
        CacheLookup(cache, versions, flights, respond, config.gateway.request_timeout_s),
        Route(config, router, cache),
        dispatch,
        respond,
    ]
    health = TierHealth(config.gateway, tiers, cache)
    return GatewayService(config, stages, observe, ApiKeys(config.gateway), health, cache, metrics)
