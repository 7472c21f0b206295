"""API keys in Redis, hashed: a key is `tsk-<id>-<secret>`; Redis holds the id, the tenant, the limits and the
SHA-256 of the secret, never the secret itself. The secret has 256 random bits, so its hash needs no salt or
slow KDF to be safe in a dump; the check is a constant-time comparison of digests.

`KeyDirectory` answers "who is this?" on every request from a local copy at most `key_cache_s` old, so a revocation
reaches every gateway replica within that, and keys keep working from the copy while Redis is down.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from serving.tenancy.config import Limits, TenancyConfig

KEY_PATTERN = re.compile(r"^tsk-([0-9a-f]{12})-([A-Za-z0-9_-]{32,64})$")


class KeyRecord(BaseModel):
    """One key as stored and as the admin API shows it (`digest` never leaves Redis)."""

    id: str
    tenant: str
    name: str = ""
    prefix: str = Field(description="The key's first characters, to recognise it in a list.")
    created: float
    updated: float
    revoked: bool = False
    revoked_at: float | None = None
    models: list[str] = Field(default_factory=list, description="Models this key may use; empty: all.")
    limits: Limits = Field(default_factory=Limits)
    digest: str = ""

    def public(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"digest"})


def _digest(key_id: str, secret: str) -> str:
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(key id, secret, the key the client sends)."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return key_id, secret, f"tsk-{key_id}-{secret}"


class KeyStore:
    """Create, read, update, revoke and rotate keys in Redis."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}:key:{key_id}"

    @property
    def _ids(self) -> str:
        return f"{self._prefix}:keys"

    async def create(
        self, tenant: str, *, name: str = "", models: list[str] | None = None, limits: Limits | None = None
    ) -> tuple[KeyRecord, str]:
        key_id, secret, key = new_key()
        now = time.time()
        record = KeyRecord(
            id=key_id,
            tenant=tenant,
            name=name,
            prefix=key[:12],
            created=now,
            updated=now,
            models=models or [],
            limits=limits or Limits(),
            digest=_digest(key_id, secret),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(key_id), record.model_dump_json())
            pipe.sadd(self._ids, key_id)
            await pipe.execute()
        return record, key

    async def get(self, key_id: str) -> KeyRecord | None:
        raw = await self._redis.get(self._key(key_id))
        return KeyRecord.model_validate_json(raw) if raw is not None else None

    async def records(self, tenant: str | None = None) -> list[KeyRecord]:
        ids = sorted(
            member.decode() if isinstance(member, bytes) else str(member)
            for member in await self._redis.smembers(self._ids)
        )
        if not ids:
            return []
        raws = await self._redis.mget([self._key(key_id) for key_id in ids])
        records = [KeyRecord.model_validate_json(raw) for raw in raws if raw is not None]
        return [r for r in records if tenant is None or r.tenant == tenant]

    async def count(self) -> int:
        return int(await self._redis.scard(self._ids))

    async def _save(self, record: KeyRecord) -> KeyRecord:
        record.updated = time.time()
        await self._redis.set(self._key(record.id), record.model_dump_json())
        return record

    async def update(
        self,
        key_id: str,
        *,
        name: str | None = None,
        models: list[str] | None = None,
        limits: Mapping[str, object] | None = None,
    ) -> KeyRecord | None:
        record = await self.get(key_id)
        if record is None:
            return None
        if name is not None:
            record.name = name
        if models is not None:
            record.models = models
        if limits:
            record.limits = Limits.model_validate(record.limits.model_dump() | dict(limits))
        return await self._save(record)

    async def revoke(self, key_id: str) -> KeyRecord | None:
        record = await self.get(key_id)
        if record is None:
            return None
        if not record.revoked:
            record.revoked, record.revoked_at = True, time.time()
            await self._save(record)
        return record

    async def rotate(self, key_id: str) -> tuple[KeyRecord, str] | None:
        """A new secret for the same id (same tenant, limits and usage history); the old key stops working."""
        record = await self.get(key_id)
        if record is None:
            return None
        secret = secrets.token_urlsafe(32)
        key = f"tsk-{key_id}-{secret}"
        record.digest, record.prefix, record.revoked, record.revoked_at = _digest(key_id, secret), key[:12], False, None
        return await self._save(record), key


