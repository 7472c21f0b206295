"""build_app turns the stack config into Ray Serve deployment options (no Ray cluster needed)."""

from __future__ import annotations

import json
import pickle

import pytest
from pydantic import ValidationError

from serving.app import build_app, deployment_options
from serving.config import AutoscalingConfig, DeploymentConfig, GatewayConfig, RayConfig, load_config
from serving.contract import TierRequest
from serving.engine import CPU_ENGINE_ENV


def test_each_tier_gets_its_replicas_resources_env_and_logging() -> None:
    config = load_config("configs/test.yaml")
    config = config.model_copy(update={"logging": config.logging.model_copy(update={"encoding": "JSON"})})
    gateway = build_app(config)._bound_deployment
    assert gateway.name == "gateway"
    assert gateway._deployment_config.logging_config["encoding"] == "JSON"
    tiers = gateway.init_args[1]
    small = tiers["small"]._bound_deployment
    assert small.name == "tier-small"
    assert small._deployment_config.num_replicas == 2
    assert small.ray_actor_options["num_cpus"] == 0.5
    assert small.ray_actor_options["runtime_env"]["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert small._deployment_config.logging_config["encoding"] == "JSON"


def test_autoscaling_replaces_a_fixed_replica_count() -> None:
    options = deployment_options(
        DeploymentConfig(num_gpus=1, autoscaling=AutoscalingConfig(min_replicas=1, max_replicas=4)),
        env={"A": "1"},
    )
    assert "num_replicas" not in options
    assert options["autoscaling_config"]["max_replicas"] == 4
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0, "runtime_env": {"env_vars": {"A": "1"}}}


def test_gpu_replicas_do_not_get_the_cpu_engine_environment() -> None:
    gateway = build_app(load_config("configs/gpu.yaml"))._bound_deployment
    large = gateway.init_args[1]["large"]._bound_deployment
    env = large.ray_actor_options["runtime_env"]["env_vars"]
    assert large.ray_actor_options["num_gpus"] == 4
    assert not set(CPU_ENGINE_ENV) - {"HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS"} & set(env)


def test_rolling_updates_start_replacements_first_and_let_gateways_drain() -> None:
    gateway = build_app(load_config("configs/default.yaml"))._bound_deployment
    small = gateway.init_args[1]["small"]._bound_deployment
    assert small._deployment_config.max_surge_percent == 0  # a second engine may not fit: stop first
    assert gateway._deployment_config.max_surge_percent == 100
    assert (
        gateway._deployment_config.graceful_shutdown_timeout_s
        == load_config("configs/default.yaml").gateway.shutdown_drain_s
    )
    gpu = build_app(load_config("configs/gpu.yaml"))._bound_deployment
    assert gpu.init_args[1]["large"]._bound_deployment._deployment_config.max_surge_percent == 0


def test_custom_resources_and_one_replica_per_node_reach_ray() -> None:
    deployment = DeploymentConfig(resources={"tier_large": 1}, max_replicas_per_node=1)
    options = deployment_options(deployment)
    assert options["ray_actor_options"]["resources"] == {"tier_large": 1.0}
    assert options["max_replicas_per_node"] == 1
    assert "resources" not in deployment_options(DeploymentConfig())["ray_actor_options"]


def test_cpu_and_gpu_are_not_custom_resources() -> None:
    with pytest.raises(ValidationError, match="num_cpus/num_gpus"):
        DeploymentConfig(resources={"GPU": 1})
    with pytest.raises(ValidationError, match=">= 0"):
        DeploymentConfig(resources={"tier_large": -1})


def test_prefix_aware_routing_uses_ray_serve_llms_router() -> None:
    options = deployment_options(DeploymentConfig(request_router="prefix_aware", prefix_imbalance=3))
    router = options["request_router_config"]
    assert router.request_router_class == "ray.serve.llm.request_router:PrefixCacheAffinityRouter"
    assert router.request_router_kwargs["imbalanced_threshold"] == 3
    assert router.request_router_kwargs["do_eviction"] is True  # the prefix tree stays bounded
    assert router.get_request_router_class().__name__ == "PrefixCacheAffinityRouter"
    assert "request_router_config" not in deployment_options(DeploymentConfig())


def test_the_router_reads_the_conversation_from_a_tier_request() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"text": "yo"}]}]}
    assert TierRequest("chat", json.dumps(chat).encode(), "r1").prompt == "user: hi\nassistant: yo\n"
    assert TierRequest("completion", b'{"prompt": "Once"}', "r2").prompt == "Once"
    assert TierRequest("completion", b'{"prompt": [1, 2]}', "r3").prompt == "[1, 2]"
    # Never empty: the router divides by the length.
    assert TierRequest("chat", b"[]", "r4").prompt == "\0"
    assert TierRequest("chat", b'{"messages": []}', "r5").prompt == "\0"


def test_the_router_sees_the_tenants_salt_and_the_replica_never_gets_the_parsed_prompt() -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    request = TierRequest("chat", body, "r1", cache_salt="tenant-a")
    assert request.prompt == "tenant-a\nuser: hi\n"
    copy = pickle.loads(pickle.dumps(request))
    assert copy == request and "prompt" not in copy.__dict__


def test_prefix_routing_is_for_tiers_only() -> None:
    with pytest.raises(ValidationError, match="for tiers"):
        GatewayConfig(deployment=DeploymentConfig(request_router="prefix_aware"))


def test_a_ray_client_url_is_refused_with_what_to_give_instead() -> None:
    with pytest.raises(ValidationError, match="run `tierserve serve` on a node"):
        RayConfig(address="ray://head:10001")
    assert RayConfig(address="auto").address == "auto"
