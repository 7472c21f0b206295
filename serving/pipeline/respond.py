"""The respond stage: the answer leaves as vLLM's own response (a whole JSON body, or its stream chunks passed on
as they come), or as a replay of a cached one. When an answer is complete the answer stages run (cache store,
observe); a failure after the headers left is reported in-band, as vLLM's server does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from cache import CachedAnswer
from serving.contract import TierDelta, TierEvent, TierFinished, TierStarted
from serving.errors import ServingError, TierUnavailable
from serving.formatting import DONE, ResponseFormatter, sse
from serving.pipeline.context import Reply, RequestContext
from serving.pipeline.dispatch import Dispatch
from serving.pipeline.guard_output import OutputGuard
from serving.pipeline.observe import Observe


class AnswerStage(Protocol):
    """A stage that acts on a complete answer (store it, check it, record it)."""

    async def on_answer(self, ctx: RequestContext, answer: CachedAnswer) -> None: ...


def storable_chunk(chunk: str) -> list[str]:
    """A stream chunk as the cache keeps it: without usage (a replay writes its own), none for the usage chunk."""
    data = json.loads(chunk)
    if not data.get("choices"):
        return []
    if "usage" in data:
        del data["usage"]
        return [json.dumps(data, separators=(",", ":"), ensure_ascii=False)]
    return [chunk]


class Respond:
    name = "respond"

    def __init__(
        self,
        dispatch: Dispatch,
        answer_stages: Sequence[AnswerStage],
        observe: Observe,
        output_guard: OutputGuard | None = None,
    ) -> None:
        self._dispatch = dispatch
        # The output guard judges an answer before anything else acts on it (the cache keeps no answer it flagged).
        self._answer_stages = [output_guard, *answer_stages] if output_guard is not None else list(answer_stages)
        self._observe = observe
        self._guard = output_guard

    async def run(self, ctx: RequestContext) -> None:
        assert ctx.call is not None and ctx.first is not None  # dispatched
        replica = ctx.first.replica if isinstance(ctx.first, TierStarted) else None
        ctx.trace.set(tier=ctx.call.tier, escalated_from=ctx.escalated_from, replica=replica)
        if replica:
            ctx.headers["x-tierserve-replica"] = replica
        if ctx.job.stream:
            ctx.reply = Reply(ctx.headers, stream=self._stream(ctx))
            return
        try:
            ctx.reply = Reply(ctx.headers, raw_body=await self._whole(ctx))
        finally:
            await self._dispatch.finish(ctx)

    def replay(self, ctx: RequestContext, answer: CachedAnswer) -> Reply:
        """A cached answer: the engine's own response when it was stored in the mode asked for (exact), else
        rebuilt from its text. Written at once, so the request's work (and its trace) ends here."""
        job = ctx.job
        formatter = ResponseFormatter(job.endpoint, job.request_id, answer.tier)
        ctx.trace.set(answered_by=answer.tier)
        self._observe.answered(ctx, answer, tier="cache", cache="hit")
        if not job.stream:
            if answer.body is not None:
                return Reply(ctx.headers, body=formatter.restamp(answer.body))
            body = formatter.full(answer.text, answer.finish_reason, answer.prompt_tokens, answer.completion_tokens)
            return Reply(ctx.headers, body=body)
        counts = (answer.prompt_tokens, answer.completion_tokens)
        if answer.chunks is not None:
            chunks = formatter.replay_chunks(answer.chunks, *counts, job.include_usage)
        else:
            chunks = formatter.replay(answer.pieces, answer.finish_reason, *counts, job.include_usage)

        async def replay() -> AsyncIterator[str]:
            for chunk in chunks:
                yield chunk

        return Reply(ctx.headers, stream=replay())

    async def _answered(self, ctx: RequestContext, answer: CachedAnswer) -> None:
        for stage in self._answer_stages:
            await stage.on_answer(ctx, answer)
        self._observe.answered(ctx, answer, tier=answer.tier, cache=ctx.cache_label)

    def _answer(
        self, ctx: RequestContext, pieces: list[str], end: TierFinished, chunks: list[str] | None
    ) -> CachedAnswer:
        assert ctx.call is not None
        return CachedAnswer(
            pieces=pieces,
            finish_reason=end.finish_reason,
            prompt_tokens=end.prompt_tokens,
            completion_tokens=end.completion_tokens,
            tier=ctx.call.tier,
            chunks=chunks,
            body=end.body,
            request_id=ctx.job.request_id,
        )

    async def _whole(self, ctx: RequestContext) -> str:
        """A whole answer: vLLM's own response JSON, passed on as it is."""
        event: TierEvent | None = ctx.first
        while not isinstance(event, TierFinished):
            event = await self._dispatch.next_event(ctx)
        if event.body is None:
            raise TierUnavailable(f"tier '{ctx.tier}' streamed an answer that was asked for whole")
        body = self._guard.whole(ctx, event.body) if self._guard is not None else event.body
        await self._answered(ctx, self._answer(ctx, [event.text], event, None))
        return body

    async def _stream(self, ctx: RequestContext) -> AsyncIterator[str]:
        """vLLM's own chunks, passed on as they come. The chunks from the one that finishes the answer on are held
        until the answer is stored and counted: a client may hang up as soon as it reads the finish (the load
        test's users did), which would otherwise skip the store and the accounting."""
        pieces: list[str] = []
        held: list[str] = []
        keep = ctx.visit.storable or ctx.visit.flight is not None
        stored: list[str] | None = [] if keep else None
        failure: str | None = None
        screen = self._guard.stream_screen(ctx) if self._guard is not None else None
        try:
            event: TierEvent | None = ctx.first
            while not isinstance(event, TierFinished):
                if isinstance(event, TierDelta):
                    pieces.append(event.text)
                    if stored is not None:
                        stored += storable_chunk(event.data)
                    chunk = f"data: {screen.chunk(event.data) if screen is not None else event.data}\n\n"
                    if held or event.finishes:
                        held.append(chunk)
                    else:
                        yield chunk
                event = await self._dispatch.next_event(ctx)
            if self._guard is not None:
                self._guard.streamed(ctx, screen)
            await self._answered(ctx, self._answer(ctx, pieces, event, stored))
            for chunk in held:
                yield chunk
            yield DONE
        except ServingError as error:
            # The headers are gone already: report the error in-band, as vLLM's server does.
            self._observe.count_failure(ctx, error)
            ctx.trace.end(error.status, error.code or type(error).__name__)
            failure = type(error).__name__
            yield sse(error.body())
            yield DONE
        except Exception as error:
            failure = type(error).__name__
            ctx.trace.end(500, failure)
            raise
        finally:
            await self._dispatch.finish(ctx, failure)
            # Ended already unless the client went away mid-stream (499, nginx's "client closed request").
            ctx.trace.end(499, "client_closed")
