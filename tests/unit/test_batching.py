"""Concurrent embedding requests are coalesced into batches, each caller getting its own vector."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from cache.batching import EmbeddingBatcher
from tests.fakes import HashingEmbedder


async def test_concurrent_requests_share_one_batch() -> None:
    embedder = HashingEmbedder()
    batcher = EmbeddingBatcher(embedder, max_batch=64)
    texts = [f"question number {i}" for i in range(20)]
    vectors = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert batcher.batches == 1
    for text, vector in zip(texts, vectors, strict=True):
        assert np.array_equal(vector, embedder.embed([text])[0])


async def test_batches_are_capped() -> None:
    batcher = EmbeddingBatcher(HashingEmbedder(), max_batch=8)
    await asyncio.gather(*(batcher.embed(f"q {i}") for i in range(20)))
    assert batcher.batches == 3


async def test_a_failing_embedder_fails_only_that_batch() -> None:
    class Flaky(HashingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            if any("boom" in t for t in texts):
                raise RuntimeError("embedder failed")
            return super().embed(texts)

    batcher = EmbeddingBatcher(Flaky(), max_batch=4)
    with pytest.raises(RuntimeError):
        await batcher.embed("boom")
    assert (await batcher.embed("fine")).shape == (384,)
