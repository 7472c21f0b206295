"""What keeps a failing tier from failing requests: a circuit breaker per tier (purgatory) and a retry budget.

The breaker guards the start of a generation (up to the tier's first event): a replica that is gone or an engine
that is dead fails there. Client errors (4xx) and a client going away are not the tier's failures. The retry
budget caps retries at a share of recent requests (Envoy's retry budget), so retries cannot multiply the load of
a tier that is failing for everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from serving.config import StackConfig
from serving.errors import ServingError
from serving.metrics import GatewayMetrics

_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


def _client_fault(error: BaseException) -> bool:
    return isinstance(error, ServingError) and error.status < 500


class BreakerOpen(Exception):
    """The tier's breaker is open: no call was made."""

    def __init__(self, tier: str, retry_after_s: float) -> None:
        super().__init__(f"tier '{tier}' is failing; its circuit breaker is open")
        self.tier = tier
        self.retry_after_s = retry_after_s


class Breakers:
    def __init__(self, config: StackConfig, metrics: GatewayMetrics) -> None:
        self._config = {tier.name: tier.reliability.breaker for tier in config.tiers}
        # Not the tier's failures: a client error, a client that went away.
        self._factory = AsyncCircuitBreakerFactory(
            exclude=[(ServingError, _client_fault), asyncio.CancelledError, GeneratorExit]
        )
        self._factory.add_listener(self._on_event)
        self._metrics = metrics
        self._states: dict[str, str] = {name: "closed" for name in self._config}
        self._opened_at: dict[str, float] = {}
        self._outcomes: dict[str, deque[tuple[float, bool]]] = {}
        for name in self._config:
            metrics.breaker_state.labels(name).set(0)

    def _on_event(self, name: str, kind: str, event: Any) -> None:
        if kind != "state_changed":
            return
        self._states[name] = str(event.state)
        if event.state == "opened":
            self._opened_at[name] = time.time()
        self._metrics.breaker_state.labels(name).set(_STATES.get(str(event.state), 0))
        self._metrics.breaker_transitions.labels(name, str(event.state)).inc()

    def state(self, tier: str) -> str:
        return self._states.get(tier, "closed")

    def retry_after_s(self, tier: str) -> float:
        opened = self._opened_at.get(tier)
        if opened is None or self.state(tier) != "opened":
            return 0.0
        return max(0.0, opened + self._config[tier].open_s - time.time())

    @asynccontextmanager
    async def guard(self, tier: str) -> AsyncIterator[None]:
        """The start of one call to `tier`: raises BreakerOpen without calling when the breaker is open; a server
        failure inside counts against the tier, a client error does not."""
        config = self._config[tier]
        breaker = await self._factory.get_breaker(tier, threshold=config.failures, ttl=config.open_s)
        try:
            async with breaker:
                yield
        except OpenedState:
            raise BreakerOpen(tier, max(0.5, self.retry_after_s(tier) or config.open_s)) from None
        except BaseException as error:
            if not (_client_fault(error) or isinstance(error, asyncio.CancelledError | GeneratorExit)):
                await self._outcome(tier, failed=True)
            raise
        await self._outcome(tier, failed=False)

    async def _outcome(self, tier: str, *, failed: bool) -> None:
        """The failure ratio over the window: past it (with enough calls), the breaker opens even though the
        failures were not in a row (purgatory counts consecutive failures only)."""
        config = self._config[tier]
        now = time.monotonic()
        window = self._outcomes.setdefault(tier, deque())
        window.append((now, failed))
        while window and window[0][0] < now - config.window_s:
            window.popleft()
        if self.state(tier) != "closed" or len(window) < config.min_calls:
            return
        if sum(1 for _, bad in window if bad) / len(window) < config.failure_ratio:
            return
        breaker = await self._factory.get_breaker(tier, threshold=config.failures, ttl=config.open_s)
        breaker.context.set_state(OpenedState(tier))
        while breaker.context.messages:  # tell the listeners (state, metrics) as purgatory itself would
            await breaker.messagebus.handle(breaker.context.messages.pop(0), breaker.uow)
        window.clear()

    def report(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"state": self.state(name), "retry_after_s": round(self.retry_after_s(name), 1)}
            for name in self._config
        }


