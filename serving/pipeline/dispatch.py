"""The dispatch stage: the typed request goes to the chosen tier, and the gateway reads the tier's answer up to its
first token before any header leaves (a refusal is still a proper HTTP error). Until then nothing has reached the
client, so the failover (serving/pipeline/failover.py) may retry the call or move it down the tier's fallback
chain. A routed request whose tier fails, or stops at max_tokens with nothing said, is escalated once to the next
tier up. Every way a tier can fail becomes a ServingError here; a client error keeps its 4xx and is never retried."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from opentelemetry import trace

from router import Failure, Router
from serving.config import StackConfig
from serving.contract import ProbeResult, TierDelta, TierEvent, TierFailed, TierFinished, TierRequest
from serving.errors import GatewayTimeout, ServingError, TierUnavailable, from_plain
from serving.pipeline.context import EmptyAnswer, Flights, LiveCall, RequestContext
from serving.pipeline.failover import Failover
from serving.reliability import Breakers

logger = logging.getLogger(__name__)


class TierClient(Protocol):
    """One tier as the gateway sees it: the typed tier contract (serving.contract) in and out."""

    def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]: ...

    async def probe(self) -> ProbeResult: ...


class Dispatch:
    name = "dispatch"

    def __init__(
        self,
        config: StackConfig,
        tiers: Mapping[str, TierClient],
        router: Router,
        flights: Flights,
        breakers: Breakers,
    ) -> None:
        self._tiers = tiers
        self._flights = flights
        self._router = router
        self._escalation = config.router.escalation
        self._timeout_s = config.gateway.request_timeout_s
        self._salted = config.cache.timing_protection
        self._reliability = {tier.name: tier.reliability for tier in config.tiers}
        self._failover = Failover(config, breakers)

    async def run(self, ctx: RequestContext) -> None:
        assert ctx.tier is not None  # the route stage chose it
        self._failover.request()
        tier = ctx.tier
        while True:
            try:
                await self._failover.first_event(ctx, tier, self._attempt)
                if ctx.escalated_from is None and self._escalation_target(ctx, None):
                    await self._settle(ctx)
                return
            except (ServingError, EmptyAnswer) as error:
                target = None if ctx.escalated_from else self._escalation_target(ctx, error)
                if target is None:
                    status = error.status if isinstance(error, ServingError) else 500
                    await self.finish(ctx, type(error).__name__ if status >= 500 else None)
                    raise
                await self._escalate(ctx, target, error)
                tier = target

    async def _attempt(self, ctx: RequestContext, tier: str) -> None:
        """One call to `tier` up to its first token (the failover wraps it in the tier's breaker and retries)."""
        if ctx.call is not None:  # the previous attempt's call failed: end its span and stream
            await self._close(ctx.call, "retried")
            ctx.ttft = None  # the failed attempt's role chunk is not this answer's first token
        settings = self._reliability[tier]
        now = asyncio.get_running_loop().time()
        ctx.tier = tier
        ctx.call = self._start(ctx, tier, now + (settings.total_timeout_s or self._timeout_s))
        if settings.first_token_timeout_s is not None:
            ctx.call.first_token_deadline = now + settings.first_token_timeout_s
        # Read up to the first token here, where a failure can still be retried or fall back: nothing has left
        # for the client. vLLM's first chunk (the role, no text) comes with the first token, so waiting for the
        # token delays no header; a replica lost between the two is then a retry, not an answer that ends in an
        # error before its first word. What was read is replayed.
        ctx.first = await self.next_event(ctx)
        read = [ctx.first]
        while not _first_token(read[-1]):
            read.append(await self.next_event(ctx))
        ctx.call.replay.extend(read[1:])

    def _start(self, ctx: RequestContext, tier: str, deadline: float) -> LiveCall:
        """Start generating on `tier`; its `generate` span is the parent the tier's engine sees."""
        job = ctx.job
        span = ctx.trace.start_stage("generate", tier=tier)
        request = TierRequest(
            endpoint=job.endpoint,
            body=job.body,
            request_id=job.request_id,
            # vLLM shares prefix-cache blocks between identical prompts; salting them per tenant means another
            # tenant's earlier prompt can never make this one faster, so its first token cannot tell.
            cache_salt=job.tenant if self._salted else None,
            trace_headers=dict(ctx.trace.carrier(span)),
        )
        return LiveCall(tier=tier, events=self._tiers[tier].generate(request), deadline=deadline, span=span)

    async def next_event(self, ctx: RequestContext) -> TierEvent:
        """The tier's next event; every way a tier can fail becomes a ServingError."""
        call = ctx.call
        assert call is not None
        if call.replay:
            return call.replay.popleft()
        limit = call.deadline if call.first_token_deadline is None else min(call.deadline, call.first_token_deadline)
        try:
            async with asyncio.timeout_at(limit):
                event = await anext(call.events)
        except StopAsyncIteration:
            raise TierUnavailable(f"tier '{call.tier}' ended the stream without finishing") from None
        except TimeoutError:
            if call.first_token_deadline is not None and limit == call.first_token_deadline:
                waited = limit - (call.deadline - self._total(call.tier))
                raise GatewayTimeout(
                    f"tier '{call.tier}' gave no first token within {waited:.1f}s", code="first_token_timeout"
                ) from None
            raise GatewayTimeout(f"tier '{call.tier}' did not finish within {self._total(call.tier):.0f}s") from None
        except ServingError:
            raise
        except Exception as error:  # the tier's replica died or cannot be reached
            logger.warning("tier %s failed for request %s: %r", call.tier, ctx.job.request_id, error)
            raise TierUnavailable(f"tier '{call.tier}' is unavailable: {type(error).__name__}") from error
        if isinstance(event, TierFailed):
            raise from_plain(event.status, event.message, event.code, event.param)
        if _first_token(event):
            call.first_token_deadline = None
        if isinstance(event, TierDelta):
            if ctx.ttft is None:
                ctx.ttft = time.perf_counter() - ctx.started
            if event.text:  # about one token a text delta; the tier's usage corrects it at the end
                await ctx.tokens(1)
        return event

    def _total(self, tier: str) -> float:
        return self._reliability[tier].total_timeout_s or self._timeout_s

    def _escalation_target(self, ctx: RequestContext, error: ServingError | EmptyAnswer | None) -> str | None:
        """The next tier up, when this routed request may escalate (for `error`, or at all when None)."""
        if ctx.decision is None or ctx.call is None:
            return None
        # A timeout has used the request's time already; a 4xx would fail on any tier.
        if isinstance(error, ServingError) and (error.status < 500 or isinstance(error, GatewayTimeout)):
            return None
        cap = ctx.overrides.cap
        if error is None:
            # Watching the start of the answer only pays when an empty answer would be retried.
            return self._router.escalation_target(self._escalation, ctx.call.tier, cap, "empty_length")
        failure: Failure = "empty_length" if isinstance(error, EmptyAnswer) else "error"
        return self._router.escalation_target(self._escalation, ctx.call.tier, cap, failure)

    async def _settle(self, ctx: RequestContext) -> None:
        """Read until the first text (or the end) before answering: an empty answer cut at max_tokens raises
        EmptyAnswer while it can still be retried on the next tier. What was read is replayed."""
        call = ctx.call
        assert call is not None and ctx.first is not None  # the call was read up to its first token
        # Up to the first text, counting what the first-token read left to replay.
        read = [ctx.first, *call.replay]
        call.replay.clear()
        while not _settled(read[-1]):
            read.append(await self.next_event(ctx))
        last = read[-1]
        if isinstance(last, TierFinished) and last.finish_reason == "length" and not last.text:
            raise EmptyAnswer()
        call.replay.extend(read[1:])

    async def _escalate(self, ctx: RequestContext, target: str, error: ServingError | EmptyAnswer) -> None:
        assert ctx.call is not None
        reason = "empty_length" if isinstance(error, EmptyAnswer) else "error"
        ctx.metrics.escalations.labels(ctx.call.tier, target, reason).inc()
        logger.info("request %s escalated from %s to %s (%s)", ctx.job.request_id, ctx.call.tier, target, reason)
        await self._close(ctx.call, reason)
        ctx.escalated_from, ctx.tier, ctx.first, ctx.call = ctx.call.tier, target, None, None
        ctx.headers |= {"x-tierserve-tier": target, "x-tierserve-escalated-from": ctx.escalated_from}

    async def finish(self, ctx: RequestContext, error: str | None = None) -> None:
        """The request's generation is over (answered, failed or abandoned): its span ends, followers of a
        generation that did not land stop waiting (they generate themselves), and the tier's stream is closed,
        which cancels the generation on the replica (vLLM aborts it)."""
        ctx.visit.land(self._flights)
        if ctx.call is not None:
            await self._close(ctx.call, error)

    @staticmethod
    async def _close(call: LiveCall, error: str | None) -> None:
        if call.span is not None:
            if error is not None:
                call.span.set_status(trace.Status(trace.StatusCode.ERROR, error))
            call.span.end()
            call.span = None
        close = getattr(call.events, "aclose", None)
        if close is not None:
            await close()


def _first_token(event: TierEvent) -> bool:
    """The answer has begun: text, a tool call's first piece, or the end."""
    if isinstance(event, TierDelta):
        return bool(event.text) or '"tool_calls"' in event.data
    return isinstance(event, TierFinished)


def _settled(event: TierEvent) -> bool:
    return (isinstance(event, TierDelta) and bool(event.text)) or isinstance(event, TierFinished)
