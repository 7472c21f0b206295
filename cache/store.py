"""Redis as the shared source of truth for cache entries.

Layout (prefix `p`, per tenant `t`):
- `p:entry:t:<id>`  the entry (pydantic JSON), with a Redis TTL;
- `p:lru:t`         sorted set id -> last use (eviction order: least recently used first);
- `p:expiry:t`      sorted set id -> expiry time (lets a sweeper tell replicas about TTL expiry);
- `p:tenants`       set of tenants that have entries;
- `p:events`        stream of add/delete/flush events every gateway replica follows to keep its
                    in-memory HNSW indexes equal to Redis.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError

from cache.config import RedisConfig
from cache.embedder import Vector
from cache.errors import CacheUnavailable
from cache.redis_connect import connect_async

logger = logging.getLogger(__name__)

T = TypeVar("T")
_STREAM_MAXLEN = 200_000


class CachedAnswer(BaseModel):
    """A complete, successful answer, kept as the pieces it streamed in so a replay has the same shape.

    `chunks` (a streamed answer's chunks, JSON, without the usage-only one) or `body` (a whole answer's JSON) keep
    the engine's own response, so a replay in the same mode is exact; the other mode is rebuilt from `pieces`.
    """

    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tier: str
    chunks: list[str] | None = None
    body: str | None = None
    request_id: str | None = None  # the request that generated it: the lineage of every replay
    # What the input guard made of the request that generated it (its detectors' fingerprint and the score), so an
    # identical repeat can be answered before it is screened again: same texts, same detectors, same verdict.
    guard_fingerprint: str | None = None
    guard_score: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class CacheEntry(BaseModel):
    entry_id: str
    tenant: str
    namespace: str = Field(description="Hash of the exact parts of the key (model, context, parameters).")
    model: str = Field(default="", description="Model alias the request named (for invalidation).")
    model_version: str = Field(default="", description="Version of that model when the answer was made.")
    query: str = Field(description="The paraphrasable text that was embedded.")
    vector_b64: str = Field(description="float32 embedding, base64, so replicas rebuild without re-embedding.")
    answer: CachedAnswer
    created_at: float = Field(default_factory=time.time)

    def vector(self) -> Vector:
        return decode_vector(self.vector_b64)

    @staticmethod
    def encode_vector(vector: Vector) -> str:
        return base64.b64encode(np.ascontiguousarray(vector, dtype=np.float32).tobytes()).decode()


def decode_vector(encoded: str) -> Vector:
    return np.frombuffer(base64.b64decode(encoded), dtype=np.float32)


class IndexEvent(BaseModel):
    """One change to the shared cache, as every replica's index follower sees it."""

    op: Literal["add", "delete", "flush"]
    tenant: str
    entry_id: str = ""
    namespace: str = ""
    vector_b64: str = ""


def _parse(raw: bytes | str) -> CacheEntry | None:
    """A record we cannot read (another schema version, another writer) is skipped, not fatal."""
    try:
        return CacheEntry.model_validate_json(raw)
    except ValidationError as error:
        logger.warning("skipping unreadable cache record: %s", error.errors()[0]["msg"])
        return None


