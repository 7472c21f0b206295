"""The cache as several gateway replicas share it: eviction, expiry, the event stream, operations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cache import CacheConfig, CachedAnswer, CacheStore, Outcome, SemanticCache, namespace_key
from cache.config import RedisConfig
from tests.fakes import HashingEmbedder

NS = namespace_key(tenant="alpha", model_alias="small", endpoint="chat", context=(), params={})


def answer(text: str = "Paris.") -> CachedAnswer:
    return CachedAnswer(pieces=[text], finish_reason="stop", prompt_tokens=5, completion_tokens=2, tier="small")


CacheFactory = Callable[..., SemanticCache]


@pytest.fixture
async def make_cache(redis_url: str, key_prefix: str) -> AsyncIterator[CacheFactory]:
    made: list[SemanticCache] = []

    def factory(**policy: Any) -> SemanticCache:
        redis_config = RedisConfig(
            key_prefix=key_prefix, retry_after_s=0.05, socket_timeout_s=2.0, connect_timeout_s=2.0
        )
        cache = SemanticCache(
            CacheConfig(redis=redis_config, **policy), HashingEmbedder(), CacheStore(redis_config, redis_url)
        )
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.close()


async def store(cache: SemanticCache, text: str, tenant: str = "alpha", model: str = "small") -> None:
    assert await cache.store(tenant, NS, text, cache.embed(text), answer(text), model=model)


async def outcome(cache: SemanticCache, text: str, tenant: str = "alpha") -> Outcome:
    return (await cache.lookup(tenant, NS, cache.embed(text), text)).outcome


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_least_recently_used_entry_is_evicted_beyond_the_limit(make_cache: CacheFactory) -> None:
    cache = make_cache(max_entries_per_tenant=2)
    await store(cache, "first question about cats")
    await store(cache, "second question about dogs")
    assert await outcome(cache, "first question about cats") is Outcome.HIT  # now the most recently used
    await store(cache, "third question about birds")
    assert await outcome(cache, "second question about dogs") is Outcome.MISS
    assert await outcome(cache, "first question about cats") is Outcome.HIT
    assert await outcome(cache, "third question about birds") is Outcome.HIT
    assert cache.entries("alpha") == 2
    assert cache.counters["evicted"] == 1


async def test_replicas_follow_each_others_inserts_and_deletes(make_cache: CacheFactory) -> None:
    writer, reader = make_cache(), make_cache()
    await reader.rebuild()
    reader.start()
    await store(writer, "how do I rotate my api key")
    assert await eventually(lambda: reader.entries("alpha") == 1)
    assert await outcome(reader, "how do I rotate my api key") is Outcome.HIT
    assert await writer.invalidate(tenant="alpha") == 1
    assert await eventually(lambda: reader.entries("alpha") == 0)
    assert await outcome(reader, "how do I rotate my api key") is Outcome.MISS


async def test_expired_entries_are_swept_from_every_index(make_cache: CacheFactory) -> None:
    writer, reader = make_cache(ttl_s=1, sweep_interval_s=0.2), make_cache(ttl_s=1)
    await reader.rebuild()
    reader.start()
    await store(writer, "what are the opening hours")
    assert await eventually(lambda: reader.entries("alpha") == 1)
    await asyncio.sleep(1.1)
    writer.start()  # its follower sweeps expired entries and announces them
    assert await eventually(lambda: reader.entries("alpha") == 0 and writer.entries("alpha") == 0)


async def test_invalidate_by_model_keeps_other_models(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await store(cache, "question for the small model", model="small")
    await store(cache, "question for the auto alias", model="auto")
    assert await cache.invalidate(model="small") == 1
    assert await outcome(cache, "question for the small model") is Outcome.MISS
    assert await outcome(cache, "question for the auto alias") is Outcome.HIT


async def test_stats_and_export(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await store(cache, "alpha question", tenant="alpha")
    await store(cache, "beta question", tenant="beta")
    await outcome(cache, "alpha question", tenant="alpha")
    stats = await cache.stats()
    assert stats["tenants"] == {"alpha": {"stored": 1, "indexed_here": 1}, "beta": {"stored": 1, "indexed_here": 1}}
    assert stats["counters"]["hit"] == 1  # type: ignore[index]
    exported = [entry async for entry in cache.export("beta")]
    assert [(e.tenant, e.query, e.answer.text) for e in exported] == [("beta", "beta question", "beta question")]


class RejectNumbers:
    def compatible(self, query: str, candidate: str) -> tuple[bool, str | None]:
        digits = [c for c in query if c.isdigit()] == [c for c in candidate if c.isdigit()]
        return digits, None if digits else "number"


async def test_verifier_vetoes_a_similar_candidate(redis_url: str, key_prefix: str) -> None:
    config = RedisConfig(key_prefix=key_prefix)
    # Digits are words to the hashing embedder, so "48213" and "48231" share no word: use a threshold
    # low enough that the two questions count as similar, and let the verifier decide.
    cache = SemanticCache(
        CacheConfig(redis=config, similarity_threshold=0.5),
        HashingEmbedder(),
        CacheStore(config, redis_url),
        RejectNumbers(),
    )
    await store(cache, "where is my order 48213 today")
    rejected = await cache.lookup(
        "alpha", NS, cache.embed("where is my order 48231 today"), "where is my order 48231 today"
    )
    assert rejected.outcome is Outcome.MISS and rejected.rejected == "number"
    assert await outcome(cache, "where is my order 48213 today") is Outcome.HIT
    await cache.close()
