"""The shadow stage: once a request has been answered by a smaller tier, or from the cache, a configured share of
them is asked again of the largest tier, off the request path, and the two answers are compared (cosine of their
sentence embeddings; token F1 without an embedder). Agreement becomes metrics (the router's quality regret per
tier, the share of cached answers the largest tier would still give) and a drift signal.

The user never waits for it: the sample is taken in the request's closer, after the answer has left; a bounded
queue and its own concurrency budget hold the extra work, and a sample waits while the largest tier is busy with
user requests (dropped, counted, when that lasts past its budget)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from drift import DriftDetector
from serving.config import AUTO_MODEL, ShadowConfig
from serving.contract import TierFailed, TierFinished, TierRequest
from serving.jobs import Job
from serving.metrics import GatewayMetrics
from serving.pipeline.context import RequestContext
from serving.pipeline.dispatch import TierClient

logger = logging.getLogger(__name__)

Embed = Callable[[str], Awaitable[Any]]
# Fields a shadow answer must not carry: it is one whole text answer (the first choice is what gets compared).
_DROPPED = ("stream_options", "n", "best_of", "logprobs", "top_logprobs", "echo", "prompt_logprobs")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class ShadowSample:
    job: Job
    answer: str  # the text the user got
    source: str  # routed (model=auto), pinned (a smaller tier asked by name), cache (a hit)
    tier: str  # the tier that made the answer
    queued: float  # event-loop time it was taken


def shadow_body(body: bytes, max_tokens: int) -> bytes:
    """The request as the largest tier is asked it: whole (not streamed), one choice, at most `max_tokens`."""
    data = json.loads(body)
    data["stream"] = False
    for name in _DROPPED:
        data.pop(name, None)
    field = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    asked = data.get(field)
    data[field] = min(int(asked), max_tokens) if isinstance(asked, int) and asked > 0 else max_tokens
    return json.dumps(data).encode()


def token_f1(a: str, b: str) -> float:
    """SQuAD's token F1 over lower-cased words: the comparison when no embedder is loaded."""
    left, right = _WORD.findall(a.lower()), _WORD.findall(b.lower())
    if not left or not right:
        return float(left == right)
    common = sum(min(left.count(word), right.count(word)) for word in set(left))
    if not common:
        return 0.0
    precision, recall = common / len(right), common / len(left)
    return 2 * precision * recall / (precision + recall)