class RetryBudget:
    """Retries allowed: `ratio` of the requests of the last `window_s`, and at least `minimum` per window."""

    def __init__(self, ratio: float, minimum: int, window_s: float = 10.0) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self._window_s = window_s
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        for events in (self._requests, self._retries):
            while events and events[0] < now - self._window_s:
                events.popleft()

    def request(self) -> None:
        self._requests.append(time.monotonic())

    def try_spend(self) -> bool:
        now = time.monotonic()
        self._trim(now)
        if len(self._retries) >= max(self._minimum, int(self._ratio * len(self._requests))):
            return False
        self._retries.append(now)
        return True


class TierLoad:
    """Requests in flight to one tier from this gateway replica, bounded by an AIMD limit driven by their TTFT."""

    def __init__(self, initial: int, minimum: int, maximum: int, ttft_target_s: float) -> None:
        self.limit = float(initial)
        self._min, self._max = minimum, maximum
        self._target = ttft_target_s
        self.inflight = 0
        self.by_tenant: dict[str, int] = {}
        self._last_decrease = 0.0
        self._service_s = ttft_target_s  # an estimate of one request's time on the tier, for Retry-After
        self._seen: dict[str, float] = {}  # tenant -> when it last asked for this tier

    def _others_active(self, tenant: str, now: float) -> bool:
        """Another tenant asked for this tier within the last minute (alone, a tenant may use all of it)."""
        for other, seen in list(self._seen.items()):
            if now - seen > 60:
                del self._seen[other]
            elif other != tenant:
                return True
        return False

    def admit(self, tenant: str) -> str | None:
        """None when admitted; else why not: `overloaded` (the tier is full) or `tenant_share`. Past three quarters
        full, while other tenants have used the tier within the last minute, a tenant may hold at most
        limit / (active tenants + 1): the last quarter stays for the others, so one tenant's burst is refused before
        anyone else is. A tenant alone may use the whole tier."""
        limit = max(self._min, int(self.limit))
        now = time.monotonic()
        self._seen[tenant] = now
        if self.inflight >= limit:
            return "overloaded"
        if self.inflight >= 0.75 * limit and self._others_active(tenant, now):
            tenants = len(self.by_tenant) + (0 if tenant in self.by_tenant else 1)
            if self.by_tenant.get(tenant, 0) >= max(1, limit // (tenants + 1)):
                return "tenant_share"
        self.inflight += 1
        self.by_tenant[tenant] = self.by_tenant.get(tenant, 0) + 1
        return None

    def release(self, tenant: str, ttft_s: float | None, elapsed_s: float) -> None:
        self.inflight -= 1
        left = self.by_tenant.get(tenant, 1) - 1
        if left:
            self.by_tenant[tenant] = left
        else:
            self.by_tenant.pop(tenant, None)
        self._service_s = 0.9 * self._service_s + 0.1 * elapsed_s
        if ttft_s is None:
            return
        now = time.monotonic()
        if ttft_s > self._target:
            # At most one decrease per target interval: a burst of late answers is one signal, not twenty.
            if now - self._last_decrease >= self._target:
                self.limit = max(self._min, self.limit * 0.9)
                self._last_decrease = now
        else:
            self.limit = min(self._max, self.limit + 1 / max(self.limit, 1.0))

    def retry_after_s(self) -> int:
        """Until a slot is likely free: one request's time on the tier, spread over the slots (at least 1 s)."""
        return max(1, int(self._service_s / max(self.limit, 1.0) * max(1, self.inflight - int(self.limit) + 1) + 0.999))
