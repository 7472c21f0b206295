"""A semantic cache hit and its floor, measured side by side: round after round, the same text.

Each round sends one semantic hit through the stack and, right before or right after it (alternately), makes the
floor's four parts in this process: one embedding of the very text the hit sends (batch 1, the gateway's torch
threads), one HNSW search of a 10k-entry index, one Redis read of a cached answer, and one HTTP exchange through
the stack's own ingress (`GET /v1/models`: the same HAProxy and replica server as the hit).

Why rounds and not phases: measured in phases (the floor in a tight loop, the hits minutes later), the ratio
swung between 1.11x and 1.69x on the same code (docs/cache-benchmarks.md). A tight loop keeps the embedding's
90 MB of weights hot in the caches where one embedding per request does not, and the shared 2-core machine
drifts by ±15 % between phases. Interleaved, both sides see the same machine and the same cadence.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.cache_parts import DEFAULTS, floor_entry
from benchmarks.measure import Sample, ratio, summary_ms
from cache.config import RedisConfig
from cache.embedder import Embedder
from cache.index import VectorIndex
from cache.store import CacheStore

__all__ = ["FloorParts", "side_by_side"]

_PARTS = ("embed", "hnsw_search", "redis_read", "http_exchange")


@dataclass
class FloorParts:
    """What the floor's parts are made of (built once by the benchmark, used in every round)."""

    embedder: Embedder
    index: VectorIndex  # 10k real embeddings in namespace "ns0", as in the floor measured alone


async def side_by_side(
    hit: Callable[[int], Awaitable[Sample]],
    texts: list[str],
    parts: FloorParts,
    redis_url: str,
    client: httpx.AsyncClient,
    url: str,
    rounds: int,
    budget_s: float,
    warmup: int = 20,
) -> dict[str, Any]:
    """`rounds` rounds (fewer when budget_s runs out) of one hit `hit(i)` of texts[i] and one floor of texts[i]."""
    store = CacheStore(RedisConfig(key_prefix=f"sidebyside{time.time_ns()}"), redis_url)
    try:
        await store.put(floor_entry(parts.embedder.embed([texts[0]])[0]), ttl_s=600, max_entries=10)

        async def floor(i: int) -> dict[str, float]:
            marks = [time.perf_counter()]
            vector = parts.embedder.embed([texts[i % len(texts)]])[0]
            marks.append(time.perf_counter())
            parts.index.search(vector, "ns0", DEFAULTS.candidates)  # k as the cache searches
            marks.append(time.perf_counter())
            if (await store.get_many("t", ["floor"]))[0] is None:
                raise RuntimeError("the floor's stored entry is gone")
            marks.append(time.perf_counter())
            (await client.get(f"{url}/v1/models")).raise_for_status()
            marks.append(time.perf_counter())
            return {name: marks[k + 1] - marks[k] for k, name in enumerate(_PARTS)}

        hits: list[float] = []
        floors: list[dict[str, float]] = []
        not_hits: dict[str, int] = {}
        deadline = time.monotonic() + budget_s
        for i in range(warmup + rounds):
            if i >= warmup and time.monotonic() > deadline:
                break
            # Alternate which goes first, so neither always runs right after the other's embedding.
            if i % 2:
                measured, sample = await floor(i), await hit(i)
            else:
                sample = await hit(i)
                measured = await floor(i)
            if i < warmup:
                continue
            if sample.cache != "hit":
                not_hits[sample.cache] = not_hits.get(sample.cache, 0) + 1
                continue
            hits.append(sample.latency)
            floors.append(measured)
    finally:
        await store.close()
    return _summary(hits, floors, not_hits)


def _summary(hits: list[float], floors: list[dict[str, float]], not_hits: dict[str, int]) -> dict[str, Any]:
    floor = {name: summary_ms([f[name] for f in floors]) for name in _PARTS}
    floor_sum = summary_ms([sum(f.values()) for f in floors])
    hit = summary_ms(hits)
    return {
        "rounds": len(hits),
        "not_hits": not_hits,
        "hit": hit,
        "floor": floor,
        "floor_sum": floor_sum,
        # The goal's figure: p50 of the hits over p50 of the floors summed round by round.
        "hit_p50_over_floor_p50": ratio(hit.get("p50_ms"), floor_sum.get("p50_ms")),
        "hit_p50_over_sum_of_part_p50s": ratio(
            hit.get("p50_ms"), round(sum(floor[name].get("p50_ms", 0.0) for name in _PARTS), 2)
        ),
    }
