"""The semantic cache on its real parts: sentence-transformers embeddings, hnswlib, a real Redis server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from cache import CacheConfig, CachedAnswer, CacheStore, Outcome, SemanticCache, SentenceTransformerEmbedder
from cache.config import RedisConfig
from cache.keys import namespace_key
from serving.redis_server import LocalRedis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def answer(text: str) -> CachedAnswer:
    return CachedAnswer(pieces=[text], finish_reason="stop", prompt_tokens=10, completion_tokens=3, tier="small")


def namespace(tenant: str) -> str:
    return namespace_key(tenant=tenant, model_alias="auto", endpoint="chat", context=(), params={"temperature": 0})


def make_cache(embedder: SentenceTransformerEmbedder, url: str, prefix: str, **policy: object) -> SemanticCache:
    config = CacheConfig(
        redis=RedisConfig(key_prefix=prefix, retry_after_s=0.05, socket_timeout_s=2.0, connect_timeout_s=2.0), **policy
    )  # type: ignore[arg-type]
    return SemanticCache(config, embedder, CacheStore(config.redis, url))


@pytest.fixture
def persistent_redis(tmp_path: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    server = LocalRedis(data_dir=tmp_path, persist=True).start()  # type: ignore[arg-type]
    yield server
    server.stop()


def test_embed_equals_sentence_transformers_encode(embedder: SentenceTransformerEmbedder) -> None:
    """The lean path (preprocess + forward) gives encode()'s vectors: mixed lengths, past 256 word pieces, >64 rows."""
    texts = [f"question {i}: " + "how do I rotate the signing key " * (i % 7) for i in range(70)]
    texts.append("word " * 600)  # truncated at the model's 256 word pieces by both paths
    model = embedder._model  # noqa: SLF001 - the reference is sentence-transformers' own encode()
    expected = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    got = embedder.embed(texts)
    assert got.shape == (71, embedder.dimension)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-4
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_embeddings_are_normalised_and_meaningful(embedder: SentenceTransformerEmbedder) -> None:
    vectors = embedder.embed(["How do I reset my password?", "How can I reset my password?", "Best pizza in Rome"])
    assert vectors.shape == (3, embedder.dimension) == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert float(vectors[0] @ vectors[1]) > 0.9 > float(vectors[0] @ vectors[2])


async def test_paraphrase_hits_and_other_questions_miss(
    embedder: SentenceTransformerEmbedder, redis_url: str, key_prefix: str
) -> None:
    cache = make_cache(embedder, redis_url, key_prefix, similarity_threshold=0.9)
    stored = "How do I reset my password?"
    assert await cache.store("alpha", namespace("alpha"), stored, cache.embed(stored), answer("Use the link."))
    paraphrase = await cache.lookup("alpha", namespace("alpha"), cache.embed("How can I reset my password?"))
    assert paraphrase.outcome is Outcome.HIT and paraphrase.answer is not None
    assert paraphrase.answer.text == "Use the link."
    other = await cache.lookup("alpha", namespace("alpha"), cache.embed("What is the capital of Peru?"))
    assert other.outcome is Outcome.MISS
    await cache.close()


async def test_no_cross_tenant_hits(embedder: SentenceTransformerEmbedder, redis_url: str, key_prefix: str) -> None:
    cache = make_cache(embedder, redis_url, key_prefix)
    text = "What are your opening hours?"
    await cache.store("alpha", namespace("alpha"), text, cache.embed(text), answer("9 to 5"))
    for tenant_namespace in (namespace("beta"), namespace("alpha")):  # beta's own key, and alpha's key
        result = await cache.lookup("beta", tenant_namespace, cache.embed(text))
        assert result.outcome is Outcome.MISS
    await cache.close()


async def test_restart_rebuilds_index_from_redis(
    embedder: SentenceTransformerEmbedder, redis_url: str, key_prefix: str
) -> None:
    text = "Which plan includes priority support?"
    first = make_cache(embedder, redis_url, key_prefix)
    await first.store("alpha", namespace("alpha"), text, first.embed(text), answer("The Pro plan."))
    await first.close()
    restarted = make_cache(embedder, redis_url, key_prefix)  # a new replica: empty index, same Redis
    result = await restarted.lookup("alpha", namespace("alpha"), restarted.embed(text))
    assert result.outcome is Outcome.HIT
    await restarted.close()


async def test_redis_outage_bypasses_then_resumes(
    embedder: SentenceTransformerEmbedder, persistent_redis: LocalRedis, key_prefix: str
) -> None:
    cache = make_cache(embedder, persistent_redis.url, key_prefix)
    text = "How long does shipping take?"
    await cache.store("alpha", namespace("alpha"), text, cache.embed(text), answer("Two days."))
    persistent_redis.stop()
    during = await cache.lookup("alpha", namespace("alpha"), cache.embed(text))
    assert during.outcome is Outcome.BYPASS
    assert not await cache.store("alpha", namespace("alpha"), "x", cache.embed("x"), answer("y"))
    persistent_redis.start()  # same port, same append-only file
    await asyncio.sleep(0.1)  # past retry_after_s
    after = await cache.lookup("alpha", namespace("alpha"), cache.embed(text))
    assert after.outcome is Outcome.HIT and after.answer is not None and after.answer.text == "Two days."
    await cache.close()
