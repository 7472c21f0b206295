"""The SSE line reader shared by the benchmark (async) and the Locust user (sync)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from loadtest.sse import asse_chunks, has_content, sse_chunks

LINES = [
    ": keep-alive comment",
    'data: {"choices": [{"delta": {"role": "assistant"}}]}',
    "",
    'data: {"choices": [{"delta": {"content": "Hi"}}]}',
    "",
    'data: {"choices": [], "usage": {"completion_tokens": 1}}',
    "data: [DONE]",
    'data: {"choices": [{"delta": {"content": "after the end"}}]}',
]


def test_chunks_stop_at_done_and_skip_other_lines() -> None:
    chunks = list(sse_chunks(LINES))
    assert [has_content(c) for c in chunks] == [False, True, False]
    assert chunks[2]["usage"] == {"completion_tokens": 1}


async def test_async_reader_yields_the_same_chunks() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in LINES:
            yield line

    assert [chunk async for chunk in asse_chunks(lines())] == list(sse_chunks(LINES))