class ShadowScorer:
    """The queue and workers that ask the largest tier and score the agreement (one per gateway replica)."""

    def __init__(
        self,
        config: ShadowConfig,
        target: str,
        client: TierClient,
        metrics: GatewayMetrics,
        *,
        embed: Embed | None,
        busy: Callable[[], bool],
        cost_usd: Callable[[int, int], float],
        salted: bool,
        drift: DriftDetector | None = None,
        preemptible: bool = False,
    ) -> None:
        self._config = config
        self.target = target
        self._client = client
        self._metrics = metrics
        self._embed = embed
        self._busy = busy
        self._preemptible = preemptible  # stop a shadow generation as soon as users need the room
        self._cost_usd = cost_usd
        self._salted = salted
        self.drift = drift  # shadow agreement as drift signals (shadow_routed, shadow_pinned, shadow_cache)
        self._queue: asyncio.Queue[ShadowSample] = asyncio.Queue(maxsize=max(1, config.max_queue))
        self._workers: list[asyncio.Task[None]] = []

    def _count(self, sample: ShadowSample, outcome: str) -> None:
        self._metrics.shadow_requests.labels(sample.source, sample.tier, outcome).inc()

    def offer(self, sample: ShadowSample) -> None:
        """Queue a sample, never waiting: a full queue drops it (counted as queue_full)."""
        if not sample.answer.strip():
            self._count(sample, "skipped")  # a tool call or an empty answer: no text to compare
            return
        if self._config.max_queue == 0 or self._queue.full():
            self._count(sample, "queue_full")
            return
        if not self._workers:
            self._workers = [asyncio.create_task(self._work()) for _ in range(self._config.max_concurrent)]
        self._queue.put_nowait(sample)

    async def drain(self) -> None:
        """Until every queued sample has been scored or dropped (tests, benchmarks)."""
        await self._queue.join()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _work(self) -> None:
        while True:
            sample = await self._queue.get()
            try:
                await self._score(sample)
            except Exception:
                logger.exception("shadow scoring of request %s failed", sample.job.request_id)
                self._count(sample, "failed")
            finally:
                self._queue.task_done()

    async def _score(self, sample: ShadowSample) -> None:
        loop = asyncio.get_running_loop()
        deadline = sample.queued + self._config.timeout_s
        finished: TierFinished | None = None
        preempted = False
        while finished is None:
            while self._busy():  # users come first: wait for room
                if loop.time() >= deadline:
                    self._count(sample, "busy")
                    return
                await asyncio.sleep(0.25)
            outcome = await self._generate_unless_busy(sample, deadline)
            if outcome == "preempted":
                self._metrics.shadow_preemptions.inc()
                preempted = True
                continue  # the engine stopped it; it waits for room again, within its deadline
            if not isinstance(outcome, TierFinished):
                # Out of time after yielding to users: as busy as never getting the room at all.
                self._count(sample, "busy" if outcome == "timeout" and preempted else "failed")
                return
            finished = outcome
        self._metrics.shadow_cost.inc(self._cost_usd(finished.prompt_tokens, finished.completion_tokens))
        similarity = await self._similarity(sample.answer, finished.text)
        self._count(sample, "scored")
        self._metrics.shadow_similarity.labels(sample.source, sample.tier).observe(similarity)
        if similarity >= self._config.agreement:
            self._metrics.shadow_agreements.labels(sample.source, sample.tier).inc()
        if self.drift is not None:
            self.drift.observe(None, {f"shadow_{sample.source}": similarity})
            for name, state in self.drift.states.items():
                self._metrics.drift_score.labels(name).set(state.score)
                self._metrics.drift_alarm.labels(name).set(float(state.alarm))

    async def _generate_unless_busy(self, sample: ShadowSample, deadline: float) -> TierFinished | str | None:
        """The shadow answer, or "preempted" when users needed the room meanwhile (in `idle` mode the shadow
        yields at once: closing its stream aborts it in vLLM), "timeout" past the sample's deadline, or None when
        the tier failed it."""
        self._metrics.shadow_inflight.inc()
        generation = asyncio.ensure_future(self._generate(sample))
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    done, _ = await asyncio.wait({generation}, timeout=0.05)
                    if done:
                        return generation.result()
                    if self._preemptible and self._busy():
                        return "preempted"
        except TimeoutError:
            return "timeout"
        finally:
            if not generation.done():
                generation.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await generation
            self._metrics.shadow_inflight.dec()

    async def _generate(self, sample: ShadowSample) -> TierFinished | None:
        job = sample.job
        request = TierRequest(
            endpoint=job.endpoint,
            body=shadow_body(job.body, self._config.max_tokens),
            request_id=f"{job.request_id}-shadow",
            cache_salt=job.tenant if self._salted else None,
        )
        events = self._client.generate(request)
        try:
            async for event in events:
                if isinstance(event, TierFailed):
                    logger.info("shadow of %s refused by %s: %s", job.request_id, self.target, event.message)
                    return None
                if isinstance(event, TierFinished):
                    return event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        return None

    async def _similarity(self, answer: str, shadow: str) -> float:
        if self._embed is None or not shadow.strip():
            return token_f1(answer, shadow)
        left, right = await asyncio.gather(self._embed(answer.strip()), self._embed(shadow.strip()))
        return max(0.0, min(1.0, float(left @ right)))


class Shadow:
    name = "shadow"

    def __init__(self, config: ShadowConfig, scorer: ShadowScorer, rng: random.Random | None = None) -> None:
        self._config = config
        self._scorer = scorer
        self._rng = rng or random.Random()

    async def run(self, ctx: RequestContext) -> None:
        tenant = ctx.job.tenant
        if self._config.share_for(tenant, cached=False) > 0 or self._config.share_for(tenant, cached=True) > 0:
            ctx.closers.append(self._sample)

    async def _sample(self, ctx: RequestContext) -> None:
        answer = ctx.answer
        if ctx.status != 200 or answer is None or ctx.answered_by is None:
            return
        cached = ctx.answered_by == "cache"
        if not cached and ctx.answered_by == self._scorer.target:
            return  # the largest tier answered: nothing to compare it with
        share = self._config.share_for(ctx.job.tenant, cached)
        if share <= 0 or self._rng.random() >= share:
            return
        source = "cache" if cached else ("routed" if ctx.job.model == AUTO_MODEL else "pinned")
        tier = answer.tier or ctx.answered_by
        queued = asyncio.get_running_loop().time()
        self._scorer.offer(ShadowSample(ctx.job, answer.text, source, tier, queued))
