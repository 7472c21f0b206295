"""Builds OpenAI response bodies and SSE chunks for chat and text completions, live or replayed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, Literal

from serving.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Completion,
    CompletionChoice,
    Usage,
    dump,
)

Endpoint = Literal["chat", "completion"]

DONE = "data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class ResponseFormatter:
    """One per request: the id, model name and creation time shared by every chunk of the answer."""

    def __init__(self, endpoint: Endpoint, request_id: str, model: str) -> None:
        self.endpoint = endpoint
        self.response_id = f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-{request_id}"
        self.model = model
        self.created = int(time.time())

    def opening(self) -> list[str]:
        """Chunks sent before any content: chat streams announce the assistant role first."""
        if self.endpoint == "chat":
            return [sse(self._chat_chunk(ChatDelta(role="assistant", content="")))]
        return []

    def content(self, text: str) -> str:
        if self.endpoint == "chat":
            return sse(self._chat_chunk(ChatDelta(content=text)))
        return sse(self._completion_chunk(text, None))

    def closing(self, finish_reason: str, prompt_tokens: int, completion_tokens: int, include_usage: bool) -> list[str]:
        if self.endpoint == "chat":
            chunks = [sse(self._chat_chunk(ChatDelta(), finish_reason))]
        else:
            chunks = [sse(self._completion_chunk("", finish_reason))]
        if include_usage:
            chunks.append(sse(self._usage_chunk(usage(prompt_tokens, completion_tokens))))
        chunks.append(DONE)
        return chunks

    def replay(
        self,
        pieces: Iterable[str],
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        include_usage: bool,
    ) -> list[str]:
        """A stored answer as the same sequence of chunks a live stream produces."""
        return [
            *self.opening(),
            *(self.content(piece) for piece in pieces if piece),
            *self.closing(finish_reason, prompt_tokens, completion_tokens, include_usage),
        ]

    def restamp(self, document: str) -> dict[str, Any]:
        """A stored response (or chunk) of the engine's, as this request's: its id and creation time."""
        data: dict[str, Any] = json.loads(document)
        data["id"] = self.response_id
        data["created"] = self.created
        return data

    def replay_chunks(
        self, stored: list[str], prompt_tokens: int, completion_tokens: int, include_usage: bool
    ) -> list[str]:
        """A stored stream, chunk for chunk as the engine wrote it, then the usage chunk if asked and [DONE]."""
        chunks = [sse(self.restamp(chunk)) for chunk in stored]
        if include_usage:
            chunks.append(sse(self._usage_chunk(usage(prompt_tokens, completion_tokens))))
        chunks.append(DONE)
        return chunks

    def full(self, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        counts = usage(prompt_tokens, completion_tokens)
        if self.endpoint == "chat":
            return dump(
                ChatCompletion(
                    id=self.response_id,
                    created=self.created,
                    model=self.model,
                    choices=[ChatChoice(message=AssistantMessage(content=text), finish_reason=finish_reason)],
                    usage=counts,
                )
            )
        return dump(
            Completion(
                id=self.response_id,
                created=self.created,
                model=self.model,
                choices=[CompletionChoice(text=text, finish_reason=finish_reason)],
                usage=counts,
            )
        )

    def _chat_chunk(self, delta: ChatDelta, finish_reason: str | None = None) -> dict[str, Any]:
        chunk = ChatCompletionChunk(
            id=self.response_id,
            created=self.created,
            model=self.model,
            choices=[ChatChunkChoice(delta=delta, finish_reason=finish_reason)],
        )
        return chunk.model_dump(mode="json", exclude={"usage"}, exclude_none=False)

    def _completion_chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        chunk = Completion(
            id=self.response_id,
            created=self.created,
            model=self.model,
            choices=[CompletionChoice(text=text, finish_reason=finish_reason)],
        )
        return chunk.model_dump(mode="json", exclude={"usage"})

    def _usage_chunk(self, counts: Usage) -> dict[str, Any]:
        if self.endpoint == "chat":
            return dump(
                ChatCompletionChunk(
                    id=self.response_id, created=self.created, model=self.model, choices=[], usage=counts
                )
            )
        return dump(Completion(id=self.response_id, created=self.created, model=self.model, choices=[], usage=counts))
