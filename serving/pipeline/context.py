"""What one request carries through the stages: the job, its trace and timing, the response headers so far, and
what each stage decided (the cache's verdict, the route, the live call)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from cache import CachedAnswer, Outcome, namespace_key
from router import Decision, Overrides
from serving.contract import TierEvent
from serving.jobs import Job
from serving.metrics import GatewayMetrics
from serving.tenancy import Principal, Ticket
from serving.tenancy.pricing import Charge
from serving.tracing import RequestTrace

logger = logging.getLogger(__name__)

OPEN = Principal(tenant="default", key_id="open")


@dataclass
class Reply:
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    stream: AsyncIterator[str] | None = None
    raw_body: str | None = None  # a JSON document written elsewhere (the tier), passed on unparsed


class EmptyAnswer(Exception):
    """The tier stopped at max_tokens without producing any text."""


# Identical misses in flight: (tenant, namespace, query) -> the leader's answer (single-flight).
Flights = dict[tuple[str, str, str], asyncio.Future[CachedAnswer | None]]


@dataclass
class CacheVisit:
    """What the cache said about one request."""

    outcome: Outcome
    namespace: str | None = None
    vector: Any = None
    answer: CachedAnswer | None = None  # a hit, or the answer of the identical generation we waited for
    similarity: float | None = None
    bypass_reason: str | None = None  # why the cache was not consulted (x-tierserve-cache-bypass)
    flight_key: tuple[str, str, str] | None = None
    flight: asyncio.Future[CachedAnswer | None] | None = None  # set when this request leads the generation

    @property
    def storable(self) -> bool:
        return self.outcome is Outcome.MISS and self.namespace is not None

    def land(self, flights: Flights) -> None:
        """This request led the generation of its question and will not store an answer: the requests waiting on
        it stop waiting (they generate for themselves) and the question can have a new leader."""
        if self.flight is None:
            return
        if not self.flight.done():
            self.flight.set_result(None)
        if self.flight_key is not None:
            flights.pop(self.flight_key, None)
        self.flight = None


def job_namespace(job: Job, alias: str, model_versions: Mapping[str, str]) -> str:
    """The cache namespace of `job` asked of `alias`: everything that must match exactly for an answer to serve."""
    return namespace_key(
        tenant=job.tenant,
        model_alias=alias,
        model_version=model_versions[alias],
        endpoint=job.endpoint,
        context=job.context,
        params=job.params,
    )


@dataclass
class LiveCall:
    """One generation in flight on a tier."""

    tier: str
    events: AsyncIterator[TierEvent]
    deadline: float  # event-loop time
    span: trace.Span | None = None  # the `generate` stage, ended with the call
    first_token_deadline: float | None = None  # until the first text (or the end); cleared once it came
    # Events already read and counted (while deciding whether to retry or escalate), handed out again first.
    replay: deque[TierEvent] = field(default_factory=deque)


@dataclass
class GuardRecord:
    """What the guards saw in one request (its audit record and headers say it)."""

    verdict: str = "off"  # the input guard's: pass | flag | block | route | off
    score: float | None = None  # the highest injection score of its user and tool messages
    input_pii: list[str] = field(default_factory=list)  # PII kinds found in the prompt
    output: list[str] = field(default_factory=list)  # kinds found in the answer (PII, secrets, leakage)
    output_action: str | None = None  # what the output guard did about them: flag | redact | block
    system_prompts: list[str] = field(default_factory=list)  # what an answer must not repeat
    route_tier: str | None = None  # the tier a flagged prompt goes to (action route)
    prompt_text: str | None = None  # the redacted prompt, kept for the audit record where the policy says
    answer_text: str | None = None  # the answer as it left, likewise
    fingerprint: str | None = None  # the input screening's detectors, when they screened this request


@dataclass
class RequestContext:
    job: Job
    trace: RequestTrace
    metrics: GatewayMetrics
    started: float = field(default_factory=time.perf_counter)
    ttft: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    overrides: Overrides = field(default_factory=Overrides)
    visit: CacheVisit = field(default_factory=lambda: CacheVisit(Outcome.BYPASS))
    decision: Decision | None = None
    tier: str | None = None
    call: LiveCall | None = None
    first: TierEvent | None = None  # the tier's first event (read with those up to its first token before any header)
    escalated_from: str | None = None
    reply: Reply | None = None
    principal: Principal = OPEN
    ticket: Ticket | None = None  # what the limits stage granted (finished by its closer)
    # How it ended: the HTTP status (499: the client went away), and for an answer its tier, tokens and charge.
    status: int = 499
    answered_by: str | None = None
    usage: tuple[int, int] | None = None  # (prompt tokens, completion tokens) of the answer
    charge: Charge | None = None
    answer: CachedAnswer | None = None  # what was answered (live or replayed), for the audit record
    # The exact-repeat stage's finding, for the cache stage after the guards: None (not looked up: the cache stage
    # looks), or what Redis held for the identical request (None inside: nothing).
    exact: tuple[CachedAnswer | None] | None = None
    error: str | None = None  # the error code of a refused or failed request
    prompt_version: str | None = None  # the versioned system prompt it was served with (name@version)
    guard: GuardRecord = field(default_factory=GuardRecord)
    embedded: dict[str, Any] = field(default_factory=dict)  # text -> its embedding, computed once per request
    timings: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds spent in it (summed)
    streamed_tokens: int = 0
    on_tokens: Callable[[int], Awaitable[None]] | None = None
    closers: list[Callable[[RequestContext], Awaitable[None]]] = field(default_factory=list)

    @property
    def cache_label(self) -> str:
        """The cache outcome as metrics label it: a live answer was a miss (it will be stored) or a bypass."""
        return "miss" if self.visit.storable else "bypass"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """One timed step: a child span of the request and the stage histogram."""
        start = time.perf_counter()
        try:
            with self.trace.stage(name), self.metrics.stage.labels(name).time():
                yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - start) * 1e3

    async def tokens(self, count: int) -> None:
        """Completion tokens as they stream (one a delta; corrected from the tier's usage at the end)."""
        self.streamed_tokens += count
        if self.on_tokens is not None:
            await self.on_tokens(count)

    async def close(self) -> None:
        """Whatever way the request ended, once: the closers run (settle budgets, free limits, ledger). A closer's
        failure is logged, never the request's: the answer has been made, or the error given, already."""
        closers, self.closers = self.closers, []
        for closer in closers:
            try:
                await closer(self)
            except Exception:
                logger.exception("closing request %s failed", self.job.request_id)