@dataclass(frozen=True)
class Principal:
    """Who a request is from: its tenant, the key's id (never the key), what the key may use and its limits."""

    tenant: str
    key_id: str
    models: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def may_use(self, model: str) -> bool:
        return not self.models or model in self.models


class Unauthenticated(Exception):
    """No valid key; the message says what to do."""


class KeyDirectory:
    """Resolves a bearer token to a Principal: the YAML bootstrap keys, then keys in Redis (cached briefly)."""

    def __init__(
        self,
        store: KeyStore | None,
        config: TenancyConfig,
        bootstrap: Mapping[str, str],
        default_tenant: str,
    ) -> None:
        self._store = store
        self._config = config
        # YAML keys are compared as digests, so every comparison takes the same time whatever the key's length.
        self._bootstrap = [
            (hashlib.sha256(key.encode()).digest(), tenant, "yaml-" + hashlib.sha256(key.encode()).hexdigest()[:8])
            for key, tenant in bootstrap.items()
        ]
        self._default_tenant = default_tenant
        self._records: dict[str, tuple[float, KeyRecord | None]] = {}
        self._stored_count: tuple[float, int | None] = (float("-inf"), None)
        self._loading: dict[str, asyncio.Future[KeyRecord | None]] = {}

    async def _count(self) -> int:
        read_at, count = self._stored_count
        now = time.monotonic()
        if self._store is None:
            return 0
        if now - read_at < self._config.key_cache_s and count is not None:
            return count
        try:
            count = await self._store.count()
        except RedisError:
            if count is None:  # never read: whether keys exist is unknown, so the stack is not open
                raise Unauthenticated(
                    "Keys cannot be checked right now (key store unreachable); retry shortly."
                ) from None
            return count  # the last count seen (open stays open, closed stays closed)
        self._stored_count = (now, count)
        return count

    async def _record(self, key_id: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._records.get(key_id)
        if cached is not None and now - cached[0] < self._config.key_cache_s:
            return cached[1]
        if self._store is None:
            return None
        # One read per key id however many requests with it arrive at once (a burst must not become N reads).
        loading = self._loading.get(key_id)
        if loading is None:
            loading = self._loading[key_id] = asyncio.ensure_future(self._load(key_id, cached))
            loading.add_done_callback(lambda _: self._loading.pop(key_id, None))
        return await asyncio.shield(loading)

    async def _load(self, key_id: str, cached: tuple[float, KeyRecord | None] | None) -> KeyRecord | None:
        assert self._store is not None
        now = time.monotonic()
        try:
            record = await self._store.get(key_id)
        except RedisError:
            if cached is not None and now - cached[0] < self._config.stale_key_s:
                return cached[1]
            raise Unauthenticated(
                "The key cannot be checked right now (key store unreachable); retry shortly."
            ) from None
        if len(self._records) > 100_000:
            self._records.clear()
        self._records[key_id] = (now, record)
        return record

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
        match = KEY_PATTERN.match(given)
        if match is not None:  # a stored key: checked even while the stack is open, so its limits apply
            record = await self._record(match.group(1))
            if record is not None and hmac.compare_digest(record.digest, _digest(match.group(1), match.group(2))):
                if record.revoked:
                    raise Unauthenticated(f"The API key {record.prefix}... was revoked.")
                return Principal(record.tenant, record.id, tuple(record.models), record.limits)
        if not self._bootstrap and await self._count() == 0:
            return Principal(tenant=self._default_tenant, key_id="open")
        if not given:
            raise Unauthenticated("Missing API key. Pass it as 'Authorization: Bearer <key>'.")
        if match is not None:
            raise Unauthenticated("Incorrect API key provided.")
        digest = hashlib.sha256(given.encode()).digest()
        found: Principal | None = None
        for key_digest, tenant, key_id in self._bootstrap:  # every key compared: the time says nothing of which matched
            if hmac.compare_digest(digest, key_digest):
                found = Principal(tenant, key_id)
        if found is None:
            raise Unauthenticated("Incorrect API key provided.")
        return found
