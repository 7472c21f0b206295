"""Live scaling's parts: the request's validation, the scale it gives a deployment, the code version that lets Ray
Serve apply a new scale in place (and restart on anything else), and the admin API's queue to the serve process
with a real Redis (the serve process's side is driven here by hand; tests/e2e/test_scale.py runs it for real)."""

from __future__ import annotations

import pytest
import redis
from pydantic import ValidationError

from serving.app import code_version
from serving.config import AutoscalingConfig, DeploymentConfig
from serving.scale_driver import scaled
from serving.scaling import ScaleBoard, ScaleRequest, apply_override
from tests.unit.gateway_stack import StackFactory

ADMIN_KEY = "admin-secret-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.mark.parametrize(
    "body",
    [
        {"tier": "small"},
        {"tier": "small", "replicas": 2, "reset": True},
        {"tier": "small", "min_replicas": 2},
        {"tier": "small", "min_replicas": 3, "max_replicas": 2},
        {"tier": "small", "replicas": 0},
        {"tier": "small", "replicas": 2, "target_ongoing_requests": 3},
        {"tier": "small", "replicas": 2, "surprise": 1},
    ],
)
def test_a_scale_request_is_one_clear_kind(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScaleRequest.model_validate(body)


def test_a_scale_replaces_only_the_replica_count_or_bounds() -> None:
    base = DeploymentConfig(num_replicas=1, num_cpus=0.5, max_ongoing_requests=16)
    fixed = apply_override(base, ScaleRequest(tier="small", replicas=3))
    assert fixed.num_replicas == 3 and fixed.autoscaling is None and fixed.num_cpus == 0.5
    auto = apply_override(fixed, ScaleRequest(tier="small", min_replicas=1, max_replicas=4, target_ongoing_requests=2))
    assert auto.autoscaling == AutoscalingConfig(min_replicas=1, max_replicas=4, target_ongoing_requests=2)
    back = apply_override(auto, ScaleRequest(tier="small", replicas=2))
    assert back.autoscaling is None and back.num_replicas == 2


def test_the_code_version_ignores_scale_and_follows_everything_else() -> None:
    tier = {"name": "small", "stop": None, "deployment": {"num_replicas": 1, "autoscaling": None, "num_cpus": 0.5}}
    scaled_up = {**tier, "deployment": {**tier["deployment"], "num_replicas": 4}}  # type: ignore[dict-item]
    autoscaled = {**tier, "deployment": {"num_cpus": 0.5, "autoscaling": {"min_replicas": 1, "max_replicas": 3}}}
    assert (
        code_version(tier, "/models/a") == code_version(scaled_up, "/models/a") == code_version(autoscaled, "/models/a")
    )
    assert code_version(tier, "/models/a") != code_version(tier, "/models/b")
    assert code_version(tier, "/m") != code_version({**tier, "stop": ["\nUser:"]}, "/m")
    more_cpus = {**tier, "deployment": {**tier["deployment"], "num_cpus": 1.0}}  # type: ignore[dict-item]
    assert code_version(tier, "/m") != code_version(more_cpus, "/m")


async def test_the_admin_api_queues_a_scale_for_the_serve_process(
    make_stack: StackFactory, redis_url: str, key_prefix: str
) -> None:
    stack = await make_stack(admin_key=ADMIN_KEY)
    nobody = await stack.client.post("/admin/scale", json={"tier": "small", "replicas": 2}, headers=ADMIN)
    assert nobody.status_code == 503 and nobody.json()["error"]["code"] == "scaling_unavailable"
    assert nobody.headers["retry-after"] == "10"
    board = ScaleBoard(redis.Redis.from_url(redis_url), key_prefix)
    board.heartbeat()  # a serve process is there
    unknown = await stack.client.post("/admin/scale", json={"tier": "huge", "replicas": 2}, headers=ADMIN)
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "tier"
    bad = await stack.client.post("/admin/scale", json={"tier": "small", "min_replicas": 2}, headers=ADMIN)
    assert bad.status_code in (400, 422) and "max_replicas" in bad.json()["error"]["message"]
    assert (await stack.client.post("/admin/scale", json={"tier": "small", "replicas": 2})).status_code == 401
    queued = await stack.client.post("/admin/scale", json={"tier": "small", "replicas": 2}, headers=ADMIN)
    assert queued.status_code == 202
    scale_id = queued.json()["id"]
    assert queued.json()["state"] == "queued" and queued.json()["scale"] == {"tier": "small", "replicas": 2}
    picked = board.next_request()  # what the serve process does: pick, apply, keep, record
    assert picked is not None and picked[0] == scale_id and picked[1].replicas == 2
    board.record(scale_id, state="applying")
    assert (await stack.client.get(f"/admin/scale/{scale_id}", headers=ADMIN)).json()["state"] == "applying"
    board.keep(picked[1])
    board.record(scale_id, state="done", seconds=1.5)
    result = (await stack.client.get(f"/admin/scale/{scale_id}", headers=ADMIN)).json()
    assert result["state"] == "done" and result["seconds"] == 1.5
    tiers = (await stack.client.get("/admin/scale", headers=ADMIN)).json()["tiers"]
    assert tiers["small"] == {"config": {"num_replicas": 1}, "live": {"replicas": 2}}
    assert tiers["large"]["live"] is None
    live = scaled(stack.service.config, board.overrides())
    assert live["small"].num_replicas == 2 and "large" not in live
    board.keep(ScaleRequest(tier="small", reset=True))
    assert board.overrides() == {}
    assert (await stack.client.get("/admin/scale/scale-nope", headers=ADMIN)).status_code == 404
    board.leave()


def test_a_live_scale_keeps_every_deployments_version_and_sets_its_replicas() -> None:
    from serving.app import build_app
    from serving.config import load_config

    config = load_config("configs/default.yaml")
    small = next(tier for tier in config.tiers if tier.name == "small")

    def deployments(scale: dict[str, DeploymentConfig] | None = None) -> dict[str, object]:
        gateway = build_app(config, scale)._bound_deployment  # type: ignore[attr-defined]
        tiers = gateway.init_args[1]
        found = {"gateway": gateway, **{name: app._bound_deployment for name, app in tiers.items()}}
        return found

    before = deployments()
    after = deployments({"small": apply_override(small.deployment, ScaleRequest(tier="small", replicas=3))})
    for name in before:
        assert before[name]._version == after[name]._version and before[name]._version  # type: ignore[attr-defined]
    assert after["small"].num_replicas == 3 and before["small"].num_replicas == small.deployment.num_replicas  # type: ignore[attr-defined]
