"""cache: namespace keys, the hnswlib index, and the semantic cache over a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from cache import CacheConfig, CachedAnswer, CacheStore, Outcome, SemanticCache, namespace_key
from cache.config import RedisConfig
from cache.errors import CacheUnavailable
from cache.index import VectorIndex
from cache.store import CacheEntry
from serving.redis_server import LocalRedis
from tests.fakes import HashingEmbedder

DIM = 384
QUESTION = "What is the capital of France?"
ANSWER = CachedAnswer(
    pieces=["Paris", " is", " the capital."],
    finish_reason="stop",
    prompt_tokens=9,
    completion_tokens=3,
    tier="small",
)

# ---------------------------------------------------------------------------------------------- keys

BASE: dict[str, Any] = {
    "tenant": "alpha",
    "model_alias": "auto",
    "endpoint": "chat",
    "context": (("system", "Be terse."),),
    "params": {"temperature": 0.0, "max_tokens": 64, "stop": []},
}


def key(**overrides: Any) -> str:
    return namespace_key(**{**BASE, **overrides})


def test_namespace_key_is_stable_hex() -> None:
    assert key() == key()
    assert len(key()) == 64 and int(key(), 16) >= 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"tenant": "beta"},
        {"model_alias": "small"},
        {"endpoint": "completion"},
        {"context": ()},
        {"context": (("system", "Be verbose."),)},
        {"context": (("system", "Be terse."), ("user", "earlier question"), ("assistant", "earlier answer"))},
        {"params": {"temperature": 0.2, "max_tokens": 64, "stop": []}},
        {"params": {"temperature": 0.0, "max_tokens": 65, "stop": []}},
        {"params": {"temperature": 0.0, "max_tokens": 64, "stop": ["\n"]}},
        {"params": {"temperature": 0.0, "max_tokens": 64, "stop": [], "seed": 1}},
    ],
)
def test_namespace_key_changes_with_every_exact_part(overrides: dict[str, Any]) -> None:
    assert key(**overrides) != key()


def test_namespace_key_ignores_param_order_but_not_turn_order() -> None:
    assert key(params={"stop": [], "max_tokens": 64, "temperature": 0.0}) == key()
    turns = (("user", "a"), ("assistant", "b"))
    assert key(context=turns) != key(context=tuple(reversed(turns)))


# --------------------------------------------------------------------------------------------- index


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, seed: int, noise: float = 0.05) -> np.ndarray:
    moved = vector + noise * unit(seed, vector.shape[0])
    return (moved / np.linalg.norm(moved)).astype(np.float32)


def index(capacity: int = 64) -> VectorIndex:
    return VectorIndex(DIM, capacity=capacity, m=16, ef_construction=100, ef_search=32)


def test_index_add_search_delete() -> None:
    idx = index()
    vectors = {f"e{i}": unit(i) for i in range(10)}
    for entry_id, vector in vectors.items():
        idx.add(entry_id, "ns", vector)
    assert len(idx) == 10 and "e3" in idx

    found = idx.search(vectors["e3"], "ns", 3)
    assert found[0].entry_id == "e3"
    assert found[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert len(found) == 3 and found[1].similarity < found[0].similarity

    idx.delete("e3")
    assert "e3" not in idx and len(idx) == 9
    assert all(n.entry_id != "e3" for n in idx.search(vectors["e3"], "ns", 9))
    assert len(idx.search(vectors["e3"], "ns", 100)) == 9
    idx.delete("e3")  # deleting twice is harmless
    idx.delete("never-added")
    assert len(idx) == 9


def test_index_add_is_idempotent_per_entry() -> None:
    idx = index()
    idx.add("same", "ns", unit(1))
    idx.add("same", "ns", unit(2))
    assert len(idx) == 1
    assert idx.search(unit(1), "ns", 5)[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_index_filters_namespaces_inside_the_search() -> None:
    idx = index(capacity=256)
    query = unit(0)
    for i in range(100):  # a crowd of very close vectors in another namespace
        idx.add(f"crowd-{i}", "other", near(query, 1000 + i, noise=0.01))
    far = unit(7)
    idx.add("mine", "mine", far)

    found = idx.search(query, "mine", 4)
    assert [n.entry_id for n in found] == ["mine"]
    assert found[0].similarity < 0.5  # far from the query, yet the only candidate of its namespace
    assert all(n.entry_id.startswith("crowd-") for n in idx.search(query, "other", 4))
    assert idx.search(query, "nobody", 4) == []


def test_index_k_larger_than_namespace() -> None:
    idx = index()
    idx.add("a", "small-ns", unit(1))
    idx.add("b", "small-ns", unit(2))
    for i in range(20):
        idx.add(f"x{i}", "big-ns", unit(100 + i))
    found = idx.search(unit(1), "small-ns", 10)
    assert sorted(n.entry_id for n in found) == ["a", "b"]
    idx.delete("a")
    idx.delete("b")
    assert idx.search(unit(1), "small-ns", 10) == []


def test_index_grows_beyond_capacity() -> None:
    idx = index(capacity=4)
    vectors = [unit(i) for i in range(50)]
    for i, vector in enumerate(vectors):
        idx.add(f"e{i}", "ns", vector)
    assert len(idx) == 50
    for i in (0, 4, 5, 33, 49):
        assert idx.search(vectors[i], "ns", 1)[0].entry_id == f"e{i}"


def test_index_reuses_deleted_slots() -> None:
    idx = index(capacity=16)
    for i in range(16):
        idx.add(f"old{i}", "ns", unit(i))
    for i in range(16):
        idx.delete(f"old{i}")
    for i in range(16):
        idx.add(f"new{i}", "ns", unit(200 + i))
    assert len(idx) == 16
    assert {n.entry_id for n in idx.search(unit(205), "ns", 16)} == {f"new{i}" for i in range(16)}


def test_entry_vector_round_trip() -> None:
    vector = unit(3)
    entry = CacheEntry(
        entry_id="e",
        tenant="t",
        namespace="n",
        query="q",
        vector_b64=CacheEntry.encode_vector(vector),
        answer=ANSWER,
    )
    restored = CacheEntry.model_validate_json(entry.model_dump_json())
    assert restored.vector().dtype == np.float32
    np.testing.assert_array_equal(restored.vector(), vector)
    assert restored.answer.text == "Paris is the capital."


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder()
    rows = embedder.embed([QUESTION, "what is the CAPITAL of france", "Bake sourdough bread at home", ""])
    assert rows.shape == (4, DIM) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert float(rows[0] @ rows[1]) == pytest.approx(1.0, abs=1e-6)
    assert float(rows[0] @ rows[2]) < 0.3
    np.testing.assert_array_equal(embedder.embed([QUESTION])[0], rows[0])


# ------------------------------------------------------------------------------------ semantic cache

CacheFactory = Callable[..., SemanticCache]
# A loaded CI machine can stall a live Redis past the production timeout (0.25 s); the tests about an
# unreachable Redis get "connection refused" at once, so a patient timeout costs them nothing.
PATIENT: dict[str, float] = {"socket_timeout_s": 2.0, "connect_timeout_s": 2.0}


@pytest.fixture
async def make_cache(redis_url: str, key_prefix: str) -> AsyncIterator[CacheFactory]:
    made: list[SemanticCache] = []

    def factory(
        url: str | None = None, prefix: str | None = None, retry_after_s: float = 1.0, **policy: Any
    ) -> SemanticCache:
        redis_config = RedisConfig(key_prefix=prefix or key_prefix, retry_after_s=retry_after_s, **PATIENT)
        config = CacheConfig(redis=redis_config, **policy)
        cache = SemanticCache(config, HashingEmbedder(), CacheStore(redis_config, url or redis_url))
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        await cache.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


NS = key()


async def test_store_then_lookup_hits(make_cache: CacheFactory) -> None:
    cache = make_cache()
    vector = cache.embed(QUESTION)
    first = await cache.lookup("alpha", NS, vector)
    assert first.outcome is Outcome.MISS and first.answer is None
    assert first.vector is vector

    assert await cache.store("alpha", NS, QUESTION, vector, ANSWER) is True
    assert cache.entries("alpha") == 1

    hit = await cache.lookup("alpha", NS, cache.embed(QUESTION))
    assert hit.outcome is Outcome.HIT
    assert hit.answer == ANSWER and hit.answer.text == "Paris is the capital."
    assert hit.similarity == pytest.approx(1.0, abs=1e-5)
    # Same words, other case and punctuation: identical bag of words, still a hit.
    assert (await cache.lookup("alpha", NS, cache.embed("what is the capital of france"))).outcome is Outcome.HIT


async def test_unrelated_question_misses(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.store("alpha", NS, QUESTION, cache.embed(QUESTION), ANSWER)
    lookup = await cache.lookup("alpha", NS, cache.embed("How do I bake sourdough bread?"))
    assert lookup.outcome is Outcome.MISS and lookup.answer is None


async def test_other_namespace_and_other_tenant_miss(make_cache: CacheFactory) -> None:
    cache = make_cache()
    vector = cache.embed(QUESTION)
    await cache.store("alpha", NS, QUESTION, vector, ANSWER)
    assert (await cache.lookup("alpha", key(model_alias="large"), vector)).outcome is Outcome.MISS
    assert (await cache.lookup("alpha", key(context=()), vector)).outcome is Outcome.MISS
    # Even with the very same namespace string, another tenant never sees alpha's answer.
    assert (await cache.lookup("beta", NS, vector)).outcome is Outcome.MISS
    assert cache.entries("beta") == 0
    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.HIT


async def test_threshold_decides(make_cache: CacheFactory) -> None:
    cache = make_cache(similarity_threshold=0.99)
    await cache.store("alpha", NS, QUESTION, cache.embed(QUESTION), ANSWER)
    similar = cache.embed("What is the capital of France today?")  # one extra word
    assert 0.8 < float(similar @ cache.embed(QUESTION)) < 0.99
    assert (await cache.lookup("alpha", NS, similar)).outcome is Outcome.MISS
    lenient = make_cache(similarity_threshold=0.8)
    assert (await lenient.lookup("alpha", NS, similar)).outcome is Outcome.HIT


async def test_truncated_answers_are_not_stored_when_disallowed(make_cache: CacheFactory) -> None:
    cache = make_cache(store_truncated=False)
    vector = cache.embed(QUESTION)
    truncated = ANSWER.model_copy(update={"finish_reason": "length"})
    assert await cache.store("alpha", NS, QUESTION, vector, truncated) is False
    assert (
        await cache.store("alpha", NS, QUESTION, vector, ANSWER.model_copy(update={"finish_reason": "abort"})) is False
    )
    assert cache.entries("alpha") == 0
    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.MISS


async def test_truncated_answers_are_stored_by_default(make_cache: CacheFactory) -> None:
    cache = make_cache()
    vector = cache.embed(QUESTION)
    truncated = ANSWER.model_copy(update={"finish_reason": "length"})
    assert await cache.store("alpha", NS, QUESTION, vector, truncated) is True
    hit = await cache.lookup("alpha", NS, vector)
    assert hit.outcome is Outcome.HIT and hit.answer is not None and hit.answer.finish_reason == "length"


async def test_rebuild_from_redis_after_a_restart(make_cache: CacheFactory) -> None:
    before = make_cache()
    vector = before.embed(QUESTION)
    await before.store("alpha", NS, QUESTION, vector, ANSWER)
    await before.store("beta", NS, QUESTION, vector, ANSWER.model_copy(update={"tier": "large"}))

    restarted = make_cache()  # same key prefix, fresh process state
    assert restarted.entries("alpha") == 0
    assert await restarted.rebuild() == 2
    assert restarted.entries("alpha") == 1 and restarted.entries("beta") == 1
    hit = await restarted.lookup("beta", NS, restarted.embed(QUESTION))
    assert hit.outcome is Outcome.HIT and hit.answer is not None and hit.answer.tier == "large"


async def test_first_lookup_builds_the_index_by_itself(make_cache: CacheFactory) -> None:
    await make_cache().store("alpha", NS, QUESTION, HashingEmbedder().embed([QUESTION])[0], ANSWER)
    fresh = make_cache()
    assert (await fresh.lookup("alpha", NS, fresh.embed(QUESTION))).outcome is Outcome.HIT
    # A cache under another key prefix shares the Redis but none of the entries.
    other = make_cache(prefix="someone-else-entirely")
    assert (await other.lookup("alpha", NS, other.embed(QUESTION))).outcome is Outcome.MISS


async def test_entry_deleted_in_redis_is_a_miss_and_leaves_the_index(
    make_cache: CacheFactory, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    cache = make_cache()
    vector = cache.embed(QUESTION)
    await cache.store("alpha", NS, QUESTION, vector, ANSWER)
    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.HIT
    keys = await redis_client.keys(f"{key_prefix}:entry:alpha:*")
    assert len(keys) == 1
    await redis_client.delete(*keys)

    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.MISS
    assert cache.entries("alpha") == 0


async def test_expired_entry_is_a_miss(make_cache: CacheFactory, redis_client: aioredis.Redis, key_prefix: str) -> None:
    cache = make_cache(ttl_s=3600)
    vector = cache.embed(QUESTION)
    await cache.store("alpha", NS, QUESTION, vector, ANSWER)
    (entry_key,) = await redis_client.keys(f"{key_prefix}:entry:alpha:*")
    assert 0 < await redis_client.ttl(entry_key) <= 3600  # stored with the configured TTL
    await redis_client.pexpire(entry_key, 1)
    for _ in range(500):
        if not await redis_client.exists(entry_key):
            break
        await asyncio.sleep(0.01)
    assert not await redis_client.exists(entry_key)

    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.MISS
    assert cache.entries("alpha") == 0


@pytest.mark.parametrize("raw", [b"{not json", b'{"entry_id": 1}'])
async def test_unreadable_record_in_redis_is_skipped(
    make_cache: CacheFactory, redis_client: aioredis.Redis, key_prefix: str, raw: bytes
) -> None:
    writer = make_cache()
    vector = writer.embed(QUESTION)
    await writer.store("alpha", NS, QUESTION, vector, ANSWER)
    await redis_client.set(f"{key_prefix}:entry:alpha:garbage", raw)

    fresh = make_cache()  # rebuilds its index from Redis, garbage included
    lookup = await fresh.lookup("alpha", NS, vector)
    assert lookup.outcome is Outcome.HIT  # the good entry is still served


async def test_record_from_another_embedding_model_is_skipped(
    make_cache: CacheFactory, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    other_model = HashingEmbedder(dimension=128).embed([QUESTION])[0]
    entry = CacheEntry(
        entry_id="old-model",
        tenant="alpha",
        namespace=NS,
        query=QUESTION,
        vector_b64=CacheEntry.encode_vector(other_model),
        answer=ANSWER,
    )
    await redis_client.set(f"{key_prefix}:entry:alpha:old-model", entry.model_dump_json())
    cache = make_cache()
    lookup = await cache.lookup("alpha", NS, cache.embed(QUESTION))
    assert lookup.outcome in (Outcome.MISS, Outcome.BYPASS)


async def _until_available(cache: SemanticCache) -> None:
    for _ in range(1000):
        if cache.available():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cache never left its bypass window")


async def test_redis_unreachable_bypasses_then_recovers(make_cache: CacheFactory) -> None:
    server = LocalRedis()
    server.start()
    port, url = server.port, server.url
    server.stop()  # nothing listens on this port any more

    cache = make_cache(url=url, retry_after_s=0.05)
    vector = cache.embed(QUESTION)
    lookup = await cache.lookup("alpha", NS, vector)
    assert lookup.outcome is Outcome.BYPASS and lookup.vector is vector
    assert cache.available() is False
    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.BYPASS  # inside the window: no retry
    assert await cache.store("alpha", NS, QUESTION, vector, ANSWER) is False

    await _until_available(cache)
    assert await cache.store("alpha", NS, QUESTION, vector, ANSWER) is False  # tried again, still down
    assert cache.available() is False

    with LocalRedis(port=port):
        await _until_available(cache)
        assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.MISS
        assert await cache.store("alpha", NS, QUESTION, vector, ANSWER) is True
        hit = await cache.lookup("alpha", NS, vector)
        assert hit.outcome is Outcome.HIT and hit.answer == ANSWER


async def test_redis_restart_forgets_entries_it_lost(make_cache: CacheFactory) -> None:
    with LocalRedis() as server:
        port = server.port
        cache = make_cache(url=server.url, retry_after_s=0.05)
        vector = cache.embed(QUESTION)
        assert await cache.store("alpha", NS, QUESTION, vector, ANSWER) is True
        assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.HIT
    # Redis (without persistence) is gone: the cache bypasses instead of failing.
    assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.BYPASS
    await _until_available(cache)
    with LocalRedis(port=port):
        # The restarted Redis is empty; the index is rebuilt from it, so the old entry is gone.
        assert (await cache.lookup("alpha", NS, vector)).outcome is Outcome.MISS
        assert cache.entries("alpha") == 0


async def test_store_raises_cache_unavailable_only_inside_the_package(redis_url: str, key_prefix: str) -> None:
    server = LocalRedis()
    server.start()
    url = server.url
    server.stop()
    store = CacheStore(RedisConfig(key_prefix=key_prefix), url)
    try:
        with pytest.raises(CacheUnavailable):
            await store.ping()
        with pytest.raises(CacheUnavailable):
            await store.get_many("alpha", ["x"])
        with pytest.raises(CacheUnavailable):
            async for _ in store.entries("alpha"):
                pass
    finally:
        await store.close()
    live = CacheStore(RedisConfig(key_prefix=key_prefix), redis_url)
    try:
        await live.ping()
        assert await live.get_many("alpha", []) == []
        assert await live.get_many("alpha", ["missing"]) == [None]
    finally:
        await live.close()


def test_index_search_widens_its_beam_when_hnswlib_finds_too_few() -> None:
    # Measured at 1M entries: with a filter, hnswlib's beam (ef) can end with fewer than k vectors of a
    # rare namespace and raise. Reproduce that refusal for narrow beams and check the index widens the
    # beam for that query (and restores it) instead of failing the lookup.
    index = VectorIndex(DIM, capacity=64, m=16, ef_construction=64, ef_search=8)
    for i in range(40):
        index.add(f"e{i}", "rare" if i % 10 == 0 else "common", unit(500 + i))
    real = index._index
    beams: list[int] = []

    class NarrowBeamRefuses:
        ef = 8

        def set_ef(self, ef: int) -> None:
            self.ef = ef
            real.set_ef(ef)

        def knn_query(self, *args: Any, **kwargs: Any) -> Any:
            beams.append(self.ef)
            if self.ef < 64:
                raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")
            return real.knn_query(*args, **kwargs)

    index._index = NarrowBeamRefuses()  # type: ignore[assignment]
    found = index.search(unit(520), "rare", k=4)
    assert [n.entry_id for n in found][:1] == ["e20"] and len(found) == 4
    assert beams == [8, 32, 128]
    assert index._index.ef == 8  # restored
