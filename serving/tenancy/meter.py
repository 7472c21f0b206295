"""Rate limits, concurrency, budgets and the spend ledger of every request, held in Redis for all gateway replicas.

A request is admitted (requests/min, prompt tokens against tokens/min, a concurrency slot), then reserves its worst
case against the budgets, counts its completion tokens as they stream, and is finished once whatever way it ends:
the slot freed, the reservation replaced by the real cost, the token count corrected, one ledger entry written.

While Redis is down a tenant that fails open is served unmetered: its settlements wait here and are written when
Redis answers again; one that fails closed is refused with 429.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving.errors import RateLimited
from serving.metrics import GatewayMetrics
from serving.tenancy.config import Limits, TenancyConfig
from serving.tenancy.keys import Principal
from serving.tenancy.scripts import ADMIT, FINISH, RESERVE, TOKENS
from serving.tenancy.windows import budget_period, openai_duration, to_micro, to_usd

logger = logging.getLogger(__name__)

ScopeKind = Literal["key", "tenant"]
_ADJECTIVE = {"day": "daily", "month": "monthly"}


class QuotaExceeded(RateLimited):
    """A budget is spent: 429 with OpenAI's `insufficient_quota`."""

    type = "insufficient_quota"
    code = "insufficient_quota"


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    name: str
    limits: Limits

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass
class Settlement:
    """How a request ended, for its budgets and the ledger."""

    tier: str  # the tier that answered, "cache", or "none"
    model: str
    cache: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    cost_micro: int
    saved_cache_micro: int = 0
    saved_routing_micro: int = 0


@dataclass
class Ticket:
    """What admission granted one request; finished exactly once."""

    request_id: str
    principal: Principal
    scopes: list[Scope]
    prompt_estimate: int
    headers: dict[str, str] = field(default_factory=dict)
    budgets: list[tuple[Scope, str]] = field(default_factory=list)  # (scope, its budget key) reserved against
    unmetered: bool = False
    streamed: int = 0  # completion tokens seen
    flushed: int = 0  # of which added to tokens/min in Redis
    finished: bool = False


