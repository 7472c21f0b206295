"""Measurements of the semantic cache's parts, for `benchmarks.cache_bench`: the floor of a hit (embedding, HNSW
search, Redis read, HTTP exchange), embedding throughput and the index at scale; plus the corpus they share."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from numpy.typing import NDArray

from benchmarks.measure import summary_ms
from cache.config import CacheConfig, RedisConfig
from cache.embedder import Embedder, Vector
from cache.index import VectorIndex
from cache.store import CachedAnswer, CacheEntry, CacheStore

logger = logging.getLogger(__name__)
DIM = 384
Lookup = tuple[str, int, bool]  # (text, index of the stored question meant, is a paraphrase)
DEFAULTS = CacheConfig()
_PAIRS = [Path("tests/data/cache_pairs_dev.jsonl"), Path("tests/data/cache_pairs_heldout.jsonl")]


def _split(text: str) -> list[str]:
    return text.split("|")


# Generated questions: templates x subjects x situations, so every sentence is distinct but topics cluster.
_TEMPLATES = _split(
    "How do I {} {}?|What is the best way to {} {}?|Can you explain how to {} {}?|Why can't I {} {}?|"
    "Is it possible to {} {}?|What happens if I {} {}?|Who can {} {}?|How long does it take to {} {}?|"
    "Where do I go to {} {}?|What do I need to {} {}?|Should I {} {}?|How much does it cost to {} {}?"
)
_ACTIONS = _split(
    "reset my password|update my billing address|cancel my subscription|export my data|enable 2FA|invite a teammate|"
    "change the account owner|download an invoice|delete a project|rotate an API key|upgrade my plan|"
    "restore a deleted file|connect a custom domain|set up single sign-on|merge accounts|transfer a license|"
    "change the time zone|configure webhooks|limit API usage|report a bug|request a refund|change my username|"
    "archive old messages|share a dashboard|set a spending cap"
)
_SITUATIONS = _split(
    "on the mobile app|from the web console|without admin rights|for the whole team|after a migration|on a free plan|"
    "using the CLI|while travelling abroad|in the EU region|for an old account|during a trial|with a shared login|"
    "from a new laptop|on a locked account|before the renewal date|through the REST API|as a guest user|in bulk|"
    "on Linux|on Windows|on macOS|behind a proxy|with SSO enforced|for a sub-account|in a sandbox|after the outage|"
    "with read-only access|from another country|for a child account|in the new UI|over a slow connection|"
    "on a tablet|with a VPN|on the weekend|for an enterprise workspace"
)


def generated_questions(n: int) -> list[str]:
    combos = [(t, a, s) for s in _SITUATIONS for a in _ACTIONS for t in _TEMPLATES]
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} generated questions")
    random.Random(7).shuffle(combos)
    return [t.format(a, s) for t, a, s in combos[:n]]


def paraphrase_pairs() -> list[tuple[str, str]]:
    """(stored question, paraphrase) pairs that mean the same, from the repository's labelled pairs."""
    rows = [json.loads(line) for path in _PAIRS for line in path.read_text().splitlines() if line.strip()]
    return [(row["a"], row["b"]) for row in rows if row["same"]]


def _within_budget(n: int, budget_s: float) -> Iterator[int]:
    """0 .. n-1, stopping early once budget_s has passed (the timing loops of `timed` and `atimed`)."""
    deadline = time.monotonic() + budget_s
    for i in range(n):
        if time.monotonic() > deadline:
            return
        yield i


def timed(call: Callable[[int], object], n: int, budget_s: float, warmup: int = 3) -> dict[str, float]:
    """p50/p99 of `call(i)` over n calls (fewer when budget_s runs out), after a few uncounted warm-up calls."""
    for i in range(warmup):
        call(i)
    samples: list[float] = []
    for i in _within_budget(n, budget_s):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return summary_ms(samples)


async def atimed(
    call: Callable[[int], Awaitable[object]], n: int, budget_s: float, warmup: int = 3
) -> dict[str, float]:
    """`timed` for a coroutine function (awaited in turn, never concurrently)."""
    for i in range(warmup):
        await call(i)
    samples: list[float] = []
    for i in _within_budget(n, budget_s):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return summary_ms(samples)


