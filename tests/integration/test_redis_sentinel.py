"""Redis behind Sentinel, for real: a primary, a replica and three sentinels (tests/sentinel.py). The clients
tierserve opens from a `redis+sentinel://` URL (cache/redis_connect.py) find the primary, and after the primary is
killed they reach the promoted replica, with what was written before the kill still there."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cache.redis_connect import connect_async, connect_sync, parse_sentinel_url, redact_url
from tests.sentinel import SentinelCluster

redis_errors = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    started = SentinelCluster(tmp_path)
    try:
        yield started.start()
    finally:
        started.stop()


def test_chaos_finds_the_primary_not_the_replica_nor_a_sentinel(cluster: SentinelCluster) -> None:
    """`tierserve chaos --scenario redis-primary` picks its target by asking each redis-server it finds."""
    import psutil

    from loadtest.chaos import redis_primary
    from loadtest.runner import LoadtestError

    found = redis_primary(list(psutil.process_iter()), cluster.primary_port)
    assert found.pid == cluster.processes["primary"].pid
    with pytest.raises(LoadtestError, match=f"port {cluster.replica_port}"):
        redis_primary(list(psutil.process_iter()), cluster.replica_port)  # a replica is not a primary


def test_sentinel_urls_parse_and_bad_ones_say_why() -> None:
    address = parse_sentinel_url("redis+sentinel://:s3cret@a:26379,b:26380/tierserve/2")
    assert address is not None and address.sentinels == [("a", 26379), ("b", 26380)]
    assert address.service == "tierserve" and address.db == 2 and address.password == "s3cret"
    assert parse_sentinel_url("redis://127.0.0.1:6379/0") is None
    for bad in ("redis+sentinel://a:26379", "redis+sentinel://a/x", "redis+sentinel://a:1/x/y"):
        with pytest.raises(ValueError, match="sentinel"):
            parse_sentinel_url(bad)
    assert redact_url("redis+sentinel://:s3cret@a:1/x") == "redis+sentinel://***@a:1/x"


def test_a_killed_primary_fails_over_and_the_client_follows(cluster: SentinelCluster) -> None:
    client = connect_sync(cluster.url, socket_timeout=1, socket_connect_timeout=1)
    client.set("before", "kept")
    client.wait(1, 2000)  # replicated to the replica before the kill
    killed = cluster.kill_primary()
    started = time.monotonic()
    while True:
        try:
            client.set("after", "written")
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            assert time.monotonic() - started < 60, f"no failover within 60 s\n{cluster.logs()}"
            time.sleep(0.2)
    took = time.monotonic() - started
    assert cluster.primary()[1] != killed and client.get("before") == b"kept" and client.get("after") == b"written"
    assert took < 60


async def test_the_asyncio_client_follows_a_failover_too(cluster: SentinelCluster) -> None:
    # The gateway's kind of client: a bounded pool where a burst waits for a connection.
    client = connect_async(cluster.url, blocking_pool=2, socket_timeout=1, socket_connect_timeout=1)
    try:
        await client.set("k", "v")
        assert await asyncio.gather(*(client.get("k") for _ in range(20))) == [b"v"] * 20
        await client.wait(1, 2000)
        cluster.kill_primary()
        deadline = time.monotonic() + 60
        while True:
            try:
                assert await client.get("k") == b"v"
                await client.set("k2", "v2")
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
                assert time.monotonic() < deadline, f"no failover within 60 s\n{cluster.logs()}"
                await asyncio.sleep(0.2)
        role = (await client.info("replication"))["role"]
        assert role == "master"
    finally:
        await client.aclose()


async def test_two_gateways_on_sentinel_answer_through_a_failover_and_their_caches_agree_again(
    cluster: SentinelCluster,
) -> None:
    """Two gateway replicas (fake tiers, the real cache, keys and limits) on the Sentinel URL, under steady traffic
    of new and repeated questions, while the primary is killed: no 5xx at any time; the cache stores and hits again
    on the promoted primary; both replicas' indexes hold the same entries again (measured)."""
    from tests.unit.gateway_stack import stack_factory

    factories = stack_factory(cluster.url, f"sentinel-{uuid.uuid4().hex[:8]}")
    make = await anext(factories)
    fast = {"retry_after_s": 1.0, "socket_timeout_s": 0.5}  # the default retry: the cache tries Redis again in 1 s
    one, two = await make(redis_options=fast), await make(redis_options=fast)
    for stack in (one, two):  # as the gateway deployment does: each index follows the shared event stream
        assert stack.cache is not None
        await stack.cache.rebuild()
        stack.cache.start()
    statuses: list[int] = []
    killed_at: float | None = None
    stored_after: float | None = None
    diverged_until: float | None = None  # the last time after the kill a replica's index differed from Redis
    redis = connect_async(cluster.url, socket_timeout=1, socket_connect_timeout=1)
    prefix = one.service.config.cache.redis.key_prefix

    async def ask(stack: Any, text: str) -> Any:
        response = await stack.chat(content=text, model="small")
        statuses.append(response.status_code)
        return response

    async def in_redis() -> int | None:
        try:
            return len([key async for key in redis.scan_iter(match=f"{prefix}:entry:alpha:*", count=1000)])
        except redis_errors:
            return None

    try:
        for round_ in range(60):
            if round_ == 15:
                cluster.kill_primary()
                killed_at = time.monotonic()
            text = f"Question number {round_} about rivers?"
            first = await ask(one if round_ % 2 else two, text)
            repeat = await ask(two if round_ % 2 else one, text)
            assert first.status_code < 500 and repeat.status_code < 500
            if killed_at is not None:
                if stored_after is None and repeat.headers.get("x-tierserve-cache") == "hit":
                    stored_after = time.monotonic() - killed_at
                await asyncio.sleep(0.2)  # the followers' turn to apply the last stores
                counts = {one.cache.entries("alpha"), two.cache.entries("alpha"), await in_redis()}  # type: ignore[union-attr]
                if len(counts) > 1:
                    diverged_until = time.monotonic()
            await asyncio.sleep(0.25)
    finally:
        await redis.aclose()
        await factories.aclose()
    assert not [s for s in statuses if s >= 500] and statuses.count(200) >= len(statuses) - 5, statuses
    assert stored_after is not None, "the cache never answered again after the failover"
    assert killed_at is not None and diverged_until is not None
    diverged = diverged_until - killed_at
    assert diverged < 20, f"an index differed from Redis {diverged:.1f} s after the kill"
    print(
        f"cache answering again {stored_after:.1f} s after the kill; indexes equal to Redis {diverged:.1f} s after it"
    )
