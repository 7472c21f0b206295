"""Redis as the shared source of truth for cache entries: pydantic records, one key per entry, TTL'd."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError

from cache.config import RedisConfig
from cache.embedder import Vector
from cache.errors import CacheUnavailable

logger = logging.getLogger(__name__)


class CachedAnswer(BaseModel):
    """A complete, successful answer, kept as the pieces it streamed in so a replay has the same shape."""

    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tier: str

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class CacheEntry(BaseModel):
    entry_id: str
    tenant: str
    namespace: str = Field(description="Hash of the exact parts of the key (model, context, parameters).")
    query: str = Field(description="The paraphrasable text that was embedded.")
    vector_b64: str = Field(description="float32 embedding, base64, so replicas rebuild without re-embedding.")
    answer: CachedAnswer
    created_at: float = Field(default_factory=time.time)

    def vector(self) -> Vector:
        return np.frombuffer(base64.b64decode(self.vector_b64), dtype=np.float32)

    @staticmethod
    def encode_vector(vector: Vector) -> str:
        return base64.b64encode(np.ascontiguousarray(vector, dtype=np.float32).tobytes()).decode()


def _parse(raw: bytes | str) -> CacheEntry | None:
    """A record we cannot read (another schema version, another writer) is skipped, not fatal."""
    try:
        return CacheEntry.model_validate_json(raw)
    except ValidationError as error:
        logger.warning("skipping unreadable cache record: %s", error.errors()[0]["msg"])
        return None


class CacheStore:
    """Async Redis access; every Redis failure surfaces as CacheUnavailable."""

    def __init__(self, config: RedisConfig, url: str) -> None:
        self._prefix = config.key_prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=config.socket_timeout_s,
            socket_connect_timeout=config.connect_timeout_s,
            # No client-side retries: a slow or absent Redis must cost one timeout, then a bypass.
            retry_on_timeout=False,
        )

    def _key(self, tenant: str, entry_id: str) -> str:
        return f"{self._prefix}:entry:{tenant}:{entry_id}"

    async def ping(self) -> None:
        await self._call(self._client.ping())

    async def put(self, entry: CacheEntry, ttl_s: int) -> None:
        await self._call(self._client.set(self._key(entry.tenant, entry.entry_id), entry.model_dump_json(), ex=ttl_s))

    async def get_many(self, tenant: str, entry_ids: Sequence[str]) -> list[CacheEntry | None]:
        if not entry_ids:
            return []
        raw = await self._call(self._client.mget([self._key(tenant, e) for e in entry_ids]))
        return [_parse(item) if item is not None else None for item in raw]

    async def delete(self, tenant: str, entry_id: str) -> None:
        await self._call(self._client.delete(self._key(tenant, entry_id)))

    async def scan_all(self) -> AsyncIterator[CacheEntry]:
        """Every stored entry (for rebuilding an index on start or after an outage)."""
        try:
            async for key in self._client.scan_iter(match=f"{self._prefix}:entry:*", count=500):
                raw = await self._client.get(key)
                entry = _parse(raw) if raw is not None else None
                if entry is not None:
                    yield entry
        except (RedisError, OSError) as error:
            raise CacheUnavailable(f"redis: {error}") from error

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as error:
            raise CacheUnavailable(f"redis: {error}") from error