def rss() -> int:
    """Resident bytes of this process, after returning freed heap memory to the system (so that memory a
    previous measurement freed is not silently reused by the next one)."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(psutil.Process().memory_info().rss)


def new_index(capacity: int = DEFAULTS.index_capacity) -> VectorIndex:
    """A tenant index exactly as SemanticCache makes one (the default config)."""
    return VectorIndex(
        DIM,
        capacity=capacity,
        m=DEFAULTS.hnsw_m,
        ef_construction=DEFAULTS.hnsw_ef_construction,
        ef_search=DEFAULTS.hnsw_ef_search,
    )


def _unit(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    normed = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(normed, dtype=np.float32)


def near(vectors: NDArray[np.float32], sigma: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Each row plus gaussian noise, renormalised: cosine to the original ~ 1/sqrt(1 + 384 sigma^2)."""
    return _unit(vectors + rng.normal(0.0, sigma, vectors.shape).astype(np.float32))


def clustered(real: NDArray[np.float32], n: int, rng: np.random.Generator) -> NDArray[np.float32]:
    """n unit vectors: the real embeddings first, then synthetic neighbours of random real ones (cosine ~0.8-0.9
    to their seed: other questions about the same thing), generated in chunks to bound temporary memory."""
    out = np.empty((n, DIM), dtype=np.float32)
    head = min(n, len(real))
    out[:head] = real[:head]
    for start in range(head, n, 50_000):
        stop = min(n, start + 50_000)
        seeds = real[rng.integers(0, len(real), stop - start)]
        sigmas = rng.uniform(0.025, 0.04, (stop - start, 1)).astype(np.float32)
        out[start:stop] = _unit(seeds + sigmas * rng.standard_normal((stop - start, DIM), dtype=np.float32))
    return out


# ------------------------------------------------------------------------------------------- floor of a hit


_HTTP_APP = """
import sys, fastapi, uvicorn
app = fastapi.FastAPI()
ANSWER = {"id": "chatcmpl-x", "object": "chat.completion", "model": "small",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 400}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 90, "total_tokens": 102}}
@app.get("/health")
async def health() -> dict:
    return {"ok": True}
@app.post("/v1/chat/completions")
async def chat(body: dict) -> dict:
    return ANSWER
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def http_floor(n: int, budget_s: float, log_dir: Path) -> dict[str, Any]:
    """One HTTP exchange with a trivial FastAPI endpoint under plain uvicorn (its own process), httpx keep-alive."""
    import httpx

    from loadtest.processes import free_port, launch, stop, wait_healthy

    port = free_port()
    server = launch("trivial-uvicorn", [sys.executable, "-c", _HTTP_APP, str(port)], dict(os.environ), port, log_dir)
    try:
        wait_healthy(server, 60)
        body: dict[str, Any] = {"model": "small", "messages": [{"role": "user", "content": "Explain DNA replication."}]}
        body |= {"temperature": 0, "max_tokens": 96, "seed": 1}

        async def measure() -> dict[str, float]:
            async with httpx.AsyncClient(timeout=30) as client:

                async def call(_: int) -> None:
                    (await client.post(f"{server.url}/v1/chat/completions", json=body)).raise_for_status()

                return await atimed(call, n, budget_s, warmup=20)

        return asyncio.run(measure()) | {"orphans_killed": []}
    finally:
        orphans = stop(server, timeout_s=20)
        if orphans:
            raise RuntimeError(f"trivial uvicorn left processes behind: {orphans}")


def floor_entry(vector: Vector) -> CacheEntry:
    """What the floor's Redis read reads: a realistic cached answer (90 tokens), tenant "t", entry id "floor"."""
    pieces = [f" token{i}" for i in range(90)]
    answer = CachedAnswer(pieces=pieces, finish_reason="stop", prompt_tokens=12, completion_tokens=90, tier="small")
    return CacheEntry(
        entry_id="floor",
        tenant="t",
        namespace="ns",
        query="Explain DNA replication in one sentence.",
        vector_b64=CacheEntry.encode_vector(vector),
        answer=answer,
    )


