"""One way to open Redis from a URL, a single server or a Sentinel-watched primary:

    redis://[:password@]host:port/db                 one server
    redis+sentinel://[:password@]host:port[,host:port...]/service[/db]
                                                     the primary Sentinel names for `service` (redis-py's Sentinel
                                                     client: it asks the sentinels again after a failover)

The password, when the URL carries none, comes from `TIERSERVE_REDIS_PASSWORD` (secrets stay out of the YAML); it is
used for the data servers, and for the sentinels when `TIERSERVE_SENTINEL_PASSWORD` is set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.sentinel import Sentinel

__all__ = ["SentinelAddress", "connect_async", "connect_sync", "parse_sentinel_url", "redact_url"]

SENTINEL_SCHEME = "redis+sentinel"
PASSWORD_ENV = "TIERSERVE_REDIS_PASSWORD"
SENTINEL_PASSWORD_ENV = "TIERSERVE_SENTINEL_PASSWORD"


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (connections to whichever server is primary now) with the blocking pool's bound: a burst
    waits `timeout` seconds for a free connection instead of failing with "Too many connections"."""


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelAddress | None:
    """The sentinels and service of a `redis+sentinel://` URL; None for any other URL. A malformed one is a
    ValueError that says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    hosts = parts.netloc.rsplit("@", 1)[-1]
    password = unquote(parts.netloc.rsplit("@", 1)[0].split(":", 1)[-1]) if "@" in parts.netloc else None
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"sentinel address {host!r} in {redact_url(url)} is not host:port")
        sentinels.append((name, int(port)))
    path = [piece for piece in parts.path.split("/") if piece]
    if not sentinels or not path:
        raise ValueError(f"{redact_url(url)}: give redis+sentinel://host:port[,host:port...]/service[/db]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"{redact_url(url)}: the path is /service or /service/db")
    return SentinelAddress(sentinels, path[0], int(path[1]) if len(path) == 2 else 0, password or None)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[-1]).geturl()


def _passwords(address: SentinelAddress) -> tuple[str | None, dict[str, Any]]:
    password = address.password or os.environ.get(PASSWORD_ENV) or None
    sentinel_password = os.environ.get(SENTINEL_PASSWORD_ENV) or None
    return password, ({"password": sentinel_password} if sentinel_password else {})


def connect_async(url: str, *, blocking_pool: int | None = None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client; `kwargs` as for `redis.asyncio.Redis` (timeouts, ...). `blocking_pool=N`: at most N
    connections, a caller waiting up to `socket_timeout` for one (a burst queues rather than opening sockets)."""
    address = parse_sentinel_url(url)
    if address is None:
        if "password" not in kwargs and os.environ.get(PASSWORD_ENV) and "@" not in url:
            kwargs["password"] = os.environ[PASSWORD_ENV]
        if blocking_pool is None:
            return aioredis.Redis.from_url(url, **kwargs)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=blocking_pool, timeout=kwargs.get("socket_timeout"), **kwargs
        )
        return aioredis.Redis(connection_pool=pool)
    if blocking_pool is not None:
        kwargs |= {
            "connection_pool_class": BlockingSentinelPool,
            "max_connections": blocking_pool,
            "timeout": kwargs.get("socket_timeout"),
        }
    password, sentinel_kwargs = _passwords(address)
    timeouts = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
    sentinel = AsyncSentinel(address.sentinels, sentinel_kwargs={**timeouts, **sentinel_kwargs})  # type: ignore[no-untyped-call]
    client: aioredis.Redis = sentinel.master_for(address.service, db=address.db, password=password, **kwargs)
    return client


def connect_sync(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking client (the serve process, tools); `kwargs` as for `redis.Redis`."""
    address = parse_sentinel_url(url)
    if address is None:
        if "password" not in kwargs and os.environ.get(PASSWORD_ENV) and "@" not in url:
            kwargs["password"] = os.environ[PASSWORD_ENV]
        return redis.Redis.from_url(url, **kwargs)
    password, sentinel_kwargs = _passwords(address)
    timeouts = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
    sentinel = Sentinel(address.sentinels, sentinel_kwargs={**timeouts, **sentinel_kwargs})  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        address.service, db=address.db, password=password, **kwargs
    )
    return client
