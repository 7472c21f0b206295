"""Live scaling of a running stack (`tierserve scale`): an operator's request goes through the admin API into Redis;
the `tierserve serve` process that owns the application picks it up and deploys the same application with the tier's
new replica count or autoscaling bounds. The replicas' code version leaves those out (serving.app), so Ray Serve
applies the change in place: new replicas start, surplus ones drain their requests; none restarts.

Redis keys (under the stack's prefix):
- `scale:queue`: requests not yet picked up (a list; the driver pops them in order);
- `scale:result:<id>`: what became of one (state queued | applying | done | failed, message, seconds);
- `scale:overrides`: the scale in force per tier (a hash), which outlives reloads until `--reset`;
- `scale:driver`: the serve process's heartbeat (no heartbeat: nobody applies requests, refused at once)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.config import AutoscalingConfig, DeploymentConfig

__all__ = [
    "DRIVER_TTL_S",
    "ScaleRequest",
    "ScaleResult",
    "apply_override",
    "overrides_from",
    "queue_scale",
    "read_result",
]

DRIVER_TTL_S = 10
_RESULT_TTL_S = 24 * 3600
MAX_REPLICAS = 256


def _keys(prefix: str) -> dict[str, str]:
    return {
        "queue": f"{prefix}:scale:queue",
        "overrides": f"{prefix}:scale:overrides",
        "driver": f"{prefix}:scale:driver",
        "result": f"{prefix}:scale:result:",
    }


class ScaleRequest(BaseModel):
    """One tier's new scale: a fixed `replicas`, or autoscaling between `min_replicas` and `max_replicas` (with an
    optional `target_ongoing_requests`), or `reset` to the config file's."""

    model_config = ConfigDict(extra="forbid")

    tier: str = Field(min_length=1, max_length=64)
    replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    min_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    target_ongoing_requests: float | None = Field(default=None, gt=0)
    reset: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> ScaleRequest:
        bounds = (self.min_replicas, self.max_replicas)
        kinds = [self.replicas is not None, any(b is not None for b in bounds), self.reset]
        if sum(kinds) != 1:
            raise ValueError("give replicas, or min_replicas and max_replicas, or reset (exactly one of them)")
        if any(b is not None for b in bounds):
            if None in bounds:
                raise ValueError("min_replicas and max_replicas go together")
            assert self.min_replicas is not None and self.max_replicas is not None
            if self.max_replicas < self.min_replicas:
                raise ValueError("max_replicas must be >= min_replicas")
        if self.target_ongoing_requests is not None and self.min_replicas is None:
            raise ValueError("target_ongoing_requests goes with min_replicas and max_replicas")
        return self


class ScaleResult(BaseModel):
    id: str
    tier: str
    state: Literal["queued", "applying", "done", "failed"]
    message: str = ""
    requested_at: float
    seconds: float | None = None  # from pick-up until the tier was healthy at its new scale
    scale: dict[str, Any] = Field(default_factory=dict)


def apply_override(deployment: DeploymentConfig, request: ScaleRequest) -> DeploymentConfig:
    """The tier's deployment at the requested scale (its other settings unchanged)."""
    if request.replicas is not None:
        return deployment.model_copy(update={"num_replicas": request.replicas, "autoscaling": None})
    assert request.min_replicas is not None and request.max_replicas is not None
    base = deployment.autoscaling or AutoscalingConfig()
    update: dict[str, Any] = {"min_replicas": request.min_replicas, "max_replicas": request.max_replicas}
    if request.target_ongoing_requests is not None:
        update["target_ongoing_requests"] = request.target_ongoing_requests
    autoscaling = AutoscalingConfig.model_validate({**base.model_dump(), **update})
    return deployment.model_copy(update={"autoscaling": autoscaling})


def overrides_from(raw: Mapping[Any, Any]) -> dict[str, ScaleRequest]:
    """The overrides hash as Redis returns it (bytes or str) -> tier -> its request."""
    found = {}
    for tier, value in raw.items():
        name = tier.decode() if isinstance(tier, bytes) else str(tier)
        found[name] = ScaleRequest.model_validate_json(value)
    return found


async def queue_scale(redis: Any, prefix: str, request: ScaleRequest) -> ScaleResult | None:
    """Queue a request for the serve process; None when no serve process is there to apply it."""
    keys = _keys(prefix)
    if not await redis.exists(keys["driver"]):
        return None
    result = ScaleResult(
        id=f"scale-{uuid.uuid4().hex[:12]}",
        tier=request.tier,
        state="queued",
        requested_at=time.time(),
        scale=request.model_dump(exclude_defaults=True),
    )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys["result"] + result.id, result.model_dump_json(), ex=_RESULT_TTL_S)
        pipe.rpush(keys["queue"], json.dumps({"id": result.id, "request": request.model_dump(exclude_defaults=True)}))
        await pipe.execute()
    return result


async def read_result(redis: Any, prefix: str, scale_id: str) -> ScaleResult | None:
    raw = await redis.get(_keys(prefix)["result"] + scale_id)
    return ScaleResult.model_validate_json(raw) if raw else None


async def read_overrides(redis: Any, prefix: str) -> dict[str, ScaleRequest]:
    return overrides_from(await redis.hgetall(_keys(prefix)["overrides"]))


class ScaleBoard:
    """The serve process's side (synchronous redis-py): heartbeat, pick up requests, record what became of them."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._keys = _keys(prefix)

    def heartbeat(self) -> None:
        self._redis.set(self._keys["driver"], str(time.time()), ex=DRIVER_TTL_S)

    def leave(self) -> None:
        self._redis.delete(self._keys["driver"])

    def next_request(self) -> tuple[str, ScaleRequest] | None:
        raw = self._redis.lpop(self._keys["queue"])
        if raw is None:
            return None
        item = json.loads(raw)
        return item["id"], ScaleRequest.model_validate(item["request"])

    def overrides(self) -> dict[str, ScaleRequest]:
        return overrides_from(self._redis.hgetall(self._keys["overrides"]))

    def keep(self, request: ScaleRequest) -> None:
        if request.reset:
            self._redis.hdel(self._keys["overrides"], request.tier)
        else:
            self._redis.hset(self._keys["overrides"], request.tier, request.model_dump_json(exclude_defaults=True))

    def record(self, scale_id: str, **changes: Any) -> None:
        key = self._keys["result"] + scale_id
        raw = self._redis.get(key)
        if raw is None:
            return
        result = ScaleResult.model_validate_json(raw).model_copy(update=changes)
        self._redis.set(key, result.model_dump_json(), ex=_RESULT_TTL_S)
