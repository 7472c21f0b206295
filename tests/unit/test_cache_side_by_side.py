"""The semantic-hit benchmark's side by side: rounds alternate, only hits count, the ratio is of the same rounds."""

from __future__ import annotations

import httpx
import pytest

from benchmarks import cache_parts as parts
from benchmarks.cache_side_by_side import FloorParts, side_by_side
from benchmarks.measure import Sample
from tests.fakes import HashingEmbedder

TEXTS = ["how do i reset my password", "what is the capital of france", "how do i rotate an api key"]


async def test_rounds_alternate_and_only_hits_count(redis_url: str) -> None:
    order: list[str] = []
    sent: list[str] = []

    async def hit(i: int) -> Sample:
        order.append("hit")
        sent.append(TEXTS[i % len(TEXTS)])
        return Sample(0.012, cache="miss" if i == 5 else "hit")

    def models(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        order.append("floor")
        return httpx.Response(200, json={"object": "list", "data": []})

    embedder = HashingEmbedder()
    index = parts.new_index(capacity=100)
    for i, vector in enumerate(embedder.embed(TEXTS)):
        index.add(f"e{i}", "ns0", vector)
    async with httpx.AsyncClient(transport=httpx.MockTransport(models)) as client:
        result = await side_by_side(
            hit, TEXTS, FloorParts(embedder, index), redis_url, client, "http://stack", 6, 30, warmup=2
        )

    # Round i: the hit first on even rounds, the floor first on odd ones; warm-up rounds are made but not counted.
    expected = [step for i in range(8) for step in (("hit", "floor") if i % 2 == 0 else ("floor", "hit"))]
    assert order == expected
    assert sent == [TEXTS[i % len(TEXTS)] for i in range(8)]
    assert result["rounds"] == 5 and result["not_hits"] == {"miss": 1}
    assert result["hit"]["n"] == 5 and result["hit"]["p50_ms"] == pytest.approx(12.0)
    assert set(result["floor"]) == {"embed", "hnsw_search", "redis_read", "http_exchange"}
    assert all(part["n"] == 5 for part in result["floor"].values())
    floor_p50 = result["floor_sum"]["p50_ms"]
    assert floor_p50 > 0
    assert result["hit_p50_over_floor_p50"] == pytest.approx(12.0 / floor_p50, rel=0.01)
