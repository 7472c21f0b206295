"""The serve process's half of live scaling (serving/scaling.py): a heartbeat so the admin API knows someone will
apply requests, and `ScaleDriver.poll`, called from the serve loop, which applies the next queued request by
deploying the application again with the tier's new scale and waits until the tier runs at it."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from cache import connect_sync
from serving.config import DeploymentConfig, StackConfig
from serving.scaling import ScaleBoard, ScaleRequest, apply_override
from serving.status import APP_NAME, serve_deployments

logger = logging.getLogger(__name__)


def driver_redis_url(stack: StackConfig) -> str:
    """The configured Redis, or the one the application started on this machine (its RedisServer deployment
    writes its address beside its data)."""
    if stack.cache.redis.url is not None:
        return stack.cache.redis.url
    path = stack.data_dir / "redis" / "url"
    deadline = time.monotonic() + 30
    while not path.exists():  # written when the Redis deployment starts, before the stack is healthy
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"{path} (the stack's own Redis runs on another node: set cache.redis.url)")
        time.sleep(0.5)
    return path.read_text().strip()


def scaled(stack: StackConfig, overrides: dict[str, ScaleRequest]) -> dict[str, DeploymentConfig]:
    """Each overridden tier's deployment at its live scale, on top of the config's (unknown tiers are dropped)."""
    tiers = {tier.name: tier for tier in stack.tiers}
    return {
        name: apply_override(tiers[name].deployment, request)
        for name, request in overrides.items()
        if name in tiers and not request.reset
    }


def _running_at(tier: str, deployment: DeploymentConfig) -> tuple[bool, str]:
    overview = serve_deployments().get(f"tier-{tier}")
    if overview is None:
        return False, f"no deployment tier-{tier}"
    states: dict[str, int] = overview["replica_states"]
    health = overview["status"]
    running = states.get("RUNNING", 0)
    if deployment.autoscaling is not None:
        low, high = deployment.autoscaling.min_replicas, deployment.autoscaling.max_replicas
        ok = low <= running <= high
    else:
        ok = running == deployment.num_replicas
    return ok and health == "HEALTHY" and sum(states.values()) == running, f"{health}, {states}"


class ScaleDriver:
    def __init__(self, stack: StackConfig, client: Any, ready_timeout_s: float) -> None:
        self._board = ScaleBoard(client, stack.cache.redis.key_prefix)
        self._timeout_s = ready_timeout_s
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="tierserve-scale-heartbeat", daemon=True)
        self._beat.start()

    @classmethod
    def connect(cls, stack: StackConfig, ready_timeout_s: float) -> ScaleDriver | None:
        try:
            client = connect_sync(driver_redis_url(stack), socket_timeout=5, socket_connect_timeout=5)
            client.ping()
        except Exception as error:  # the stack serves without live scaling rather than not at all
            logger.warning("live scaling is off: cannot reach the stack's Redis (%s)", error)
            return None
        return cls(stack, client, ready_timeout_s)

    def _heartbeat(self) -> None:
        while not self._stop.is_set():
            try:
                self._board.heartbeat()
            except Exception as error:  # Redis away for a moment: scale requests are refused until it is back
                logger.warning("scale heartbeat failed: %s", error)
            self._stop.wait(2.0)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):  # Redis gone: its heartbeat key expires on its own
            self._board.leave()

    def overrides(self) -> dict[str, ScaleRequest]:
        try:
            return self._board.overrides()
        except Exception:
            return {}

    def forget(self) -> None:
        """A new start: the config file decides the scale again."""
        for tier in self.overrides():
            self._board.keep(ScaleRequest(tier=tier, reset=True))

    def poll(self, stack: StackConfig) -> bool:
        """Apply the next queued request, if any; True when one was applied (the application was deployed)."""
        try:
            picked = self._board.next_request()
        except Exception as error:
            logger.warning("cannot read scale requests: %s", error)
            return False
        if picked is None:
            return False
        scale_id, request = picked
        if request.tier not in {tier.name for tier in stack.tiers}:
            self._board.record(scale_id, state="failed", message=f"no tier '{request.tier}' in the running stack")
            return False
        from ray import serve

        from serving.app import build_app

        started = time.monotonic()
        self._board.record(scale_id, state="applying")
        overrides = {**self.overrides(), request.tier: request}
        live = scaled(stack, overrides)
        target = live.get(request.tier) or next(t.deployment for t in stack.tiers if t.name == request.tier)
        try:
            serve.run(build_app(stack, live), name=APP_NAME, route_prefix="/", blocking=False)
            deadline = time.monotonic() + self._timeout_s
            while not (at := _running_at(request.tier, target))[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"tier '{request.tier}' not at its new scale after {self._timeout_s:.0f}s: {at[1]}"
                    )
                time.sleep(1)
        except Exception as error:
            logger.exception("scaling %s failed", request.tier)
            self._board.record(scale_id, state="failed", message=str(error))
            return True
        self._board.keep(request)
        seconds = round(time.monotonic() - started, 1)
        self._board.record(scale_id, state="done", seconds=seconds, message=at[1])
        logger.info("tier %s scaled (%s) in %.1fs", request.tier, request.model_dump(exclude_defaults=True), seconds)
        return True