def redis_floor(redis_url: str, vector: Vector, n: int, budget_s: float, seed: int) -> dict[str, float]:
    """One CacheStore.get_many of one entry (a realistic ~100-token answer) against the local Redis."""

    async def measure() -> dict[str, float]:
        store = CacheStore(RedisConfig(key_prefix=f"cachebench{seed}"), redis_url)
        try:
            await store.put(floor_entry(vector), ttl_s=600, max_entries=1000)

            async def call(_: int) -> None:
                if (await store.get_many("t", ["floor"]))[0] is None:
                    raise RuntimeError("stored entry not found")

            return await atimed(call, n, budget_s, warmup=20)
        finally:
            await store.close()

    return asyncio.run(measure())


def hnsw_floor(index: VectorIndex, queries: NDArray[np.float32], n: int, budget_s: float) -> dict[str, float]:
    k = DEFAULTS.candidates
    return timed(lambda i: index.search(queries[i % len(queries)], "ns0", k), n, budget_s, warmup=20)


# ------------------------------------------------------------------------------------------ throughput


def embed_throughput(embedder: Embedder, texts: list[str], batch: int, budget_s: float) -> dict[str, Any]:
    """Sentences/s of embedder.embed(texts[i:i+batch]) calls, bounded by `budget_s` (at least one call)."""
    embedder.embed(texts[:batch])  # warm-up
    done, started, calls = 0, time.perf_counter(), 0
    while calls == 0 or (time.perf_counter() - started < budget_s and calls < 50):
        chunk = [texts[(done + j) % len(texts)] for j in range(batch)]
        embedder.embed(chunk)
        done, calls = done + batch, calls + 1
    wall = time.perf_counter() - started
    return {"batch": batch, "calls": calls, "sentences": done, "sentences_per_s": round(done / wall, 1)}


def batcher_throughput(embedder: Embedder, texts: list[str], callers: int, budget_s: float) -> dict[str, Any]:
    """EmbeddingBatcher (the cache's default batch size and wait) with `callers` concurrent coroutines."""
    from cache.batching import EmbeddingBatcher

    async def measure() -> dict[str, Any]:
        out: dict[str, Any]
        batcher = EmbeddingBatcher(
            embedder, max_batch=DEFAULTS.embed_batch_size, max_wait_s=DEFAULTS.embed_max_wait_ms / 1000
        )
        latencies: list[float] = []
        deadline = time.monotonic() + budget_s

        async def caller(offset: int) -> None:
            for i in range(200):
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                await batcher.embed(texts[(offset * 200 + i) % len(texts)])
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        wall = time.perf_counter() - started
        out = {
            "callers": callers,
            "sentences": len(latencies),
            "sentences_per_s": round(len(latencies) / wall, 1),
            "batches": batcher.batches,
            "mean_batch": round(len(latencies) / max(1, batcher.batches), 1),
            "latency": summary_ms(latencies),
        }
        return out

    return asyncio.run(measure())


# --------------------------------------------------------------------------------------------- the index


def _maps_bytes(index: VectorIndex) -> int:
    """Bytes of VectorIndex's Python-side maps: the dicts' tables plus every distinct key/value object."""
    maps: list[dict[Any, Any]] = [index._label_of, index._entry_of, index._namespace_of]  # noqa: SLF001
    seen: set[int] = set()
    total = sum(sys.getsizeof(m) for m in maps) + sys.getsizeof(index._per_namespace)  # noqa: SLF001
    for mapping in maps:
        for key, value in mapping.items():
            for obj in (key, value):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
    return total


