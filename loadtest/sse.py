"""Reading an OpenAI-style SSE stream line by line, as clients do (shared by the benchmark and the Locust user)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

_DONE = "[DONE]"


def _payload(line: str) -> str | None:
    """The data of a `data:` line; None for any other line (blank separators, comments)."""
    return line[5:].strip() if line.startswith("data:") else None


def sse_chunks(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON chunks of a stream, up to `data: [DONE]`."""
    for line in lines:
        data = _payload(line)
        if data == _DONE:
            return
        if data is not None:
            yield json.loads(data)


async def asse_chunks(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    """`sse_chunks` for an async line iterator (httpx.AsyncClient)."""
    async for line in lines:
        data = _payload(line)
        if data == _DONE:
            return
        if data is not None:
            yield json.loads(data)


def has_content(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries answer text (the first such chunk is the time to first token)."""
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or [])
