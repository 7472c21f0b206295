"""The stack on a real multi-node Ray cluster: a head node and three worker nodes on this machine (Ray's
`cluster_utils.Cluster`: each node its own raylet and object store, registered with one GCS), each node with its
own resources, and `tierserve serve --address` joining it as an operator would.

- Replicas land where their resources ask: the gateway on the node that carries `ingress` (the head), the large
  tier on the node that carries `tier_large`, the small tier's two replicas on two of the three `tier_small` nodes.
- A worker node holding a small replica is killed under streaming load (its raylet and every process on it, no
  graceful stop): Serve starts a replacement on the spare `tier_small` node, and no request that had not started
  streaming fails (the gateway retries them on the live replica or the fallback tier).

Runs before the shared e2e stack starts (files run in name order): the two would not fit on 2 cores together."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.redis_server import LocalRedis
from tests.e2e.conftest import ALPHA_KEY, CONFIG, ROOT, running_stack, stack_url
from tests.e2e.load import StreamingLoad

pytestmark = pytest.mark.slow

ADMIN_KEY = "cluster-test-admin-key-0123"
NODE_MEMORY = {"object_store_memory": 200 * 2**20}  # the default (30 % of RAM per node) is far too much for four


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from ray.cluster_utils import Cluster

    # The nodes' processes inherit this environment: the gateway replicas read the admin key from it, as they would
    # from a node's environment on a real cluster.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "TIERSERVE_ADMIN_KEY": ADMIN_KEY,
            "RAY_USAGE_STATS_ENABLED": "0",
            "HF_HUB_OFFLINE": "1",
        }.items():
            patch.setenv(name, value)
        redis = LocalRedis()
        cluster: Cluster | None = None
        try:
            redis.start()
            head = {"num_cpus": 3, "resources": {"ingress": 1}, "include_dashboard": False, **NODE_MEMORY}
            cluster = Cluster(initialize_head=True, head_node_args=head)
            workers = {
                "a": cluster.add_node(num_cpus=2, resources={"tier_small": 1, "tier_large": 1}, **NODE_MEMORY),
                "b": cluster.add_node(num_cpus=2, resources={"tier_small": 1}, **NODE_MEMORY),
                "c": cluster.add_node(num_cpus=2, resources={"tier_small": 1}, **NODE_MEMORY),
            }
            cluster.wait_for_nodes()
            folder = tmp_path_factory.mktemp("cluster")
            yield {"cluster": cluster, "workers": workers, "redis": redis.url, "folder": folder}
        finally:
            if cluster is not None:
                cluster.shutdown()
            redis.stop()


def _cluster_config(folder: Path, redis_url: str) -> Path:
    """configs/test.yaml placed by resources, with an operator's Redis (every node reaches it)."""
    config = yaml.safe_load(CONFIG.read_text())
    config["models_dir"] = str((ROOT / config["models_dir"]).resolve())
    config["data_dir"] = str(folder / "data")
    tiers = {tier["name"]: tier for tier in config["tiers"]}
    tiers["small"]["deployment"]["resources"] = {"tier_small": 1}
    tiers["large"]["deployment"]["resources"] = {"tier_large": 1}
    # As an operator would: a request the small tier cannot start (its replica's node just died, the router has
    # not noticed yet) moves to the large tier once its retries are spent.
    tiers["small"]["reliability"] = {"fallback": ["large"]}
    config["cache"]["redis"] = {"url": redis_url}
    # One gateway per node that carries `ingress`; Ray Serve's own proxy on the head only, since all four nodes
    # share this machine's address and port.
    config["gateway"].update(
        ingress="proxy",
        proxy_location="HeadOnly",
        deployment={"num_replicas": 1, "resources": {"ingress": 1}, "max_replicas_per_node": 1},
    )
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _status(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/admin/status", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _placement(status: dict[str, Any], tier: str) -> list[str]:
    return sorted(replica["node_id"] for replica in status["tiers"][tier]["replicas"])


def _wait(url: str, done: Any, timeout_s: float) -> dict[str, Any]:
    """/admin/status until `done(status)` (presence records refresh every 2 s and expire after 10 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = _status(url)
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(2)


def test_replicas_follow_resources_and_survive_a_node_kill(cluster: dict[str, Any]) -> None:
    workers = cluster["workers"]
    ids = {name: node.node_id for name, node in workers.items()}
    head = cluster["cluster"].head_node.node_id
    config = _cluster_config(cluster["folder"], cluster["redis"])
    log = cluster["folder"] / "tierserve.log"
    options = ("--address", cluster["cluster"].address)
    with running_stack(config, log, {"TIERSERVE_ADMIN_KEY": ADMIN_KEY}, options) as process:
        url = stack_url(process)
        status = _wait(url, lambda s: len(_placement(s, "small")) == 2 and _placement(s, "large"), 120)
        assert len([node for node in status["nodes"] if node["alive"]]) == 4, status["nodes"]
        small, large = _placement(status, "small"), _placement(status, "large")
        assert large == [ids["a"]], (large, ids)
        assert set(small) <= {ids["a"], ids["b"], ids["c"]} and len(set(small)) == 2, (small, ids)
        gateways = httpx.get(f"{url}/health", timeout=30)
        assert gateways.status_code == 200
        assert [g["node_ip"] for g in status["gateways"]] and status["gateway_deployment"]["status"] == "HEALTHY"
        victim = next(name for name in ("b", "c") if ids[name] in small)
        spare = next(name for name in ("a", "b", "c") if ids[name] not in small)
        with StreamingLoad(url, ALPHA_KEY, users=3) as load:
            time.sleep(8)
            before = len(load.outcomes)
            killed_at = time.monotonic()
            cluster["cluster"].remove_node(workers[victim], allow_graceful=False)
            status = _wait(url, lambda s: _placement(s, "small") == sorted([ids[spare], *set(small) - {ids[victim]}])
                           and s["tiers"]["small"]["deployment"]["status"] == "HEALTHY", 400)  # fmt: skip
            replaced_s = time.monotonic() - killed_at
            time.sleep(8)  # traffic on the replacement too
        after = _placement(status, "small")
        assert ids[victim] not in after and ids[spare] in after, (after, ids, victim, spare)
        assert _placement(status, "large") == [ids["a"]]
        unstarted_failures = [o for o in load.outcomes if o.failed and not o.started]
        cut = [o for o in load.outcomes if o.failed and o.started]
        assert before > 0 and len(load.outcomes) > before + 5, (before, len(load.outcomes))
        assert not unstarted_failures, unstarted_failures[:3]
        print(
            f"\nnode kill: {len(load.outcomes)} requests, {len(cut)} cut mid-stream on the killed replica, "
            f"0 unstarted failures; replacement running on node {spare} {replaced_s:.1f} s after the kill "
            f"(head {head[:8]}, victim {victim})"
        )
