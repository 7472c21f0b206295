"""Thin Ray Serve classes: one ModelServer per tier, the Gateway ingress, and a loopback Redis.

Only the typed tier contract (serving.contract) crosses between them; the engine factory is injected into
ModelServer so tests can pass another one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from cache import CacheStore, EmbeddingBatcher, LookalikeVerifier, SemanticCache, SentenceTransformerEmbedder
from guards import Guards
from router import build_router
from serving.audit import AuditLog
from serving.config import StackConfig, TierConfig, admin_key, parse_config
from serving.contract import ProbeResult, TierEvent, TierFailed, TierRequest, TierStarted
from serving.engine import EngineDead, TierEngine, VLLMServingEngine, probe
from serving.gateway import build_gateway
from serving.http import build_http_app
from serving.metrics import GatewayMetrics
from serving.redis_server import LocalRedis
from serving.stack_metrics import MetricsPublisher, engine_exposition, metrics_key
from serving.status import node_identity, presence_key
from serving.tracing import build_tracer

logger = logging.getLogger(__name__)

EngineFactory = Callable[[str, TierConfig], Awaitable[TierEngine]]


def torch_threads(count: int) -> None:
    """Cap torch's intra-op thread team (imported here: torch's import is slow and only the gateway needs it)."""
    import torch

    torch.set_num_threads(count)


def audit_log(stack: StackConfig, replica: str) -> AuditLog | None:
    """This replica's audit writer: its own folder under the audit dir (the chain has one writer)."""
    if not stack.audit.enabled:
        return None
    root = stack.audit.dir or stack.data_dir / "audit"
    return AuditLog(stack.audit, root, f"gateway-{replica}", stack.audit.postgres_dsn(os.environ))


def _replica_id() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a replica (direct construction in tests)
        return "local"


@serve.deployment
class ModelServer:
    """One tier: vLLM's OpenAI serving layer answering typed tier requests with a stream of typed events."""

    async def __init__(  # type: ignore[misc]
        self,
        tier: dict[str, Any],
        model_path: str,
        engine_factory: EngineFactory | None = None,
        metrics_redis: DeploymentHandle[Any] | str | None = None,
        metrics_prefix: str = "tierserve",
    ) -> None:
        self._tier = TierConfig.model_validate(tier)
        factory = engine_factory or VLLMServingEngine.start
        started = time.perf_counter()
        self._replica = _replica_id()
        self._engine = await factory(model_path, self._tier)
        logger.info("tier %s replica %s ready in %.1fs", self._tier.name, self._replica, time.perf_counter() - started)
        self._publisher: MetricsPublisher | None = None
        if metrics_redis is not None:
            # vLLM's engine metrics join the stack's one scrape (GET /metrics on the gateway) through Redis.
            url = metrics_redis if isinstance(metrics_redis, str) else await metrics_redis.url.remote()
            key = metrics_key(metrics_prefix, "tier", self._replica, self._tier.name)
            where = {"role": "tier", "tier": self._tier.name, "replica": self._replica, **node_identity()}
            presence = (presence_key(metrics_prefix, "tier", self._replica, self._tier.name), lambda: where)
            self._publisher = MetricsPublisher(url, key, engine_exposition, presence=presence)
            self._publisher.start()

    async def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]:
        try:
            async for event in self._engine.serve(request):
                # The engine does not know which replica it is: stamped here, for the gateway's headers.
                yield TierStarted(replica=self._replica) if isinstance(event, TierStarted) else event
        except EngineDead as error:
            logger.error("tier %s engine is dead: %s", self._tier.name, error)
            yield TierFailed(
                kind="unavailable", status=503, code="engine_dead", message=f"tier {self._tier.name}: engine died"
            )

    async def probe(self) -> ProbeResult:
        ok, generate_ms = await probe(self._engine, self._replica)
        return ProbeResult(ok=ok, replica=self._replica, generate_ms=generate_ms)

    async def unfinished(self) -> int:
        """Requests this replica's engine is still generating: a client that went away must not leave one."""
        return self._engine.unfinished()

    async def check_health(self) -> None:
        # Ray Serve calls this periodically; raising makes it replace the replica.
        await self._engine.check_health()

    async def __del__(self) -> None:
        publisher = getattr(self, "_publisher", None)
        if publisher is not None:
            await publisher.close()
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.shutdown()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, health_check_period_s=2)
class RedisServer:
    """A real redis-server on loopback for stacks whose config names no Redis."""

    async def __init__(self, data_dir: str | None) -> None:  # type: ignore[misc]
        # Started from the replica's event-loop thread: the server is tied to this thread's life
        # (PR_SET_PDEATHSIG), and that thread lives as long as the replica.
        path = Path(data_dir) if data_dir else None
        self._redis = LocalRedis(data_dir=path, persist=path is not None).start()
        if path is not None:  # where the serve process finds it (live scaling): the stack's own, on this machine
            (path / "url").write_text(self._redis.url + "\n")

    def url(self) -> str:
        return self._redis.url

    async def check_health(self) -> None:
        # Async so the restart runs on the replica's event-loop thread (see __init__).
        # Ray Serve calls this every few seconds: a Redis that died (OOM kill, operator) comes back
        # on the same port, from its append-only file; meanwhile the gateways bypass the cache.
        if not self._redis.running():
            logger.warning("local redis on port %d is down; restarting it", self._redis.port)
            self._redis.start()

    def __del__(self) -> None:
        redis = getattr(self, "_redis", None)
        if redis is not None:
            redis.stop()


