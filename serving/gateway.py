"""The gateway's request flow, free of Ray and HTTP: tenant -> cache -> router -> tier -> answer.

Tiers are reached through `TierClient`, so the same flow runs over Ray Serve handles in production
and over fakes in unit tests. Only plain data (dicts) crosses to a tier.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol

from opentelemetry.trace import NoOpTracer, Tracer

from cache import CachedAnswer, Outcome, SemanticCache, namespace_key
from router import Decision, Failure, Overrides, RouteInput, Router
from serving.calls import Accounting, CacheVisit, EmptyAnswer, LiveCall, Reply, replay_then
from serving.config import AUTO_MODEL, StackConfig
from serving.contract import ProbeResult, TierDelta, TierEvent, TierFailed, TierFinished, TierRequest, TierStarted
from serving.embeddings import EMBEDDING_MODEL
from serving.errors import (
    AuthenticationFailed,
    Forbidden,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    ServingError,
    TierUnavailable,
    from_plain,
)
from serving.formatting import DONE, ResponseFormatter, sse
from serving.jobs import MAX_TIER_HEADER, PIN_TIER_HEADER, Job
from serving.metrics import GatewayMetrics
from serving.protocol import ModelCard, ModelList
from serving.tracing import RequestTrace

logger = logging.getLogger(__name__)


def _storable(chunk: str) -> list[str]:
    """A stream chunk as the cache keeps it: without usage (a replay writes its own), none for the usage chunk."""
    data = json.loads(chunk)
    if not data.get("choices"):
        return []
    if "usage" in data:
        del data["usage"]
        return [json.dumps(data, separators=(",", ":"), ensure_ascii=False)]
    return [chunk]


class TierClient(Protocol):
    """One tier as the gateway sees it: the typed tier contract (serving.contract) in and out."""

    def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]: ...

    async def probe(self) -> ProbeResult: ...


class GatewayService:
    def __init__(
        self,
        config: StackConfig,
        tiers: Mapping[str, TierClient],
        cache: SemanticCache | None,
        router: Router,
        metrics: GatewayMetrics,
        tracer: Tracer | None = None,
    ) -> None:
        self._config = config
        self._tracer = tracer or NoOpTracer()
        self._tiers = dict(tiers)
        self._cache = cache
        self._router = router
        self._metrics = metrics
        self._created = int(time.time())
        self._health: tuple[float, bool, dict[str, Any]] | None = None
        self._health_lock = asyncio.Lock()
        # Identical misses in flight: (tenant, namespace, query) -> the leader's answer.
        self._inflight: dict[tuple[str, str, str], asyncio.Future[CachedAnswer | None]] = {}
        tier_versions = ",".join(f"{t.name}@{t.version}" for t in config.tiers)
        self._model_versions = {t.name: t.version for t in config.tiers}
        self._model_versions[AUTO_MODEL] = f"{tier_versions};router={config.router.model_dump_json()}"

    @property
    def metrics(self) -> GatewayMetrics:
        return self._metrics

    @property
    def config(self) -> StackConfig:
        return self._config

    @property
    def cache(self) -> SemanticCache | None:
        return self._cache

    def authenticate_admin(self, authorization: str | None) -> None:
        admin_key = self._config.gateway.admin_key
        if admin_key is None:
            raise Forbidden("The admin API is disabled: set gateway.admin_key to enable it.")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), admin_key.encode()):
            raise AuthenticationFailed("Incorrect or missing admin key.")

    def _tier_request(self, job: Job, trace_headers: Mapping[str, str]) -> TierRequest:
        return TierRequest(
            endpoint=job.endpoint,
            body=job.body,
            request_id=job.request_id,
            # vLLM shares prefix-cache blocks between identical prompts; salting them per tenant means another
            # tenant's earlier prompt can never make this one faster, so its first token cannot tell.
            cache_salt=job.tenant if self._config.cache.timing_protection else None,
            trace_headers=dict(trace_headers),
        )

    def authenticate(self, authorization: str | None) -> str:
        keys = self._config.gateway.api_keys
        if not keys:
            return self._config.gateway.default_tenant
        scheme, _, token = (authorization or "").partition(" ")
        tenant = keys.get(token.strip()) if scheme.lower() == "bearer" else None
        if tenant is None:
            raise AuthenticationFailed("Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'.")
        return tenant

    def models(self) -> ModelList:
        cards = [ModelCard(id=AUTO_MODEL, created=self._created, root="router")]
        cards += [
            ModelCard(id=t.name, created=self._created, root=self._config.model_path(t)) for t in self._config.tiers
        ]
        if self._cache is not None:  # its embedder also serves /v1/embeddings
            cards.append(ModelCard(id=EMBEDDING_MODEL, created=self._created, root="embeddings"))
        return ModelList(data=cards)

    async def handle(self, job: Job) -> Reply:
        """Answer one request. Its trace ends here for errors and whole bodies, at the end of a live stream."""
        acct = Accounting(trace=self._start_trace(job))
        try:
            reply = await self._handle(job, acct)
        except ServingError as error:
            acct.trace.end(error.status, error.code or type(error).__name__)
            raise
        except asyncio.CancelledError:
            acct.trace.end(499, "client_closed")  # the client went away while its answer was being prepared
            raise
        except BaseException as error:
            acct.trace.end(500, type(error).__name__)
            raise
        if reply.stream is None:
            acct.trace.end(200)
        return reply

    def _start_trace(self, job: Job) -> RequestTrace:
        operation = "chat" if job.endpoint == "chat" else "text_completion"
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": job.model,
            "gen_ai.request.temperature": job.temperature,
            "tierserve.request_id": job.request_id,
            "tierserve.tenant": job.tenant,
            "tierserve.stream": job.stream,
        }
        if job.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = job.max_tokens
        return RequestTrace(self._tracer, f"{operation} {job.model}", job.trace_headers, attributes)

    async def _handle(self, job: Job, acct: Accounting) -> Reply:
        if job.model != AUTO_MODEL and job.model not in self._tiers:
            raise NotFound(
                f"The model '{job.model}' does not exist. Available: {', '.join([AUTO_MODEL, *self._tiers])}.",
                param="model",
            )
        overrides = self._overrides(job)
        headers = {"x-request-id": job.request_id}
        if acct.trace.trace_id is not None:
            headers["x-tierserve-trace-id"] = acct.trace.trace_id
        visit = await self._consult_cache(job, acct)
        acct.trace.set(cache=visit.outcome.value if visit.answer is None else "hit", similarity=visit.similarity)
        if visit.answer is not None:
            headers |= {"x-tierserve-cache": "hit", "x-tierserve-tier": visit.answer.tier}
            if visit.similarity is not None:
                headers["x-tierserve-similarity"] = f"{visit.similarity:.4f}"
            return self._replay(job, visit.answer, headers, acct)
        outcome, namespace, vector = visit.outcome, visit.namespace, visit.vector
        headers["x-tierserve-cache"] = outcome.value
        if visit.bypass_reason is not None:
            headers["x-tierserve-cache-bypass"] = visit.bypass_reason

        decision: Decision | None = None
        if job.model == AUTO_MODEL:
            decision = await self._route(job, vector, overrides, acct)
            tier = decision.tier
            headers["x-tierserve-route-score"] = f"{decision.score:.4f}"
            headers["x-tierserve-route-reason"] = decision.reason
        else:
            tier = job.model
        headers["x-tierserve-tier"] = tier

        store = (namespace, vector) if outcome is Outcome.MISS and namespace is not None else None
        call = self._call(
            job,
            tier,
            store,
            acct,
            deadline=asyncio.get_running_loop().time() + self._config.gateway.request_timeout_s,
            flight=visit.flight,
            on_close=partial(self._inflight.pop, visit.flight_key, None) if visit.flight is not None else None,
        )
        escalated_from: str | None = None
        while True:
            try:
                # Wait for the tier to accept the request before any header leaves: a rejection (context
                # too long, tier down) is still a proper HTTP error, not a broken stream.
                first = await self._next_event(call)
                if escalated_from is None and self._escalation_target(decision, call.tier, overrides, None):
                    await self._settle(call)
                break
            except (ServingError, EmptyAnswer) as error:
                target = None if escalated_from else self._escalation_target(decision, call.tier, overrides, error)
                if target is None:
                    status = error.status if isinstance(error, ServingError) else 500
                    self._count(job, call.tier, outcome.value, status)
                    if isinstance(error, ServingError):
                        error.counted = True
                    await call.close(type(error).__name__ if status >= 500 else None)
                    raise
                call, escalated_from = await self._escalate(call, target, error), call.tier
                headers |= {"x-tierserve-tier": target, "x-tierserve-escalated-from": escalated_from}
        tier = call.tier
        replica = first.replica if isinstance(first, TierStarted) else None
        acct.trace.set(tier=tier, escalated_from=escalated_from, replica=replica)
        if replica:
            headers["x-tierserve-replica"] = replica
        if job.stream:
            return Reply(headers, stream=self._stream_live(call, first))
        try:
            return Reply(headers, raw_body=await self._collect_live(call, first))
        except ServingError as error:
            self._count(job, tier, call.cache_label, error.status)
            error.counted = True
            raise
        finally:
            await call.close()

    def _overrides(self, job: Job) -> Overrides:
        """Pin/cap for this request: the request's headers (if allowed) within the tenant's own limits."""
        routing = self._config.router
        for header, value in ((PIN_TIER_HEADER, job.route_pin), (MAX_TIER_HEADER, job.route_cap)):
            if value is not None and value not in self._tiers:
                raise InvalidRequest(
                    f"{header}: unknown tier '{value}'. Tiers: {', '.join(self._tiers)}.", code="invalid_tier"
                )
        tenant = routing.tenants.get(job.tenant)
        cap = tenant.max_tier if tenant is not None else None
        if job.model == AUTO_MODEL:
            return self._router.overrides(tenant, job.route_pin, job.route_cap, routing.request_overrides)
        if cap is not None and self._router.policy.rank(job.model) > self._router.policy.rank(cap):
            raise Forbidden(
                f"This API key may use tiers up to '{cap}'; '{job.model}' is above it.",
                param="model",
                code="tier_not_allowed",
            )
        return Overrides()

    def _call(self, job: Job, tier: str, store: tuple[str, Any] | None, acct: Accounting, **rest: Any) -> LiveCall:
        """Start generating on `tier`; its `generate` span is the parent the tier's engine sees."""
        span = acct.trace.start_stage("generate", tier=tier)
        events = self._tiers[tier].generate(self._tier_request(job, acct.trace.carrier(span)))
        return LiveCall(job=job, tier=tier, events=events, store=store, acct=acct, span=span, **rest)

    async def _route(self, job: Job, vector: Any, overrides: Overrides, acct: Accounting) -> Decision:
        """Score and pick a tier; reuses the cache's embedding, or embeds when the cache was bypassed."""
        if vector is None and self._cache is not None and self._config.router.embed_when_bypassed:
            try:
                with self._stage(acct, "embed"):
                    vector = await self._cache.embed_async(job.query)
            except Exception as error:  # the router then scores from surface features alone
                logger.warning("embedding for the router failed for request %s: %r", job.request_id, error)
        request = RouteInput(
            text=job.query,
            max_tokens=job.max_tokens,
            earlier_turns=sum(1 for role, _ in job.context if role == "user"),
            embedding=vector,
        )
        with self._stage(acct, "route"):
            decision = self._router.route(request, overrides)
        acct.trace.set(route_score=round(decision.score, 4), route_reason=decision.reason, routed_tier=decision.tier)
        self._metrics.route_score.observe(decision.score)
        self._metrics.route_decisions.labels(decision.tier, decision.reason).inc()
        logger.info(
            "request %s routed to %s (score %.4f, %s, %s)",
            job.request_id,
            decision.tier,
            decision.score,
            decision.reason,
            "embedding" if vector is not None else "features only",
        )
        return decision

    def _escalation_target(
        self, decision: Decision | None, tier: str, overrides: Overrides, error: ServingError | EmptyAnswer | None
    ) -> str | None:
        """The next tier up, when this routed request may escalate (for `error`, or at all when None)."""
        if decision is None:
            return None
        # A timeout has used the request's time already; a 4xx would fail on any tier.
        if isinstance(error, ServingError) and (error.status < 500 or isinstance(error, GatewayTimeout)):
            return None
        rules = self._config.router.escalation
        if error is None:
            # Watching the start of the answer only pays when an empty answer would be retried.
            return self._router.escalation_target(rules, tier, overrides.cap, "empty_length")
        failure: Failure = "empty_length" if isinstance(error, EmptyAnswer) else "error"
        return self._router.escalation_target(rules, tier, overrides.cap, failure)

    async def _settle(self, call: LiveCall) -> None:
        """Read until the first text (or the end) before answering: an empty answer cut at max_tokens
        raises EmptyAnswer while it can still be retried on the next tier. What was read is replayed."""
        buffered: list[TierEvent] = []
        while True:
            event = await self._next_event(call)
            buffered.append(event)
            if isinstance(event, TierDelta) and event.text:
                break
            if isinstance(event, TierFinished):
                if event.finish_reason == "length" and not event.text:
                    raise EmptyAnswer()
                break
        call.events = replay_then(buffered, call.events)

    async def _escalate(self, call: LiveCall, target: str, error: ServingError | EmptyAnswer) -> LiveCall:
        reason = "empty_length" if isinstance(error, EmptyAnswer) else "error"
        self._metrics.escalations.labels(call.tier, target, reason).inc()
        logger.info("request %s escalated from %s to %s (%s)", call.job.request_id, call.tier, target, reason)
        job = call.job
        # The single-flight followers now wait for the escalated call's answer.
        flight, on_close = call.flight, call.on_close
        call.flight = call.on_close = None
        await call.close(reason)
        return self._call(job, target, call.store, call.acct, deadline=call.deadline, flight=flight, on_close=on_close)

    async def _consult_cache(self, job: Job, acct: Accounting) -> CacheVisit:
        """Look the request up; on a miss, either join the identical generation in flight or lead one."""
        cache = self._cache
        if cache is None:
            return CacheVisit(Outcome.BYPASS)
        reason = job.cache_bypass or ("temperature" if job.temperature > cache.config.max_temperature else None)
        if reason is not None or not cache.available():
            return CacheVisit(Outcome.BYPASS, bypass_reason=reason or "unavailable")
        namespace = namespace_key(
            tenant=job.tenant,
            model_alias=job.model,
            model_version=self._model_versions[job.model],
            endpoint=job.endpoint,
            context=job.context,
            params=job.params,
        )
        with self._stage(acct, "cache_exact"):
            exact = await cache.lookup_exact(job.tenant, namespace, job.query)
        if exact is not None:  # an identical repeat: answered without embedding anything
            return CacheVisit(Outcome.HIT, namespace, None, exact.answer, exact.similarity)
        with self._stage(acct, "embed"):
            vector = await cache.embed_async(job.query)
        with self._stage(acct, "cache_lookup"):
            lookup = await cache.lookup(job.tenant, namespace, vector, job.query)
        visit = CacheVisit(lookup.outcome, namespace, vector, lookup.answer, lookup.similarity)
        if lookup.outcome is not Outcome.MISS:
            return visit
        visit.flight_key = (job.tenant, namespace, job.query)
        leader = self._inflight.get(visit.flight_key)
        if leader is None:
            visit.flight = self._inflight[visit.flight_key] = asyncio.get_running_loop().create_future()
            return visit
        # The same question is being generated right now: wait for that answer (single-flight).
        visit.answer = await self._follow_leader(leader)
        return visit

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Every tier really generates (a one-token probe); the result is reused for health_cache_s."""
        async with self._health_lock:
            now = time.monotonic()
            if self._health is not None and now - self._health[0] < self._config.gateway.health_cache_s:
                return self._health[1], self._health[2]
            names = list(self._tiers)
            results = await asyncio.gather(*(self._probe(name) for name in names))
            tiers = dict(zip(names, results, strict=True))
            failing = [name for name, result in tiers.items() if not result["ok"]]
            cache_state = "disabled" if self._cache is None else ("ok" if self._cache.available() else "bypass")
            report = {"status": "unavailable" if failing else "ok", "failing": failing, "tiers": tiers}
            report["cache"] = cache_state
            self._health = (now, not failing, report)
            return not failing, report

    async def _probe(self, name: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.gateway.health_timeout_s):
                result = await self._tiers[name].probe()
        except Exception as error:
            return {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        return {
            "ok": result.ok,
            "replica": result.replica,
            "generate_ms": result.generate_ms,
            "latency_ms": round((time.perf_counter() - started) * 1e3, 1),
        }

    def _replay(self, job: Job, answer: CachedAnswer, headers: dict[str, str], acct: Accounting) -> Reply:
        formatter = ResponseFormatter(job.endpoint, job.request_id, answer.tier)
        acct.trace.set(answered_by=answer.tier)
        # Ends the trace too: a replay is written at once, the request's work is done.
        self._finish(job, "cache", "hit", acct, answer.prompt_tokens, answer.completion_tokens, first_token=True)
        # The engine's own response when it was stored in the mode asked for (exact), else rebuilt from the text.
        if not job.stream:
            if answer.body is not None:
                return Reply(headers, body=formatter.restamp(answer.body))
            body = formatter.full(answer.text, answer.finish_reason, answer.prompt_tokens, answer.completion_tokens)
            return Reply(headers, body=body)
        counts = (answer.prompt_tokens, answer.completion_tokens)
        if answer.chunks is not None:
            chunks = formatter.replay_chunks(answer.chunks, *counts, job.include_usage)
        else:
            chunks = formatter.replay(answer.pieces, answer.finish_reason, *counts, job.include_usage)

        async def replay() -> AsyncIterator[str]:
            for chunk in chunks:
                yield chunk

        return Reply(headers, stream=replay())

    async def _follow_leader(self, leader: asyncio.Future[CachedAnswer | None]) -> CachedAnswer | None:
        try:
            # shield: a follower that gives up must not cancel the leader's future for the others.
            async with asyncio.timeout(self._config.gateway.request_timeout_s):
                return await asyncio.shield(leader)
        except TimeoutError:
            return None

    async def _next_event(self, call: LiveCall) -> TierEvent:
        """The tier's next event; every way a tier can fail becomes a ServingError."""
        try:
            async with asyncio.timeout_at(call.deadline):
                event = await anext(call.events)
        except StopAsyncIteration:
            raise TierUnavailable(f"tier '{call.tier}' ended the stream without finishing") from None
        except TimeoutError:
            raise GatewayTimeout(
                f"tier '{call.tier}' did not finish within {self._config.gateway.request_timeout_s:.0f}s"
            ) from None
        except ServingError:
            raise
        except Exception as error:  # the tier's replica died or cannot be reached
            logger.warning("tier %s failed for request %s: %r", call.tier, call.job.request_id, error)
            raise TierUnavailable(f"tier '{call.tier}' is unavailable: {type(error).__name__}") from error
        if isinstance(event, TierFailed):
            raise from_plain(event.status, event.message, event.code, event.param)
        if isinstance(event, TierDelta) and call.acct.ttft is None:
            call.acct.ttft = time.perf_counter() - call.acct.started
        return event

    def _answer(
        self, call: LiveCall, pieces: list[str], end: TierFinished, chunks: list[str] | None = None
    ) -> CachedAnswer:
        return CachedAnswer(
            pieces=pieces,
            finish_reason=end.finish_reason,
            prompt_tokens=end.prompt_tokens,
            completion_tokens=end.completion_tokens,
            tier=call.tier,
            chunks=chunks,
            body=end.body,
        )

    async def _collect_live(self, call: LiveCall, first: TierEvent) -> str:
        """A whole answer: vLLM's own response JSON, passed on as it is."""
        event = first
        while not isinstance(event, TierFinished):
            event = await self._next_event(call)
        if event.body is None:
            raise TierUnavailable(f"tier '{call.tier}' streamed an answer that was asked for whole")
        answer = self._answer(call, [event.text], event)
        call.land(answer)
        await self._store(call.job, answer, call.store, call.acct)
        self._finish(call.job, call.tier, call.cache_label, call.acct, answer.prompt_tokens, answer.completion_tokens)
        return event.body

    async def _stream_live(self, call: LiveCall, first: TierEvent) -> AsyncIterator[str]:
        """vLLM's own chunks, passed on as they come. The chunks from the one that finishes the answer on are
        held until the answer is stored and counted: a client may hang up as soon as it reads the finish (the
        load test's users did), which would otherwise skip the store and the accounting."""
        pieces: list[str] = []
        held: list[str] = []
        stored: list[str] | None = [] if call.store is not None or call.flight is not None else None
        failure: str | None = None
        try:
            event = first
            while not isinstance(event, TierFinished):
                if isinstance(event, TierDelta):
                    pieces.append(event.text)
                    if stored is not None:
                        stored += _storable(event.data)
                    chunk = f"data: {event.data}\n\n"
                    if held or event.finishes:
                        held.append(chunk)
                    else:
                        yield chunk
                event = await self._next_event(call)
            answer = self._answer(call, pieces, event, stored)
            call.land(answer)
            await self._store(call.job, answer, call.store, call.acct)
            self._finish(
                call.job, call.tier, call.cache_label, call.acct, answer.prompt_tokens, answer.completion_tokens
            )
            for chunk in held:
                yield chunk
            yield DONE
        except ServingError as error:
            # The headers are gone already: report the error in-band, as vLLM's server does.
            self._count(call.job, call.tier, call.cache_label, error.status)
            call.acct.trace.end(error.status, error.code or type(error).__name__)
            failure = type(error).__name__
            yield sse(error.body())
            yield DONE
        except Exception as error:
            failure = type(error).__name__
            call.acct.trace.end(500, failure)
            raise
        finally:
            await call.close(failure)
            # Ended already unless the client went away mid-stream (499, nginx's "client closed request").
            call.acct.trace.end(499, "client_closed")

    async def _store(self, job: Job, answer: CachedAnswer, store: tuple[str, Any] | None, acct: Accounting) -> None:
        if store is None or self._cache is None:
            return
        namespace, vector = store
        with self._stage(acct, "cache_store"):
            await self._cache.store(
                job.tenant,
                namespace,
                job.query,
                vector,
                answer,
                model=job.model,
                model_version=self._model_versions[job.model],
            )

    def _finish(
        self,
        job: Job,
        tier: str,
        cache: str,
        acct: Accounting,
        prompt_tokens: int,
        completion_tokens: int,
        first_token: bool = False,
    ) -> None:
        elapsed = time.perf_counter() - acct.started
        ttft = elapsed if first_token or acct.ttft is None else acct.ttft
        acct.trace.set_raw(
            {
                "gen_ai.response.model": tier,
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": completion_tokens,
                "tierserve.ttft_ms": round(ttft * 1e3, 2),
            }
        )
        acct.trace.end(200)
        m = self._metrics
        m.requests.labels(job.endpoint, tier, cache, "200").inc()
        m.latency.labels(job.endpoint, tier, cache).observe(elapsed)
        m.ttft.labels(tier, cache).observe(ttft)
        m.tokens.labels(tier, "prompt").inc(prompt_tokens)
        m.tokens.labels(tier, "completion").inc(completion_tokens)
        if tier in self._tiers:
            price = self._config.tier(tier)
            cost = (
                prompt_tokens * price.price_per_1k_prompt_tokens
                + completion_tokens * price.price_per_1k_completion_tokens
            ) / 1000
            m.cost.labels(tier, job.tenant).inc(cost)
            # What the same tokens would have cost on the largest tier: the routing's saving is the difference.
            largest = self._config.tiers[-1]
            m.cost_largest.labels(job.tenant).inc(
                (
                    prompt_tokens * largest.price_per_1k_prompt_tokens
                    + completion_tokens * largest.price_per_1k_completion_tokens
                )
                / 1000
            )

    def _count(self, job: Job, tier: str, cache: str, status: int) -> None:
        self._metrics.requests.labels(job.endpoint, tier, cache, str(status)).inc()

    @contextmanager
    def _stage(self, acct: Accounting, stage: str) -> Iterator[None]:
        """One stage of the flow: timed into the stage histogram and traced as a child span."""
        with acct.trace.stage(stage), self._metrics.stage.labels(stage).time():
            yield
