"""The whole stack on a Redis that fails over: `tierserve serve` with `cache.redis.url` naming three Sentinels (real
`redis-server` primary and replica, real Sentinels: tests/sentinel.py), Locust asking repeated questions the cache
answers, and `tierserve chaos --scenario redis-primary` killing the primary by pid. No client retries: every request
must be answered (0 5xx), and the cache must hit again on the promoted primary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ROOT, running_stack, small_and_large, stack_url
from tests.e2e.test_chaos import ChaosStack
from tests.sentinel import SentinelCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentinel_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChaosStack, SentinelCluster]]:
    folder = tmp_path_factory.mktemp("chaos-sentinel")
    redis_folder = folder / "redis"
    redis_folder.mkdir()
    cluster = SentinelCluster(redis_folder)
    try:
        cluster.start()
        config: dict[str, Any] = {
            "models_dir": str((ROOT / ".tierserve" / "models").resolve()),
            "data_dir": str(folder / "data"),
            "tiers": small_and_large()[:1],  # one engine: the run is about Redis
            "router": {"thresholds": []},
            "cache": {"redis": {"url": cluster.url}},
            "gateway": {"deployment": {"num_replicas": 2, "num_cpus": 0.25, "max_ongoing_requests": 256}},
            "ray": {"num_cpus": 4},
        }
        path = folder / "sentinel.yaml"
        path.write_text(yaml.safe_dump(config))
        with running_stack(path, folder / "tierserve.log") as process:
            stack = ChaosStack(url=stack_url(process), pid=process.pid, config=path, folder=folder, process=process)
            yield stack, cluster
    finally:
        cluster.stop()


def test_a_killed_redis_primary_fails_over_under_load_with_no_5xx(
    sentinel_stack: tuple[ChaosStack, SentinelCluster],
) -> None:
    stack, cluster = sentinel_stack
    primary = cluster.primary_port
    result = stack.chaos("redis-primary", "--client-retries", "0", "--redis-port", str(primary))
    assert str(primary) in result["target"], result["target"]  # the primary, not the replica or a Sentinel
    assert result["reconciled"] and result["sent_after_kill"] > 0, result
    assert result["failed"] == 0, result["failed_by_kind"]  # not one 5xx, without a client retry
    assert result["cache_before_kill"].get("hit", 0) > 0, result
    assert result["cache_after_kill"].get("hit", 0) > 0, result  # the cache answers from the promoted primary
    assert cluster.primary()[1] == cluster.replica_port  # the Sentinels promoted the replica
    print(
        f"\nredis failover under load: {result['sent']} requests, 0 failed; cache after the kill "
        f"{result['cache_after_kill']}, first hit after the last bypass "
        f"{result['cache_resumed_after_kill_s']} s after the kill"
    )
