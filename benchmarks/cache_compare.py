"""Side by side on the same embeddings: tierserve's SemanticCache (real Redis), GPTCache (sqlite + hnswlib) and a
plain exact-match Redis cache, for `benchmarks.cache_bench`. GPTCache is imported only here and only if installed."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.cache_parts import DEFAULTS, DIM, Lookup, atimed, timed
from cache.config import CacheConfig, RedisConfig
from cache.embedder import Embedder, Vector


def side_by_side(
    embedder: Embedder, redis_url: str, stored: list[str], lookups: list[Lookup], seed: int, budget_s: float
) -> dict[str, Any]:
    """The same stored questions and lookups through three caches. Vectors are embedded once and given to each
    cache (lookup = the cache's own work), then the semantic caches are timed again embedding each lookup
    themselves (batch 1)."""
    vectors = embedder.embed(stored)
    query_vectors = embedder.embed([text for text, _, _ in lookups])
    threshold = DEFAULTS.similarity_threshold
    out: dict[str, Any] = {"stored": len(stored), "lookups": len(lookups), "similarity_threshold": threshold}
    out["tierserve"] = _tierserve(embedder, redis_url, stored, lookups, vectors, query_vectors, seed, budget_s)
    out["exact_redis"] = _exact(redis_url, stored, lookups, seed, budget_s)
    try:
        out["gptcache"] = _gptcache(embedder, stored, lookups, vectors, query_vectors, threshold, budget_s)
    except ImportError as error:
        out["gptcache"] = {"error": f"gptcache not importable: {error}"}
    return out


def _score(answers: list[str | None], lookups: list[Lookup]) -> dict[str, int]:
    """Hits, hits that returned the answer of the question meant, and hits by kind of lookup."""
    counts = {"hits": 0, "correct_hits": 0, "repeat_hits": 0, "paraphrase_hits": 0}
    for answer, (_, target, paraphrase) in zip(answers, lookups, strict=False):
        if answer is None:
            continue
        counts["hits"] += 1
        counts["correct_hits"] += answer == f"answer-{target}"
        counts["paraphrase_hits" if paraphrase else "repeat_hits"] += 1
    return counts


def _tierserve(
    embedder: Embedder,
    redis_url: str,
    stored: list[str],
    lookups: list[Lookup],
    vectors: NDArray[np.float32],
    query_vectors: NDArray[np.float32],
    seed: int,
    budget_s: float,
) -> dict[str, Any]:
    from cache.semantic import Outcome, SemanticCache
    from cache.store import CachedAnswer, CacheStore

    async def measure() -> dict[str, Any]:
        config = CacheConfig(redis=RedisConfig(key_prefix=f"cachebench{seed}sbs"))
        cache = SemanticCache(config, embedder, CacheStore(config.redis, redis_url))
        try:
            for i, (text, vector) in enumerate(zip(stored, vectors, strict=True)):
                answer = CachedAnswer(
                    pieces=[f"answer-{i}"], finish_reason="stop", prompt_tokens=10, completion_tokens=1, tier="small"
                )
                await cache.store("t", "ns", text, vector, answer)
            await cache.lookup("t", "ns", query_vectors[0], lookups[0][0])  # builds the index from Redis once
            answers: list[str | None] = []

            async def given(i: int) -> None:
                found = await cache.lookup("t", "ns", query_vectors[i], lookups[i][0])
                if len(answers) < len(lookups):
                    answers.append(found.answer.text if found.outcome is Outcome.HIT and found.answer else None)

            lookup = await atimed(given, len(lookups), budget_s, warmup=0)

            async def live(i: int) -> None:
                text = lookups[i % len(lookups)][0]
                await cache.lookup("t", "ns", cache.embed(text), text)

            with_embedding = await atimed(live, len(lookups), budget_s, warmup=0)
            return {"lookup": lookup, "lookup_with_embedding": with_embedding, **_score(answers, lookups)}
        finally:
            await cache.close()

    return asyncio.run(measure())


def _exact(redis_url: str, stored: list[str], lookups: list[Lookup], seed: int, budget_s: float) -> dict[str, Any]:
    import redis.asyncio as aioredis

    def key(text: str) -> str:
        return f"cachebench{seed}exact:" + hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()

    async def measure() -> dict[str, Any]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            for i, text in enumerate(stored):
                await client.set(key(text), f"answer-{i}", ex=600)
            answers: list[str | None] = []

            async def call(i: int) -> None:
                raw = await client.get(key(lookups[i][0]))
                answers.append(raw.decode() if isinstance(raw, bytes) else raw)

            lookup = await atimed(call, len(lookups), budget_s, warmup=0)
            return {"lookup": lookup, **_score(answers, lookups)}
        finally:
            await client.aclose()

    return asyncio.run(measure())


def _gptcache(
    embedder: Embedder,
    stored: list[str],
    lookups: list[Lookup],
    vectors: NDArray[np.float32],
    query_vectors: NDArray[np.float32],
    threshold: float,
    budget_s: float,
) -> dict[str, Any]:
    """GPTCache 0.1.x: sqlite scalar store + hnswlib vector store (its own L2 index), search-distance evaluation.
    For unit vectors hnswlib's L2 is 2 - 2 cos, so cosine >= t is distance <= 2 - 2t, i.e. GPTCache's
    normalised threshold 1 - (2 - 2t) / max_distance."""
    from importlib.metadata import version

    from gptcache import Cache, Config
    from gptcache.adapter.api import get, put
    from gptcache.manager import CacheBase, VectorBase, get_data_manager
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation

    known = {text: vectors[i] for i, text in enumerate(stored)}
    known |= {text: query_vectors[i] for i, (text, _, _) in enumerate(lookups)}
    mode = {"live": False}

    def embed(text: str, **_: Any) -> Vector:
        vector: Vector = embedder.embed([text])[0] if mode["live"] else known[text]
        return vector

    folder = Path(tempfile.mkdtemp(prefix="cachebench-gptcache-"))
    max_distance = 4.0
    data_manager = get_data_manager(
        CacheBase("sqlite", sql_url=f"sqlite:///{folder}/scalar.db"),
        VectorBase("hnswlib", dimension=DIM, index_path=str(folder / "index.bin"), max_elements=10_000, top_k=4),
        max_size=10_000,
    )
    # GPTCache 0.1.44 passes hnswlib's numpy uint64 ids to SQLAlchemy, whose sqlite query then never matches:
    # every lookup misses. The shim hands it Python ints (no other change to its code path).
    vector_search = data_manager.v.search
    data_manager.v.search = lambda data, top_k=-1: [(float(d), int(i)) for d, i in vector_search(data, top_k)]
    cache = Cache()
    cache.init(
        pre_embedding_func=get_prompt,
        embedding_func=embed,
        data_manager=data_manager,
        similarity_evaluation=SearchDistanceEvaluation(max_distance=max_distance),
        config=Config(similarity_threshold=1 - (2 - 2 * threshold) / max_distance),
    )
    try:
        started = time.perf_counter()
        for i, text in enumerate(stored):
            put(text, f"answer-{i}", cache_obj=cache)
        store_s = time.perf_counter() - started
        answers: list[str | None] = []

        def given(i: int) -> None:
            answers.append(get(lookups[i][0], cache_obj=cache))

        lookup = timed(given, len(lookups), budget_s, warmup=0)
        mode["live"] = True
        with_embedding = timed(lambda i: get(lookups[i][0], cache_obj=cache), len(lookups), budget_s, warmup=0)
        return {
            "version": version("gptcache"),
            "shim": "vector ids converted to int (else 0 hits with SQLAlchemy 2.1)",
            "store_s": round(store_s, 2),
            "lookup": lookup,
            "lookup_with_embedding": with_embedding,
            **_score(answers, lookups),
        }
    finally:
        with suppress(Exception):
            data_manager.close()
        data_manager.close = lambda: None  # its atexit hook would write the index into the removed folder
        shutil.rmtree(folder, ignore_errors=True)