def index_at_scale(real: NDArray[np.float32], n: int, queries: int, bare: bool, budget_s: float) -> dict[str, Any]:
    """Build a VectorIndex of n entries (default config, one add per entry as the cache does) in 4 namespaces
    (70/20/5/5 %), then single-thread k=4 searches with the namespace filter and recall@1 on near-duplicates.
    With `bare`, the same vectors also go into a bare hnswlib index first (add_items, one thread, no filter)."""
    import hnswlib

    rng = np.random.default_rng(n)
    vectors = clustered(real, n, rng)
    namespaces = rng.choice(4, size=n, p=[0.7, 0.2, 0.05, 0.05])

    def probe(limit: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        picked = rng.choice(limit, size=min(queries, limit), replace=False)
        return picked, near(vectors[picked], 0.0128, rng)  # cosine ~0.97 to the stored vector

    result: dict[str, Any] = {"entries": n, "queries": queries, "namespaces": "4 (70/20/5/5 %)"}
    k = DEFAULTS.candidates
    deadline = time.monotonic() + budget_s
    if bare:
        picked, probes = probe(n)
        before = rss()
        raw = hnswlib.Index(space="ip", dim=DIM)
        raw.init_index(max_elements=n, M=DEFAULTS.hnsw_m, ef_construction=DEFAULTS.hnsw_ef_construction)
        raw.set_ef(DEFAULTS.hnsw_ef_search)
        started = time.perf_counter()
        for start in range(0, n, 5_000):
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare hnswlib build of {n} ran past its budget at {start}")
            raw.add_items(vectors[start : start + 5_000], np.arange(start, min(n, start + 5_000)), num_threads=1)
        build_s = time.perf_counter() - started
        grown = rss() - before
        found = [int(raw.knn_query(probes[i : i + 1], k=k, num_threads=1)[0][0][0]) for i in range(queries)]
        bare_search = timed(
            lambda i: raw.knn_query(probes[i % queries : i % queries + 1], k=k, num_threads=1), queries, 60
        )
        result["bare_hnswlib"] = {
            "build_s": round(build_s, 1),
            "inserts_per_s": round(n / build_s),
            "rss_bytes_per_entry": round(grown / n),
            "search": bare_search,
            "recall_at_1": round(float(np.mean(np.array(found) == picked)), 4),
        }
        del raw
    before = rss()
    index = new_index()
    ids = [f"{i:08d}{rng.bytes(12).hex()}" for i in range(n)]  # 32 characters, like the cache's uuid4().hex
    names = [f"ns{j}" for j in range(4)]
    built, progress = n, []  # (entries, seconds) every tenth, to extrapolate a build stopped by its budget
    started = time.perf_counter()
    for i in range(n):
        if i % 10_000 == 0 and i:
            if i % max(10_000, n // 10) == 0:
                progress.append((i, round(time.perf_counter() - started, 1)))
            if time.monotonic() > deadline:
                built = i
                logger.warning("VectorIndex build of %d stopped by its budget at %d entries", n, i)
                break
        index.add(ids[i], names[namespaces[i]], vectors[i])
    build_s = time.perf_counter() - started
    grown = rss() - before
    picked, probes = probe(built)
    maps = _maps_bytes(index)
    # The ids list above is the caller's (the cache gets them from uuid4); its strings are shared with the maps.
    grown_without_ids_list = grown - sys.getsizeof(ids)

    failures: list[int] = []

    def search(i: int) -> list[Any]:
        j = i % len(picked)
        try:
            return index.search(probes[j], names[namespaces[picked[j]]], k)
        except RuntimeError:  # hnswlib found fewer than k in the namespace; the cache turns this into a bypass
            failures.append(j)
            return []

    found_ids = [(hits[0].entry_id if hits else "") for hits in map(search, range(len(picked)))]
    result["vector_index"] = {
        "entries_built": built,
        "stopped_by_budget": built < n,
        "build_progress": progress,
        "build_s": round(build_s, 1),
        "inserts_per_s": round(built / build_s),
        "capacity_after_build": int(index._index.get_max_elements()),  # noqa: SLF001
        "rss_bytes_per_entry": round(grown_without_ids_list / built),
        "python_maps_bytes_per_entry": round(maps / built),
        "hnswlib_bytes_per_entry": round((grown_without_ids_list - maps) / built),
        "search": timed(search, queries, 60),
        "recall_at_1": round(float(np.mean([found_ids[j] == ids[picked[j]] for j in range(len(picked))])), 4),
        "search_errors": len(failures),
        "search_error_namespaces": {names[namespaces[picked[j]]]: failures.count(j) for j in set(failures)},
    }
    return result
