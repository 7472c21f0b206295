"""The semantic cache policy: per-tenant HNSW indexes over entries whose truth lives in Redis."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from cache.config import CacheConfig
from cache.embedder import Embedder, Vector
from cache.errors import CacheUnavailable
from cache.index import VectorIndex
from cache.store import CachedAnswer, CacheEntry, CacheStore

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"


@dataclass(frozen=True)
class Lookup:
    outcome: Outcome
    answer: CachedAnswer | None = None
    similarity: float | None = None
    # The query embedding, computed once and reused by the router and by store().
    vector: Vector | None = None


class SemanticCache:
    """Looks up and stores complete answers. Redis failures become BYPASS, never exceptions."""

    def __init__(self, config: CacheConfig, embedder: Embedder, store: CacheStore) -> None:
        self._config = config
        self._embedder = embedder
        self._store = store
        self._indexes: dict[str, VectorIndex] = {}
        self._down_until = 0.0
        # The local indexes must be (re)built from Redis at start and after every outage, because
        # entries written meanwhile by other replicas or a restarted Redis are unknown here.
        self._needs_rebuild = True
        self._rebuild_lock = asyncio.Lock()

    @property
    def config(self) -> CacheConfig:
        return self._config

    def embed(self, text: str) -> Vector:
        vector: Vector = self._embedder.embed([text])[0]
        return vector

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def entries(self, tenant: str) -> int:
        index = self._indexes.get(tenant)
        return len(index) if index is not None else 0

    async def lookup(self, tenant: str, namespace: str, vector: Vector) -> Lookup:
        if not self.available():
            return Lookup(Outcome.BYPASS, vector=vector)
        try:
            await self._ensure_built()
            index = self._indexes.get(tenant)
            if index is None:
                return Lookup(Outcome.MISS, vector=vector)
            neighbours = [
                n
                for n in index.search(vector, namespace, self._config.candidates)
                if n.similarity >= self._config.similarity_threshold
            ]
            records = await self._store.get_many(tenant, [n.entry_id for n in neighbours])
        except CacheUnavailable as error:
            self._mark_down(error)
            return Lookup(Outcome.BYPASS, vector=vector)
        except Exception:  # a cache bug must cost a miss, never a failed request
            logger.exception("semantic cache lookup failed; bypassing")
            return Lookup(Outcome.BYPASS, vector=vector)
        for neighbour, record in zip(neighbours, records, strict=True):
            if record is None:  # expired or evicted in Redis: forget it here too
                index.delete(neighbour.entry_id)
                continue
            if record.tenant == tenant and record.namespace == namespace:
                return Lookup(Outcome.HIT, answer=record.answer, similarity=neighbour.similarity, vector=vector)
        return Lookup(Outcome.MISS, vector=vector)

    async def store(self, tenant: str, namespace: str, query: str, vector: Vector, answer: CachedAnswer) -> bool:
        """Store a complete answer; returns False when it was not stored (policy or Redis down)."""
        if answer.finish_reason != "stop" and not (answer.finish_reason == "length" and self._config.store_truncated):
            return False
        if not self.available():
            return False
        entry = CacheEntry(
            entry_id=uuid.uuid4().hex,
            tenant=tenant,
            namespace=namespace,
            query=query,
            vector_b64=CacheEntry.encode_vector(vector),
            answer=answer,
        )
        try:
            await self._store.put(entry, self._config.ttl_s)
        except CacheUnavailable as error:
            self._mark_down(error)
            return False
        except Exception:
            logger.exception("semantic cache store failed; answer not cached")
            return False
        self._index_for(tenant).add(entry.entry_id, namespace, vector)
        return True

    async def rebuild(self) -> int:
        """Reload every entry from Redis into fresh indexes; returns how many were loaded."""
        indexes: dict[str, VectorIndex] = {}
        count = 0
        async for entry in self._store.scan_all():
            if entry.vector().shape != (self._embedder.dimension,):
                continue  # written with another embedding model: unusable by this one
            indexes.setdefault(entry.tenant, self._new_index()).add(entry.entry_id, entry.namespace, entry.vector())
            count += 1
        self._indexes = indexes
        self._needs_rebuild = False
        logger.info("semantic cache index rebuilt from redis: %d entries, %d tenants", count, len(indexes))
        return count

    async def close(self) -> None:
        await self._store.close()

    async def _ensure_built(self) -> None:
        if not self._needs_rebuild:
            return
        async with self._rebuild_lock:
            if self._needs_rebuild:
                await self.rebuild()

    def _mark_down(self, error: Exception) -> None:
        logger.warning("cache bypassed for %.1fs: %s", self._config.redis.retry_after_s, error)
        self._down_until = time.monotonic() + self._config.redis.retry_after_s
        self._needs_rebuild = True

    def _index_for(self, tenant: str) -> VectorIndex:
        index = self._indexes.get(tenant)
        if index is None:
            index = self._indexes[tenant] = self._new_index()
        return index

    def _new_index(self) -> VectorIndex:
        return VectorIndex(
            self._embedder.dimension,
            capacity=self._config.index_capacity,
            m=self._config.hnsw_m,
            ef_construction=self._config.hnsw_ef_construction,
            ef_search=self._config.hnsw_ef_search,
        )
