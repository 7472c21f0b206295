"""serving.config: the shipped configs load; invalid ones fail with a message naming the bad field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from serving.config import AUTO_MODEL, ConfigError, GatewayConfig, StackConfig, admin_key, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tiers": [
            {"name": "small", "model": "some/small-model"},
            {"name": "large", "model": "some/large-model"},
        ],
        "router": {"thresholds": [0.5]},
    }
    data.update(overrides)
    return data


def write(tmp_path: Path, data: Any, name: str = "stack.yaml") -> Path:
    folder = tmp_path / "configs"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name", ["default.yaml", "test.yaml", "gpu.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert isinstance(config, StackConfig)
    assert len(config.router.thresholds) == len(config.tiers) - 1
    assert AUTO_MODEL not in [t.name for t in config.tiers]
    assert config.models_dir.is_absolute() and config.data_dir.is_absolute()


def test_default_config_is_the_embedded_cpu_stack() -> None:
    config = load_config(CONFIGS / "default.yaml")
    assert [t.name for t in config.tiers] == ["small", "large"]
    assert [t.prepared for t in config.tiers] == ["smollm2-135m-instruct", "gemma3-270m"]
    assert all(t.engine.enforce_eager and t.deployment.num_gpus == 0 for t in config.tiers)
    assert config.cache.redis.url is None
    assert config.models_dir == REPO / ".tierserve" / "models"
    assert config.model_path(config.tier("small")) == str(REPO / ".tierserve" / "models" / "smollm2-135m-instruct")


def test_test_config_has_three_tenants_one_shadowed_and_two_small_replicas() -> None:
    config = load_config(CONFIGS / "test.yaml")
    assert sorted(set(config.gateway.api_keys.values())) == ["alpha", "beta", "gamma"]
    assert config.shadow.tenants == {"gamma": 1.0} and config.shadow.share == config.shadow.cache_share == 0
    assert config.tier("small").deployment.num_replicas == 2


def test_gpu_config_names_real_fleets() -> None:
    config = load_config(CONFIGS / "gpu.yaml")
    assert [t.name for t in config.tiers] == ["small", "medium", "large"]
    assert all(t.prepared is None and t.deployment.num_gpus >= 1 for t in config.tiers)
    large = config.tier("large")
    assert large.engine.tensor_parallel_size == large.deployment.num_gpus == 4
    # A hub id is passed to vLLM as is, never joined to models_dir.
    assert config.model_path(large) == "meta-llama/Llama-3.1-70B-Instruct"
    assert config.router.thresholds == [0.229508, 0.351386]


def test_relative_dirs_resolve_against_the_folder_above_the_config_folder(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(models_dir="models-here", data_dir="state/redis"))
    config = load_config(path)
    assert config.models_dir == (tmp_path / "models-here").resolve()
    assert config.data_dir == (tmp_path / "state" / "redis").resolve()


def test_absolute_dirs_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(models_dir=str(tmp_path / "abs-models")))
    assert load_config(path).models_dir == tmp_path / "abs-models"


def test_parse_config_without_base_dir_leaves_paths_alone() -> None:
    config = parse_config(minimal())
    assert config.models_dir == Path(".tierserve/models")
    assert config.tier("large").model == "some/large-model"
    with pytest.raises(KeyError):
        config.tier("medium")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["tiers"][0].update(deployment={"num_replicas": 0}), "tiers.0.deployment.num_replicas"),
        (lambda d: d["tiers"][1].update(engine={"max_model_len": 8}), "tiers.1.engine.max_model_len"),
        (lambda d: d["tiers"][0].update(name="Has Spaces"), "tiers.0.name"),
        (lambda d: d["tiers"][0].update(prepared="gpt-5"), "tiers.0.prepared"),
        (lambda d: d["tiers"][1].pop("model"), "tiers.1.model"),
        (lambda d: d.update(gateway={"port": 70000}), "gateway.port"),
        (lambda d: d.update(gateway={"max_body_bytes": 10}), "gateway.max_body_bytes"),
        (lambda d: d.update(cache={"similarity_threshold": 1.5}), "cache.similarity_threshold"),
        (lambda d: d.update(cache={"redis": {"socket_timeout_s": 0}}), "cache.redis.socket_timeout_s"),
        (lambda d: d.update(router={"thresholds": [0.7, 0.3]}), "router.thresholds"),
        (lambda d: d.update(tiers=[]), "tiers"),
    ],
)
def test_invalid_field_is_named(tmp_path: Path, mutate: Any, field: str) -> None:
    data = minimal()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"  {field}: " in message
    assert str(path) in message


def test_autoscaling_bounds_are_checked() -> None:
    data = minimal()
    data["tiers"][0]["deployment"] = {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}
    with pytest.raises(ConfigError, match=r"tiers\.0\.deployment\.autoscaling.*max_replicas must be >= min_replicas"):
        parse_config(data)


def test_threshold_count_must_match_tiers() -> None:
    with pytest.raises(ConfigError, match=r"router\.thresholds needs 1 value\(s\) for 2 tiers, got 2"):
        parse_config(minimal(router={"thresholds": [0.3, 0.6]}))
    # One tier: no thresholds at all, which the default [0.5] is not.
    with pytest.raises(ConfigError, match=r"needs 0 value\(s\) for 1 tiers, got 1"):
        parse_config({"tiers": [{"name": "only", "model": "m"}]})
    single = parse_config({"tiers": [{"name": "only", "model": "m"}], "router": {"thresholds": []}})
    assert [t.name for t in single.tiers] == ["only"]


def test_duplicate_tier_names_are_rejected() -> None:
    data = minimal(tiers=[{"name": "small", "model": "a"}, {"name": "small", "model": "b"}])
    with pytest.raises(ConfigError, match=r"tier names must be unique.*'small', 'small'"):
        parse_config(data)


def test_auto_is_reserved() -> None:
    data = minimal(tiers=[{"name": "small", "model": "a"}, {"name": "auto", "model": "b"}])
    with pytest.raises(ConfigError, match="'auto' is reserved"):
        parse_config(data)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(tierz=[]), "tierz"),
        (lambda d: d["tiers"][0].update(replicas=2), "tiers.0.replicas"),
        (lambda d: d.update(cache={"redis": {"host": "x"}}), "cache.redis.host"),
        (lambda d: d.update(router={"weights": {"vibes": 1.0}}), "router.weights.vibes"),
    ],
)
def test_unknown_keys_are_forbidden(mutate: Any, field: str) -> None:
    data = minimal()
    mutate(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="inline.yaml")
    assert f"  {field}: Extra inputs are not permitted" in str(caught.value)
    assert "inline.yaml" in str(caught.value)


@pytest.mark.parametrize("text", ["- just\n- a list\n", "42\n", "", "just a string\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="must be a mapping at the top level"):
        load_config(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "tiers: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "configs" / "nope.yaml"
    with pytest.raises(ConfigError, match=r"cannot read config .*nope\.yaml"):
        load_config(missing)


def test_config_error_is_not_a_validation_error_chain(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(gateway={"port": 0}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    # `from None`: the user sees one clean message, not pydantic's traceback.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_admin_key_comes_from_the_environment_or_a_secret_file_never_the_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="admin_key is not read from YAML"):
        GatewayConfig.model_validate({"admin_key": "a-long-enough-admin-key"})
    secret = tmp_path / "admin-key"
    secret.write_text("from-the-mounted-secret-file\n")
    gateway = GatewayConfig(admin_key_file=secret)
    assert admin_key(gateway, {}) == "from-the-mounted-secret-file"
    assert admin_key(gateway, {"TIERSERVE_ADMIN_KEY": "the-environment-wins-0001"}) == "the-environment-wins-0001"
    assert admin_key(GatewayConfig(), {}) is None  # neither: the admin API is off
    with pytest.raises(ConfigError, match="at least 16"):
        admin_key(GatewayConfig(), {"TIERSERVE_ADMIN_KEY": "short"})
    with pytest.raises(ConfigError, match="cannot read gateway.admin_key_file"):
        admin_key(GatewayConfig(admin_key_file=tmp_path / "absent"), {})