class Meter:
    def __init__(
        self, client: aioredis.Redis, prefix: str, config: TenancyConfig, lease_s: float, metrics: GatewayMetrics
    ) -> None:
        self._metrics = metrics
        self._redis = client
        self._prefix = prefix
        self._config = config
        self._lease_ms = int(lease_s * 1000)
        self._width_ms = config.window_s * 1000 // config.window_buckets
        self._admit = client.register_script(ADMIT)
        self._tokens = client.register_script(TOKENS)
        self._reserve = client.register_script(RESERVE)
        self._finish = client.register_script(FINISH)
        self._pending: deque[tuple[Ticket, Settlement]] = deque(maxlen=100_000)
        self._flusher: asyncio.Task[None] | None = None

    # -- keys ---------------------------------------------------------------------------------------------------
    def _k(self, scope: Scope, part: str) -> str:
        return f"{self._prefix}:{part}:{scope.kind}:{scope.name}"

    def budget_key(self, scope: Scope, now: datetime) -> str:
        assert scope.limits.budget_usd is not None
        period, _ = budget_period(scope.limits.budget_window, now)
        return f"{self._k(scope, 'budget')}:{period}"

    def scopes(self, principal: Principal) -> list[Scope]:
        found = []
        if not principal.limits.empty:
            found.append(Scope("key", principal.key_id, principal.limits))
        policy = self._config.policy(principal.tenant)
        if not policy.empty:  # a TenantPolicy is Limits (plus its fail mode): no copy on the request path
            found.append(Scope("tenant", principal.tenant, policy))
        return found

    # -- admission ----------------------------------------------------------------------------------------------
    async def admit(self, principal: Principal, request_id: str, prompt_estimate: int) -> Ticket:
        scopes = self.scopes(principal)
        ticket = Ticket(request_id, principal, scopes, prompt_estimate)
        limited = [s for s in scopes if s.limits.rpm or s.limits.tpm or s.limits.max_concurrent]
        if not limited:
            return ticket
        keys: list[str] = []
        args: list[str | int] = [
            request_id,
            prompt_estimate,
            self._lease_ms,
            self._width_ms,
            self._config.window_buckets,
        ]
        for scope in limited:
            keys += [self._k(scope, "rl") + ":req", self._k(scope, "rl") + ":tok", self._k(scope, "inflight")]
            args += [scope.limits.rpm or 0, scope.limits.tpm or 0, scope.limits.max_concurrent or 0]
        try:
            reply = await self._admit(keys=keys, args=args)
        except RedisError as error:
            return self._unreachable(ticket, error)
        if int(reply[0]) == 0:
            scope = limited[int(reply[1])]
            self._metrics.refusals.labels(scope.kind, _text(reply[2])).inc()
            refusal = self._refusal(scope, _text(reply[2]), int(reply[3]), prompt_estimate)
            refusal.headers |= _rate_headers([scope], reply[5:9])
            raise refusal
        ticket.headers |= _rate_headers(limited, reply[2:])
        return ticket

    def _refusal(self, scope: Scope, reason: str, retry_ms: int, prompt: int) -> RateLimited:
        limits = scope.limits
        retry_s = max(1, math.ceil(retry_ms / 1000))
        if reason == "requests":
            message = f"Rate limit reached for {scope.label}: {limits.rpm} requests per minute."
        elif reason == "tokens":
            message = f"Rate limit reached for {scope.label}: {limits.tpm} tokens per minute."
        elif reason == "request_too_large":
            message = (
                f"Request too large for {scope.label}: about {prompt} prompt tokens, "
                f"above its limit of {limits.tpm} tokens per minute."
            )
        else:
            message = f"Too many requests in flight for {scope.label}: at most {limits.max_concurrent} at once."
        error = RateLimited(f"{message} Retry after {retry_s} s.", code="rate_limit_exceeded")
        error.headers = {"retry-after": str(retry_s)}
        return error

    def _unreachable(self, ticket: Ticket, error: Exception) -> Ticket:
        if self._config.fails_open(ticket.principal.tenant):
            logger.warning("limits unavailable (%s); serving %s unmetered", error, ticket.principal.tenant)
            ticket.unmetered = True
            ticket.headers["x-tierserve-metering"] = "unmetered"
            return ticket
        refusal = RateLimited(
            "Limits and budgets cannot be checked right now and this tenant fails closed; retry shortly.",
            code="rate_limit_exceeded",
        )
        refusal.headers = {"retry-after": "1"}
        raise refusal

    # -- budgets ------------------------------------------------------------------------------------------------
    async def reserve(self, ticket: Ticket, amount_micro: int) -> None:
        """Hold the request's worst-case cost against every budget over it, or refuse it (429 insufficient_quota)."""
        budgeted = [s for s in ticket.scopes if s.limits.budget_usd is not None]
        if not budgeted or ticket.unmetered:
            return
        now = datetime.now(UTC)
        keys = [self.budget_key(scope, now) for scope in budgeted]
        args: list[str | int] = [ticket.request_id, self._lease_ms, 86_400_000 * 33]
        for scope in budgeted:
            args += [to_micro(scope.limits.budget_usd or 0.0), amount_micro]
        try:
            reply = await self._reserve(keys=keys, args=args)
        except RedisError as error:
            self._unreachable(ticket, error)
            return
        if int(reply[0]) == 0:
            scope = budgeted[int(reply[1])]
            spent, held = int(reply[2]), int(reply[3])
            self._metrics.refusals.labels(scope.kind, "budget").inc()
            self._budget_seen(scope, spent + held)
            _, ends = budget_period(scope.limits.budget_window, now)
            retry_s = max(1, int((ends - now).total_seconds()))
            budget = (
                f"{_ADJECTIVE[scope.limits.budget_window]} budget of {scope.label} (${scope.limits.budget_usd:.2f})"
            )
            exhausted = QuotaExceeded(
                f"The {budget} is spent: ${to_usd(spent):.6f} settled and ${to_usd(held):.6f} held by requests "
                f"in flight; this request could cost up to ${to_usd(amount_micro):.6f}. "
                f"It resets at {ends:%Y-%m-%d %H:%M} UTC.",
                code="insufficient_quota",
            )
            exhausted.headers = {"retry-after": str(retry_s)}
            raise exhausted
        ticket.budgets = list(zip(budgeted, keys, strict=True))
        for scope, total in zip(budgeted, reply[2:], strict=True):
            self._budget_seen(scope, int(total))

    def _budget_seen(self, scope: Scope, used_micro: int) -> None:
        ratio = used_micro / max(1, to_micro(scope.limits.budget_usd or 0.0))
        self._metrics.budget_used.labels(scope.kind, scope.name).set(ratio)
        self._metrics.budget_soft.labels(scope.kind, scope.name).set(1 if ratio >= self._config.soft_limit else 0)

    # -- streaming tokens ---------------------------------------------------------------------------------------
    def _token_windows(self, ticket: Ticket) -> list[str]:
        return [self._k(s, "rl") + ":tok" for s in ticket.scopes if s.limits.tpm]

    async def streamed(self, ticket: Ticket, tokens: int) -> None:
        """Completion tokens as they stream: added to tokens/min every `completion_flush_tokens`."""
        ticket.streamed += tokens
        windows = self._token_windows(ticket)
        if not windows or ticket.unmetered or ticket.streamed - ticket.flushed < self._config.completion_flush_tokens:
            return
        delta, ticket.flushed = ticket.streamed - ticket.flushed, ticket.streamed
        try:
            await self._tokens(keys=windows, args=[delta, self._width_ms, self._config.window_buckets])
        except RedisError:
            ticket.flushed -= delta  # counted again at the finish

    # -- the end ------------------------------------------------------------------------------------------------
    async def finish(self, ticket: Ticket, settlement: Settlement) -> None:
        """Free the slot, settle the budgets at the real cost, correct tokens/min, write the ledger: once."""
        if ticket.finished:
            return
        ticket.finished = True
        if ticket.unmetered:
            self._defer(ticket, settlement)
            return
        try:
            await self._settle(ticket, settlement)
        except RedisError as error:
            logger.warning("settlement of %s deferred: %s", ticket.request_id, error)
            self._defer(ticket, settlement)

    async def _settle(self, ticket: Ticket, settlement: Settlement) -> None:
        inflight = [self._k(s, "inflight") for s in ticket.scopes if s.limits.max_concurrent]
        budgets = [key for _, key in ticket.budgets]
        if ticket.unmetered:  # served while Redis was down: the budgets of the period it was served in
            budgets = [self.budget_key(s, datetime.now(UTC)) for s in ticket.scopes if s.limits.budget_usd is not None]
        windows = self._token_windows(ticket)
        counted = ticket.flushed + (0 if ticket.unmetered else ticket.prompt_estimate)
        correction = settlement.prompt_tokens + settlement.completion_tokens - counted
        keys = [*inflight, *budgets, *windows, f"{self._prefix}:ledger", f"{self._prefix}:settled:{ticket.request_id}"]
        entry: dict[str, str | int] = {
            "request_id": ticket.request_id,
            "tenant": ticket.principal.tenant,
            "key_id": ticket.principal.key_id,
            "model": settlement.model,
            "tier": settlement.tier,
            "cache": settlement.cache,
            "status": settlement.status,
            "prompt_tokens": settlement.prompt_tokens,
            "completion_tokens": settlement.completion_tokens,
            "cost_micro": settlement.cost_micro,
            "saved_cache_micro": settlement.saved_cache_micro,
            "saved_routing_micro": settlement.saved_routing_micro,
            "metered": int(not ticket.unmetered),
        }
        args: list[str | int] = [
            ticket.request_id,
            self._width_ms,
            self._config.window_buckets,
            len(inflight),
            len(budgets),
            len(windows),
            self._config.ledger_max_entries,
            self._lease_ms * 2,
            *([settlement.cost_micro] * len(budgets)),
            *([correction] * len(windows)),
        ]
        for name, value in entry.items():
            args += [name, value]
        await self._finish(keys=keys, args=args)

    def _defer(self, ticket: Ticket, settlement: Settlement) -> None:
        self._pending.append((ticket, settlement))
        self._metrics.unmetered.set(len(self._pending))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Write the deferred settlements once Redis answers again (tried every second)."""
        while self._pending:
            ticket, settlement = self._pending[0]
            try:
                await self._settle(ticket, settlement)
            except RedisError:
                await asyncio.sleep(1.0)
                continue
            self._pending.popleft()
            self._metrics.unmetered.set(len(self._pending))

    @property
    def deferred(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rate_headers(limited: list[Scope], values: list[object]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers from the most constrained scope of each kind; `values` holds four per scope:
    requests used, requests reset ms, tokens used, tokens reset ms."""
    best: dict[str, tuple[float, int, int]] = {}
    for i, scope in enumerate(limited):
        used_requests, reset_requests = float(_text(values[4 * i])), int(values[4 * i + 1])  # type: ignore[call-overload]
        used_tokens, reset_tokens = float(_text(values[4 * i + 2])), int(values[4 * i + 3])  # type: ignore[call-overload]
        for kind, limit, used, reset in (
            ("requests", scope.limits.rpm, used_requests, reset_requests),
            ("tokens", scope.limits.tpm, used_tokens, reset_tokens),
        ):
            if limit is None:
                continue
            remaining = max(0.0, limit - used)
            if kind not in best or remaining < best[kind][0]:
                best[kind] = (remaining, limit, reset)
    headers = {}
    for kind, (remaining, limit, reset) in best.items():
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(int(remaining))
        headers[f"x-ratelimit-reset-{kind}"] = openai_duration(reset)
    return headers
