"""`build_app(config)`: the Ray Serve application; `app_builder` is the import_path for serve run/deploy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from serving.config import DeploymentConfig, LoggingConfig, StackConfig, load_config
from serving.deployments import Gateway, ModelServer, RedisServer
from serving.engine import engine_env

# Ray Serve LLM's prompt-prefix router, by import path (Serve imports and pickles it when the options are built).
PREFIX_AWARE_ROUTER = "ray.serve.llm.request_router:PrefixCacheAffinityRouter"


def deployment_options(
    deployment: DeploymentConfig,
    *,
    env: dict[str, str] | None = None,
    logging: LoggingConfig | None = None,
    graceful_s: float = 30,
) -> dict[str, Any]:
    """Ray Serve `.options()` for one deployment, from its config. `graceful_s`: how long a replica being replaced
    may finish the requests it holds."""
    actor: dict[str, Any] = {"num_cpus": deployment.num_cpus, "num_gpus": deployment.num_gpus}
    if deployment.memory_gb is not None:
        actor["memory"] = int(deployment.memory_gb * 2**30)
    if deployment.resources:
        actor["resources"] = dict(deployment.resources)
    env_vars = {**(env or {}), **deployment.env}
    if env_vars:
        actor["runtime_env"] = {"env_vars": env_vars}
    options: dict[str, Any] = {
        "ray_actor_options": actor,
        "max_ongoing_requests": deployment.max_ongoing_requests,
        # vLLM start-up takes tens of seconds; do not let the controller give up on it early.
        "health_check_timeout_s": 60,
        "graceful_shutdown_timeout_s": graceful_s,
        "max_surge_percent": deployment.max_surge_percent,
    }
    if logging is not None:
        # Ray Serve's own log config: in JSON mode every line carries the request id and the replica.
        options["logging_config"] = {"encoding": logging.encoding, "log_level": logging.level}
    if deployment.max_replicas_per_node is not None:
        options["max_replicas_per_node"] = deployment.max_replicas_per_node
    if deployment.request_router == "prefix_aware":
        router: dict[str, Any] = {
            "request_router_class": PREFIX_AWARE_ROUTER,
            "request_router_kwargs": {
                "imbalanced_threshold": deployment.prefix_imbalance,
                # Ray keeps every routed prompt's text in the tree unless told to evict: bound it (Ray's sizes).
                "do_eviction": True,
                "eviction_threshold_chars": 400_000,
                "eviction_target_chars": 360_000,
                "eviction_interval_secs": 10,
            },
        }
        options["request_router_config"] = RequestRouterConfig(**router)  # its __init__ is typed **dict
    if deployment.autoscaling is not None:
        a = deployment.autoscaling
        options["autoscaling_config"] = {
            "min_replicas": a.min_replicas,
            "max_replicas": a.max_replicas,
            "initial_replicas": max(a.min_replicas, 1),
            "target_ongoing_requests": a.target_ongoing_requests,
            "upscale_delay_s": a.upscale_delay_s,
            "downscale_delay_s": a.downscale_delay_s,
        }
    else:
        options["num_replicas"] = deployment.num_replicas
    return options


# A replica's scale lives in its deployment's options; these fields of any `deployment` mapping in its arguments are
# left out of its code version, so a new scale is applied in place (no restart).
_SCALE_FIELDS = ("num_replicas", "autoscaling")
_PACKAGES = ("serving", "cache", "router", "guards", "drift")


@cache
def _source_digest() -> str:
    """The replicas' code: a change to it (an upgrade, an edit) restarts them on the next deploy."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _without_scale(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: {k: v for k, v in item.items() if k not in _SCALE_FIELDS}
            if key == "deployment" and isinstance(item, dict)
            else _without_scale(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_without_scale(item) for item in value]
    return value


def code_version(*init_args: Any) -> str:
    """What decides whether a redeploy restarts a deployment's replicas (Ray Serve restarts on a new version and
    otherwise updates in place): the code and the replica's arguments, less any replica count or autoscaling
    bounds. Without a version Ray Serve draws a random one on every deploy of `serve.run`, and every replica
    restarts; `Deployment.options(version=...)` takes one only with `_internal=True` in the pinned Ray (2.60), which
    tests/unit/test_scaling.py holds it to."""
    text = json.dumps(_without_scale(list(init_args)), sort_keys=True, default=lambda o: type(o).__name__)
    return hashlib.sha256(f"{_source_digest()}\n{text}".encode()).hexdigest()[:16]


def build_app(config: StackConfig, scale: Mapping[str, DeploymentConfig] | None = None) -> Application:
    """The application; `scale` gives tiers a live scale (`tierserve scale`) over their config's."""
    redis: Any = config.cache.redis.url
    if redis is None:  # keys, limits, budgets and the ledger live there even with the cache off
        redis = RedisServer.options(  # type: ignore[attr-defined]
            version=code_version(str(config.data_dir)), _internal=True
        ).bind(str(config.data_dir / "redis"))
    prefix = config.cache.redis.key_prefix
    scale = scale or {}
    tiers = {}
    for tier in config.tiers:
        args = (tier.model_dump(mode="json"), config.model_path(tier), None, redis, prefix)
        deployment = scale.get(tier.name, tier.deployment)
        tiers[tier.name] = ModelServer.options(  # type: ignore[attr-defined]
            name=f"tier-{tier.name}",
            version=code_version(*args),
            _internal=True,
            **deployment_options(deployment, env=engine_env(deployment.num_gpus), logging=config.logging),
        ).bind(*args)
    # The admin key reaches the gateway replicas through the environment they inherit (a local Ray's workers get
    # the driver's; on a cluster, the nodes' own) or gateway.admin_key_file, never through the config or Ray's
    # runtime env, which Ray keeps in its deployment state.
    # A gateway replica being replaced holds requests waiting on tiers that may be rolling too: it lets them finish
    # for as long as a Ctrl-C drain would, not Ray's default 30 s.
    gateway_options = deployment_options(
        config.gateway.deployment,
        env={"HF_HUB_OFFLINE": "1"},
        logging=config.logging,
        graceful_s=config.gateway.shutdown_drain_s,
    )
    stack = config.model_dump(mode="json")
    return Gateway.options(  # type: ignore[attr-defined,no-any-return]
        name="gateway", version=code_version(stack), _internal=True, **gateway_options
    ).bind(stack, tiers, redis)


def app_builder(args: dict[str, Any]) -> Application:
    """For `serve run configs/serve.yaml`: args = {"config": "path/to/stack.yaml"}."""
    return build_app(load_config(str(args.get("config", "configs/default.yaml"))))
