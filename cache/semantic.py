"""The semantic cache policy: per-tenant HNSW indexes over entries whose truth lives in Redis.

Every gateway replica keeps its indexes equal to Redis: it rebuilds them from Redis at start and
after an outage, then follows Redis' event stream (adds, deletes, flushes, from every replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cache.batching import EmbeddingBatcher
from cache.config import CacheConfig
from cache.embedder import Embedder, Vector
from cache.errors import CacheUnavailable
from cache.index import VectorIndex
from cache.store import CachedAnswer, CacheEntry, CacheStore, IndexEvent, decode_vector

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"


class Verifier(Protocol):
    """Second opinion on a similar-looking candidate: (compatible, reason it is not)."""

    def compatible(self, query: str, candidate: str) -> tuple[bool, str | None]: ...


@dataclass(frozen=True)
class Lookup:
    outcome: Outcome
    answer: CachedAnswer | None = None
    similarity: float | None = None
    # The query embedding, computed once and reused by the router and by store().
    vector: Vector | None = None
    rejected: str | None = None  # why the best similar candidate was not served (verifier reason)


class SemanticCache:
    """Looks up and stores complete answers. Redis failures become BYPASS, never exceptions."""

    def __init__(
        self, config: CacheConfig, embedder: Embedder, store: CacheStore, verifier: Verifier | None = None
    ) -> None:
        self._config = config
        self._embedder = embedder
        self._store = store
        self._verifier = verifier
        self._batcher = EmbeddingBatcher(
            embedder, max_batch=config.embed_batch_size, max_wait_s=config.embed_max_wait_ms / 1000
        )
        self._indexes: dict[str, VectorIndex] = {}
        self._down_until = 0.0
        # Indexes must be (re)built from Redis at start and after every outage: entries written
        # meanwhile by other replicas or lost by a restarted Redis are unknown here.
        self._needs_rebuild = True
        self._rebuild_lock = asyncio.Lock()
        self._position = "0-0"  # last stream event applied
        self._follower: asyncio.Task[None] | None = None
        self.counters: Counter[str] = Counter()

    @property
    def config(self) -> CacheConfig:
        return self._config

    def embed(self, text: str) -> Vector:
        """Embed on the calling thread (tools, tests); the serving path uses embed_async."""
        vector: Vector = self._embedder.embed([text])[0]
        return vector

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    async def embed_async(self, text: str) -> Vector:
        """Embed off the event loop, batched with whatever other requests are embedding right now."""
        return await self._batcher.embed(text)

    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def tenants(self) -> list[str]:
        """Tenants whose index this replica holds."""
        return list(self._indexes)

    def entries(self, tenant: str) -> int:
        index = self._indexes.get(tenant)
        return len(index) if index is not None else 0

    async def lookup_exact(self, tenant: str, namespace: str, query: str) -> Lookup | None:
        """An identical repeat, from Redis alone (no embedding, no index): a hit, or None to go on. Counted as a
        hit by `count_exact_hit` once it is answered (a screening stage may still turn it away)."""
        if not self.available():
            return None
        try:
            entry = await self._store.get_exact(tenant, namespace, query)  # and marked as just used
            if entry is None or (entry.tenant, entry.namespace, entry.query) != (tenant, namespace, query):
                return None
        except CacheUnavailable as error:
            self._mark_down(error)
            return None
        except Exception:  # a cache bug must cost a miss, never a failed request
            logger.exception("exact cache lookup failed; going on")
            return None
        return Lookup(Outcome.HIT, answer=entry.answer, similarity=1.0)

    def count_exact_hit(self) -> None:
        self.counters["hit"] += 1
        self.counters["hit_exact"] += 1

    async def lookup(self, tenant: str, namespace: str, vector: Vector, query: str = "") -> Lookup:
        if not self.available():
            self.counters["bypass"] += 1
            return Lookup(Outcome.BYPASS, vector=vector)
        lookup = await self._search(tenant, [namespace], vector, query, self._config.similarity_threshold)
        self.counters[lookup.outcome.value] += 1
        if lookup.rejected:
            self.counters[f"rejected_{lookup.rejected}"] += 1
        return lookup

    async def lookup_degraded(
        self, tenant: str, namespaces: Sequence[str], vector: Vector, query: str, threshold: float
    ) -> Lookup:
        """The best verified answer from any of `namespaces` (the other tiers of a fallback chain) at a looser
        `threshold`: what a request gets instead of a 503 when no tier that could answer it is taking calls."""
        if not self.available():
            return Lookup(Outcome.BYPASS, vector=vector)
        lookup = await self._search(tenant, namespaces, vector, query, threshold)
        if lookup.outcome is Outcome.HIT:
            self.counters["hit_degraded"] += 1
        return lookup

    async def _search(
        self, tenant: str, namespaces: Sequence[str], vector: Vector, query: str, threshold: float
    ) -> Lookup:
        try:
            await self._ensure_built()
            index = self._indexes.get(tenant)
            found = (
                [n for namespace in namespaces for n in index.search(vector, namespace, self._config.candidates)]
                if index is not None
                else []
            )
            neighbours = sorted((n for n in found if n.similarity >= threshold), key=lambda n: -n.similarity)
            records = await self._store.get_many(tenant, [n.entry_id for n in neighbours])
            rejected: str | None = None
            for neighbour, record in zip(neighbours, records, strict=True):
                if record is None:  # expired or evicted in Redis: forget it here too
                    if index is not None:
                        index.delete(neighbour.entry_id)
                    continue
                if record.tenant != tenant or record.namespace not in namespaces:
                    continue
                if self._verifier is not None and query:
                    ok, reason = self._verifier.compatible(query, record.query)
                    if not ok:
                        rejected = rejected or reason
                        continue
                await self._store.touch(tenant, record.entry_id)
                return Lookup(Outcome.HIT, answer=record.answer, similarity=neighbour.similarity, vector=vector)
        except CacheUnavailable as error:
            self._mark_down(error)
            return Lookup(Outcome.BYPASS, vector=vector)
        except Exception:  # a cache bug must cost a miss, never a failed request
            logger.exception("semantic cache lookup failed; bypassing")
            return Lookup(Outcome.BYPASS, vector=vector)
        return Lookup(Outcome.MISS, vector=vector, rejected=rejected)

    async def store(
        self,
        tenant: str,
        namespace: str,
        query: str,
        vector: Vector,
        answer: CachedAnswer,
        *,
        model: str = "",
        model_version: str = "",
    ) -> bool:
        """Store a complete answer; returns False when it was not stored (policy or Redis down)."""
        complete = answer.finish_reason == "stop" or (answer.finish_reason == "length" and self._config.store_truncated)
        if not complete or not self.available():
            return False
        entry = CacheEntry(
            entry_id=uuid.uuid4().hex,
            tenant=tenant,
            namespace=namespace,
            model=model,
            model_version=model_version,
            query=query,
            vector_b64=CacheEntry.encode_vector(vector),
            answer=answer,
        )
        try:
            evicted = await self._store.put(entry, self._config.ttl_s, self._config.max_entries_per_tenant)
        except CacheUnavailable as error:
            self._mark_down(error)
            return False
        except Exception:
            logger.exception("semantic cache store failed; answer not cached")
            return False
        index = self._index_for(tenant)
        index.add(entry.entry_id, namespace, vector)
        for entry_id in evicted:
            index.delete(entry_id)
        self.counters["stored"] += 1
        self.counters["evicted"] += len(evicted)
        return True

    async def rebuild(self) -> int:
        """Reload every entry from Redis into fresh indexes; returns how many were loaded."""
        # Read the stream position first: events after it are replayed by the follower, so an entry
        # added while we scan is never missed (adding twice is harmless).
        position = await self._store.stream_position()
        indexes: dict[str, VectorIndex] = {}
        count = 0
        for tenant in await self._store.tenants():
            async for entry in self._store.entries(tenant):
                if entry.vector().shape != (self._embedder.dimension,):
                    continue  # written with another embedding model: unusable by this one
                indexes.setdefault(tenant, self._new_index()).add(entry.entry_id, entry.namespace, entry.vector())
                count += 1
        self._indexes = indexes
        self._position = position
        self._needs_rebuild = False
        logger.info("semantic cache index rebuilt from redis: %d entries, %d tenants", count, len(indexes))
        return count

    def start(self) -> None:
        """Follow the shared event stream in the background (call from the serving event loop)."""
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow(), name="cache-follower")

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        self._batcher.close()
        await self._store.close()

    async def sweep_expired(self) -> int:
        """Announce entries whose TTL passed, so every replica drops them from its index."""
        now = time.time()
        swept = 0
        for tenant in await self._store.tenants():
            expired = await self._store.expired(tenant, now)
            await self._store.delete_many(tenant, expired)
            swept += len(expired)
        return swept

    async def stats(self) -> dict[str, object]:
        tenants = await self._store.tenants()
        per_tenant = {t: {"stored": await self._store.count(t), "indexed_here": self.entries(t)} for t in tenants}
        return {"tenants": per_tenant, "counters": dict(self.counters), "available": self.available()}

    async def invalidate(self, tenant: str | None = None, model: str | None = None) -> int:
        """Delete entries of one tenant (or all), optionally only those made for one model alias."""
        removed = 0
        for name in [tenant] if tenant is not None else await self._store.tenants():
            if model is None:
                removed += await self._store.flush_tenant(name)
                self._indexes.pop(name, None)
                continue
            doomed = [e.entry_id async for e in self._store.entries(name) if e.model == model]
            await self._store.delete_many(name, doomed)
            index = self._indexes.get(name)
            for entry_id in doomed:
                if index is not None:
                    index.delete(entry_id)
            removed += len(doomed)
        return removed

    async def export(self, tenant: str | None = None) -> AsyncIterator[CacheEntry]:
        for name in [tenant] if tenant is not None else await self._store.tenants():
            async for entry in self._store.entries(name):
                yield entry

    async def _follow(self) -> None:
        last_sweep = time.monotonic()
        while True:
            try:
                await self._ensure_built()
                for event_id, event in await self._store.read_events(self._position, block_ms=1000):
                    self._apply(event)
                    self._position = event_id
                if time.monotonic() - last_sweep >= self._config.sweep_interval_s:
                    last_sweep = time.monotonic()
                    await self.sweep_expired()
            except CacheUnavailable as error:
                self._mark_down(error)
                await asyncio.sleep(max(self._config.redis.retry_after_s, 0.1))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cache follower failed; rebuilding")
                self._needs_rebuild = True
                await asyncio.sleep(1.0)

    def _apply(self, event: IndexEvent) -> None:
        if event.op == "flush":
            self._indexes.pop(event.tenant, None)
        elif event.op == "delete":
            index = self._indexes.get(event.tenant)
            if index is not None:
                index.delete(event.entry_id)
        else:
            vector = decode_vector(event.vector_b64)
            if vector.shape == (self._embedder.dimension,):
                self._index_for(event.tenant).add(event.entry_id, event.namespace, vector)

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
