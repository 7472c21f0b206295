"""Failover before the first byte: a call to a tier that fails before its first token (a dead replica or engine,
the first-token deadline) is retried on the same tier with jittered exponential backoff (tenacity), within the
retry budget, and then moves down the tier's fallback chain (`tiers[].reliability.fallback`, pinned models too);
a tier whose circuit breaker is open is skipped without a call. When every tier of the chain is open the request
is a 503 with Retry-After. A client error (4xx) is the request's own fault and is never retried, nor is a request
whose total deadline passed before its first token."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt, wait_random_exponential

from serving.config import StackConfig
from serving.errors import GatewayTimeout, ServingError, TierUnavailable
from serving.pipeline.context import RequestContext
from serving.reliability import BreakerOpen, Breakers, RetryBudget

logger = logging.getLogger(__name__)

Attempt = Callable[[RequestContext, str], Awaitable[None]]  # one call to a tier, up to its first token


def _final(error: ServingError) -> bool:
    """Neither retried nor sent down the chain: a client error (every tier would refuse it), or the request's whole
    time spent waiting (a call that reads up to its first token can reach the total deadline there). A missed
    first-token deadline is the tier's slowness, and the chain may still answer in time."""
    return error.status < 500 or (isinstance(error, GatewayTimeout) and error.code != "first_token_timeout")


class Failover:
    def __init__(self, config: StackConfig, breakers: Breakers) -> None:
        self._reliability = {tier.name: tier.reliability for tier in config.tiers}
        self._breakers = breakers
        self._budget = RetryBudget(config.gateway.retry_budget_ratio, config.gateway.retry_budget_min)

    def request(self) -> None:
        """A request was dispatched (the retry budget is a share of these)."""
        self._budget.request()

    async def first_event(self, ctx: RequestContext, tier: str, attempt: Attempt) -> None:
        """The first token of `tier`, or of the first tier of its fallback chain that gives one."""
        chain = [tier, *self._reliability[tier].fallback]
        failure: ServingError | None = None
        waits: list[float] = []
        skipped: list[str] = []
        for candidate in chain:
            try:
                await self._with_retries(ctx, candidate, attempt)
            except BreakerOpen as error:
                waits.append(error.retry_after_s)
                skipped.append(candidate)
                ctx.trace.set(breaker_open=",".join(skipped))  # the tiers whose breaker turned it away uncalled
                failure = TierUnavailable(str(error), code="circuit_open")
                continue
            except ServingError as error:
                if _final(error):
                    raise  # the request's own fault, or its time spent: no other tier would help
                failure = error
                continue
            if candidate != tier:
                ctx.metrics.fallbacks.labels(tier, candidate, failure.code if failure else "error").inc()
                ctx.headers |= {"x-tierserve-fallback-from": tier, "x-tierserve-tier": candidate}
                ctx.trace.set(fallback_from=tier)
            return
        assert failure is not None
        if len(waits) == len(chain):  # every tier of the chain is refusing calls: say when to come back
            retry_after = max(1, int(min(waits) + 0.999))
            failure = TierUnavailable(
                f"Every tier for this request ({', '.join(chain)}) is failing and its circuit breaker is open; "
                f"retry after {retry_after} s.",
                code="circuit_open",
            )
            failure.headers = {"retry-after": str(retry_after)}
        if failure.status == 503:
            failure.headers.setdefault("retry-after", "1")
        raise failure

    async def _with_retries(self, ctx: RequestContext, tier: str, attempt: Attempt) -> None:
        settings = self._reliability[tier]

        def retry(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome is not None else None
            if not isinstance(error, ServingError) or isinstance(error, BreakerOpen) or _final(error):
                return False
            if state.attempt_number > settings.retries:
                return False
            if not self._budget.try_spend():
                ctx.metrics.retries.labels(tier, "budget_exhausted").inc()
                return False
            ctx.metrics.retries.labels(tier, "retried").inc()
            logger.info("request %s: retrying tier %s after %s", ctx.job.request_id, tier, type(error).__name__)
            return True

        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retries + 1),
            wait=wait_random_exponential(multiplier=settings.backoff_s, max=settings.backoff_max_s),
            retry=retry,
            reraise=True,
        )
        async for trial in retrying:
            with trial:
                async with self._breakers.guard(tier):
                    await attempt(ctx, tier)