class RayTier:
    """A tier reached through its Ray Serve handle."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]:
        responses = self._handle.options(stream=True).generate.remote(request)
        assert isinstance(responses, DeploymentResponseGenerator)  # stream=True always returns one
        try:
            async for event in responses:
                yield event
        finally:
            # The client went away or the gateway stopped reading: stop the engine's work too.
            responses.cancel()  # type: ignore[no-untyped-call]

    async def probe(self) -> ProbeResult:
        result: ProbeResult = await self._handle.probe.remote()
        return result


@serve.deployment
@serve.ingress()
class Gateway:
    """The ingress: OpenAI HTTP API, tenants, semantic cache, router, and calls into the tiers."""

    async def __init__(  # type: ignore[misc]
        self,
        config: dict[str, Any],
        tiers: Mapping[str, DeploymentHandle[Any]],
        redis: DeploymentHandle[Any] | str | None,
    ) -> None:
        stack = parse_config(config)
        cache: SemanticCache | None = None
        redis_url = redis if isinstance(redis, str) else await redis.url.remote() if redis is not None else None
        if stack.cache.enabled:
            if redis_url is None:
                raise ValueError("cache is enabled but no Redis was given")
            if stack.cache.embedder_threads is not None:
                # Process-wide, and this replica's process embeds and nothing else.
                torch_threads(stack.cache.embedder_threads)
            embedder = await asyncio.to_thread(SentenceTransformerEmbedder, None, stack.cache.embedder_device)
            store = CacheStore(stack.cache.redis, redis_url)
            cache = SemanticCache(stack.cache, embedder, store, LookalikeVerifier(stack.cache.verify))
            cache.start()  # follow the other replicas' inserts and deletes
        router = build_router(stack.router, [t.name for t in stack.tiers])
        for tier in stack.tiers:
            if tier.deployment.request_router == "prefix_aware" and not tiers[tier.name].is_initialized:
                # Ray Serve LLM's prefix router waits on its prefix-tree actor with blocking `ray.get` calls; in
                # throughput-optimized mode a handle's router shares this replica's event loop, which would stall
                # every request here: give that tier's router a loop of its own.
                tiers[tier.name]._init(_run_router_in_separate_loop=True)  # type: ignore[no-untyped-call]
        # Presidio (spaCy) and the classifier's weights load here, off the event loop.
        guards = await asyncio.to_thread(Guards, stack.guards) if stack.guards.enabled else None
        if guards is not None and cache is None and guards.classifier.embedding_dim:
            # No cache to share an embedder with: the guard's own, batched the same way.
            own = await asyncio.to_thread(SentenceTransformerEmbedder, None, stack.cache.embedder_device)
            guards.embed = EmbeddingBatcher(own).embed
        self._cache = cache
        tracer, self._tracer_provider = build_tracer(stack.tracing)
        replica = _replica_id()
        self._service = build_gateway(
            stack,
            {n: RayTier(h) for n, h in tiers.items()},
            cache,
            router,
            GatewayMetrics(),
            tracer,
            redis_url=redis_url,
            admin_key=admin_key(stack.gateway),
            replica=replica,
            audit=audit_log(stack, replica),
            guards=guards,
        )
        self._publisher: MetricsPublisher | None = None
        if redis_url is not None:
            key = metrics_key(stack.cache.redis.key_prefix, "gateway", replica)
            presence = (presence_key(stack.cache.redis.key_prefix, "gateway", replica), self._service.presence)
            self._publisher = MetricsPublisher(
                redis_url, key, lambda: self._service.metrics.render().decode(), presence=presence
            )
            self._publisher.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_http_app(self._service, echo_request_id=False)

    async def __del__(self) -> None:
        # getattr: a replica whose __init__ failed has neither.
        publisher = getattr(self, "_publisher", None)
        if publisher is not None:
            await publisher.close()
        cache = getattr(self, "_cache", None)
        if cache is not None:
            await cache.close()
        service = getattr(self, "_service", None)
        if service is not None:
            await service.close()
        provider = getattr(self, "_tracer_provider", None)
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)  # flushes the spans still batched (may wait on the collector)
