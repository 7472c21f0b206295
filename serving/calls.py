"""What one request carries through the gateway's flow: its accounting and trace, the cache's verdict,
and the generation in flight on a tier."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from cache import CachedAnswer, Outcome
from serving.contract import TierEvent
from serving.jobs import Job
from serving.tracing import RequestTrace


async def replay_then(buffered: list[TierEvent], rest: AsyncIterator[TierEvent]) -> AsyncIterator[TierEvent]:
    """Events already read (while deciding whether to escalate), then the rest of the tier's stream."""
    try:
        for event in buffered:
            yield event
        async for event in rest:
            yield event
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()


@dataclass
class Reply:
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    stream: AsyncIterator[str] | None = None
    raw_body: str | None = None  # a JSON document written elsewhere (the tier), passed on unparsed


@dataclass
class Accounting:
    trace: RequestTrace
    started: float = field(default_factory=time.perf_counter)
    ttft: float | None = None


class EmptyAnswer(Exception):
    """The tier stopped at max_tokens without producing any text."""


@dataclass
class CacheVisit:
    """What the cache said about one request."""

    outcome: Outcome
    namespace: str | None = None
    vector: Any = None
    answer: CachedAnswer | None = None  # a hit, or the answer of the identical generation we waited for
    similarity: float | None = None
    flight_key: tuple[str, str, str] | None = None
    bypass_reason: str | None = None  # why the cache was not consulted (x-tierserve-cache-bypass)
    flight: asyncio.Future[CachedAnswer | None] | None = None  # set when this request leads the generation


@dataclass
class LiveCall:
    """One generation in flight on a tier."""

    job: Job
    tier: str
    events: AsyncIterator[TierEvent]
    store: tuple[str, Any] | None  # (namespace, vector) when the answer should be cached
    acct: Accounting
    deadline: float  # event-loop time

    @property
    def cache_label(self) -> str:
        return "miss" if self.store is not None else "bypass"

    flight: asyncio.Future[CachedAnswer | None] | None = None  # followers waiting for this answer
    on_close: Callable[[], object] | None = None
    span: trace.Span | None = None  # the `generate` stage, ended with the call

    def land(self, answer: CachedAnswer) -> None:
        if self.flight is not None and not self.flight.done():
            self.flight.set_result(answer)

    async def close(self, error: str | None = None) -> None:
        if self.span is not None:
            if error is not None:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, error))
            self.span.end()
            self.span = None
        # Followers of a failed or abandoned generation stop waiting and generate themselves.
        if self.flight is not None and not self.flight.done():
            self.flight.set_result(None)
        if self.on_close is not None:
            self.on_close()
            self.on_close = None
        # Closing the tier's stream cancels the generation on the replica (vLLM aborts it).
        close = getattr(self.events, "aclose", None)
        if close is not None:
            await close()
