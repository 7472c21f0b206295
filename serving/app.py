"""`build_app(config)`: the Ray Serve application; `app_builder` is the import_path for serve run/deploy."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serving.config import DeploymentConfig, LoggingConfig, StackConfig, load_config
from serving.deployments import Gateway, ModelServer, RedisServer
from serving.engine import CPU_ENGINE_ENV


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


def _engine_env(num_gpus: float) -> dict[str, str]:
    # On CPU, vLLM runs eager and in-process; GPU replicas keep vLLM's defaults.
    return dict(CPU_ENGINE_ENV) if num_gpus == 0 else {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def build_app(config: StackConfig) -> Application:
    redis: Any = config.cache.redis.url
    if redis is None:  # keys, limits, budgets and the ledger live there even with the cache off
        redis = RedisServer.bind(str(config.data_dir / "redis"))  # type: ignore[attr-defined]
    prefix = config.cache.redis.key_prefix
    tiers = {
        tier.name: ModelServer.options(  # type: ignore[attr-defined]
            name=f"tier-{tier.name}",
            **deployment_options(tier.deployment, env=_engine_env(tier.deployment.num_gpus), logging=config.logging),
        ).bind(tier.model_dump(mode="json"), config.model_path(tier), None, redis, prefix)
        for tier in config.tiers
    }
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
    return Gateway.options(name="gateway", **gateway_options).bind(  # type: ignore[attr-defined,no-any-return]
        config.model_dump(mode="json"), tiers, redis
    )


def app_builder(args: dict[str, Any]) -> Application:
    """For `serve run configs/serve.yaml`: args = {"config": "path/to/stack.yaml"}."""
    return build_app(load_config(str(args.get("config", "configs/default.yaml"))))