# KEYS: the exact key (pointer to an entry id), the tenant's LRU set. ARGV: the tenant's entry-key prefix, now.
# The entry's key is made here from the pointer; a Redis Cluster would need the tenant's keys in one hash slot
# (docs/operations.md, "Redis Cluster").
_EXACT_HIT = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local raw = redis.call('GET', ARGV[1] .. id)
if raw then redis.call('ZADD', KEYS[2], 'XX', ARGV[2], id) end
return raw
"""


class CacheStore:
    """Async Redis access; every Redis failure surfaces as CacheUnavailable."""

    def __init__(self, config: RedisConfig, url: str) -> None:
        self._p = config.key_prefix
        self._client: aioredis.Redis = connect_async(
            url,
            socket_timeout=config.socket_timeout_s,
            socket_connect_timeout=config.connect_timeout_s,
            # No client-side retries: a slow or absent Redis must cost one timeout, then a bypass.
            retry_on_timeout=False,
        )
        # Blocking stream reads need a longer socket timeout than ordinary commands.
        self._follower: aioredis.Redis = connect_async(
            url, socket_timeout=None, socket_connect_timeout=config.connect_timeout_s
        )
        self._events = f"{self._p}:events"
        self._exact_hit = self._client.register_script(_EXACT_HIT)

    def _entry_key(self, tenant: str, entry_id: str) -> str:
        return f"{self._p}:entry:{tenant}:{entry_id}"

    def _lru_key(self, tenant: str) -> str:
        return f"{self._p}:lru:{tenant}"

    def _expiry_key(self, tenant: str) -> str:
        return f"{self._p}:expiry:{tenant}"

    def _exact_key(self, tenant: str, namespace: str, query: str) -> str:
        digest = hashlib.sha256(f"{namespace}\x00{query}".encode()).hexdigest()
        return f"{self._p}:exact:{tenant}:{digest}"

    async def ping(self) -> None:
        await self._call(self._client.ping())

    async def put(self, entry: CacheEntry, ttl_s: int, max_entries: int) -> list[str]:
        """Store an entry, announce it, and evict the least recently used beyond `max_entries`.

        Returns the ids evicted."""
        now = time.time()
        event = IndexEvent(
            op="add",
            tenant=entry.tenant,
            entry_id=entry.entry_id,
            namespace=entry.namespace,
            vector_b64=entry.vector_b64,
        )
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._entry_key(entry.tenant, entry.entry_id), entry.model_dump_json(), ex=ttl_s)
        # An identical repeat finds its entry through this pointer, before anything is embedded. A pointer whose
        # entry was evicted or deleted finds nothing, and expires with the entry it pointed at.
        pipe.set(self._exact_key(entry.tenant, entry.namespace, entry.query), entry.entry_id, ex=ttl_s)
        pipe.zadd(self._lru_key(entry.tenant), {entry.entry_id: now})
        pipe.zadd(self._expiry_key(entry.tenant), {entry.entry_id: now + ttl_s})
        pipe.sadd(f"{self._p}:tenants", entry.tenant)
        pipe.xadd(self._events, {"e": event.model_dump_json()}, maxlen=_STREAM_MAXLEN, approximate=True)
        pipe.zcard(self._lru_key(entry.tenant))
        results = await self._call(pipe.execute())
        excess = int(results[-1]) - max_entries
        if excess <= 0:
            return []
        popped: list[Any] = list(await self._call(self._client.zpopmin(self._lru_key(entry.tenant), excess)))
        evicted = [bytes(member).decode() for member, _score in popped]
        await self.delete_many(entry.tenant, evicted)
        return evicted

    async def get_many(self, tenant: str, entry_ids: Sequence[str]) -> list[CacheEntry | None]:
        if not entry_ids:
            return []
        raw = await self._call(self._client.mget([self._entry_key(tenant, e) for e in entry_ids]))
        return [_parse(item) if item is not None else None for item in raw]

    async def get_exact(self, tenant: str, namespace: str, query: str) -> CacheEntry | None:
        """The entry stored for exactly this namespace and query, if there is one, marked as just used: one round
        trip (pointer, entry and LRU mark in one script) where it took three."""
        keys = [self._exact_key(tenant, namespace, query), self._lru_key(tenant)]
        raw = await self._call(self._exact_hit(keys=keys, args=[self._entry_key(tenant, ""), time.time()]))
        return _parse(raw) if raw is not None else None

    async def touch(self, tenant: str, entry_id: str) -> None:
        """Mark an entry as just used (LRU order)."""
        await self._call(self._client.zadd(self._lru_key(tenant), {entry_id: time.time()}, xx=True))

    async def delete_many(self, tenant: str, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(*[self._entry_key(tenant, e) for e in entry_ids])
        pipe.zrem(self._lru_key(tenant), *entry_ids)
        pipe.zrem(self._expiry_key(tenant), *entry_ids)
        for entry_id in entry_ids:
            event = IndexEvent(op="delete", tenant=tenant, entry_id=entry_id)
            pipe.xadd(self._events, {"e": event.model_dump_json()}, maxlen=_STREAM_MAXLEN, approximate=True)
        await self._call(pipe.execute())

    async def flush_tenant(self, tenant: str) -> int:
        """Delete every entry of a tenant; returns how many there were."""
        ids = await self.entry_ids(tenant)
        pipe = self._client.pipeline(transaction=True)
        for start in range(0, len(ids), 1000):
            pipe.delete(*[self._entry_key(tenant, e) for e in ids[start : start + 1000]])
        pipe.delete(self._lru_key(tenant), self._expiry_key(tenant))
        pipe.srem(f"{self._p}:tenants", tenant)
        event = IndexEvent(op="flush", tenant=tenant)
        pipe.xadd(self._events, {"e": event.model_dump_json()}, maxlen=_STREAM_MAXLEN, approximate=True)
        await self._call(pipe.execute())
        return len(ids)

    async def tenants(self) -> list[str]:
        members = await self._call(self._client.smembers(f"{self._p}:tenants"))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def entry_ids(self, tenant: str) -> list[str]:
        members = await self._call(self._client.zrange(self._lru_key(tenant), 0, -1))
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def count(self, tenant: str) -> int:
        return int(await self._call(self._client.zcard(self._lru_key(tenant))))

    async def expired(self, tenant: str, now: float) -> list[str]:
        members = await self._call(self._client.zrangebyscore(self._expiry_key(tenant), 0, now))
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def entries(self, tenant: str) -> AsyncIterator[CacheEntry]:
        """Every readable entry of a tenant (expired ones are skipped)."""
        ids = await self.entry_ids(tenant)
        for start in range(0, len(ids), 500):
            for entry in await self.get_many(tenant, ids[start : start + 500]):
                if entry is not None:
                    yield entry

    async def stream_position(self) -> str:
        """The id of the newest event, to follow the stream from after a rebuild."""
        newest = await self._call(self._client.xrevrange(self._events, count=1))
        if not newest:
            return "0-0"
        event_id = newest[0][0]
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def read_events(self, after: str, block_ms: int) -> list[tuple[str, IndexEvent]]:
        """Events newer than `after`, waiting up to `block_ms` for the first one."""
        try:
            reply = await self._follower.xread({self._events: after}, count=1000, block=block_ms)
        except (RedisError, OSError) as error:
            raise CacheUnavailable(f"redis: {error}") from error
        events: list[tuple[str, IndexEvent]] = []
        streams: list[Any] = list(reply or [])
        for _stream, items in streams:
            for event_id, fields in items:
                try:
                    event = IndexEvent.model_validate_json(fields.get(b"e", b""))
                except ValidationError:
                    continue
                events.append((event_id.decode(), event))
        return events

    async def close(self) -> None:
        await self._client.aclose()
        await self._follower.aclose()

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (RedisError, OSError) as error:
            raise CacheUnavailable(f"redis: {error}") from error


__all__ = ["CacheEntry", "CacheStore", "CachedAnswer", "IndexEvent"]
