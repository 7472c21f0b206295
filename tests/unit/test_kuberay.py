"""deploy/kuberay/rayservice.yaml: generated from configs/gpu.yaml (and kept so), a Ray Serve config Serve accepts, node
groups the Ray autoscaler reads the way the tiers need, and a RayService that KubeRay's CRD accepts.

The CRD check reads KubeRay's published `ray.io_rayservices.yaml` from TIERSERVE_KUBERAY_CRD or
../shared/data/kuberay/ (it is not kept in this repository) and is skipped when neither is there.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr
from ray.serve.schema import ServeDeploySchema
from typer import Typer
from typer.testing import CliRunner

import commands.kuberay as kuberay
from cache.redis_connect import PASSWORD_ENV, SENTINEL_PASSWORD_ENV
from commands.kuberay import (
    IMAGE_ROOT,
    KubeRayError,
    ManifestOptions,
    add_kuberay_command,
    generate,
    rayservice,
    scale_of,
)
from serving.app import app_builder, build_app
from serving.config import ADMIN_KEY_ENV, StackConfig, load_config, parse_config
from serving.status import APP_NAME

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path("configs/gpu.yaml")
MANIFEST = Path("deploy/kuberay/rayservice.yaml")
CRD_ENV = "TIERSERVE_KUBERAY_CRD"
SHARED_CRD = ROOT.parent / "shared" / "data" / "kuberay" / "ray.io_rayservices.yaml"


@pytest.fixture(autouse=True)
def _at_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # The header names the config as the command was given it: relative to the repository root.
    monkeypatch.chdir(ROOT)


def _manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return loaded


def _stack() -> StackConfig:
    return load_config(CONFIG)


def test_the_checked_in_manifest_is_what_the_command_generates() -> None:
    manifest, text = generate(CONFIG, out=MANIFEST)
    assert text == MANIFEST.read_text(), (
        "deploy/kuberay/rayservice.yaml is stale: run `tierserve kuberay --config configs/gpu.yaml "
        "--out deploy/kuberay/rayservice.yaml`"
    )
    assert yaml.safe_load(text) == manifest


def test_the_command_prints_the_manifest_and_refuses_a_config_it_cannot_lay_out(tmp_path: Path) -> None:
    app = Typer()
    app.callback()(lambda: None)  # keep `kuberay` a subcommand, as under `tierserve`
    add_kuberay_command(app)
    result = CliRunner().invoke(app, ["kuberay", "--config", str(CONFIG)])
    assert result.exit_code == 0, result.output
    assert "apiVersion: ray.io/v1\nkind: RayService\n" in result.stdout
    assert yaml.safe_load(result.stdout) == _manifest()
    bad = yaml.safe_load(CONFIG.read_text())
    bad["cache"]["redis"]["url"] = "redis://127.0.0.1:6379/0"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "gpu.yaml").write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(app, ["kuberay", "--config", str(tmp_path / "configs" / "gpu.yaml")])
    assert result.exit_code == 2 and "redis" in result.output and "apiVersion" not in result.stdout


def test_serve_config_is_a_valid_serve_deploy_config_naming_the_stack_config() -> None:
    manifest = _manifest()
    serve = ServeDeploySchema.model_validate(yaml.safe_load(manifest["spec"]["serveConfigV2"]))
    [application] = serve.applications
    assert application.name == APP_NAME  # /admin/status looks the application up by this name
    assert application.import_path == "serving.app:app_builder"
    assert application.route_prefix == "/"
    in_image = PurePosixPath(application.args["config"])
    assert in_image == IMAGE_ROOT / CONFIG.as_posix()  # the image holds the repository at IMAGE_ROOT
    # What Serve builds from those args is the application `tierserve serve` would build from the same file.
    built = app_builder({"config": str(ROOT / in_image.relative_to(IMAGE_ROOT))})
    assert built._bound_deployment.init_args[0] == build_app(_stack())._bound_deployment.init_args[0]
    # The ingress runs where the gateways are (the head) and listens where KubeRay's serve Service sends traffic.
    head = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert serve.proxy_location.value == "HeadOnly" and serve.http_options.host == "0.0.0.0"
    assert {"name": "serve", "containerPort": serve.http_options.port} in head["ports"]


def _demand(ray_actor_options: dict[str, Any]) -> dict[str, float]:
    """What one replica asks Ray for, in the autoscaler's resource names."""
    demand = {
        "CPU": ray_actor_options.get("num_cpus", 1),
        "GPU": ray_actor_options.get("num_gpus", 0),
        "memory": ray_actor_options.get("memory", 0),
        **ray_actor_options.get("resources", {}),
    }
    return {name: amount for name, amount in demand.items() if amount > 0}


def _fits(demand: dict[str, float], offered: dict[str, float]) -> int:
    """How many such replicas one node of this type holds."""
    return min(math.floor(offered.get(name, 0) / amount) for name, amount in demand.items())


def test_each_tier_fits_only_its_own_worker_group_and_the_gateway_only_the_head() -> None:
    stack = _stack()
    cluster = _manifest()["spec"]["rayClusterConfig"]
    # The Ray autoscaler's own reading of the groups (what it scales pods from), from the manifest as applied.
    node_types = _derive_autoscaling_config_from_ray_cr(
        {"metadata": {"name": "tierserve", "namespace": "tierserve"}, "spec": cluster}
    )["available_node_types"]
    # What Serve asks Ray for per replica, from the application itself.
    gateway = build_app(stack)._bound_deployment
    demands = {"headgroup": ("gateway", _demand(gateway.ray_actor_options), stack.gateway.deployment)}
    for tier in stack.tiers:
        options = gateway.init_args[1][tier.name]._bound_deployment.ray_actor_options
        demands[f"tier-{tier.name}"] = (tier.name, _demand(options), tier.deployment)
        assert tier.deployment.resources, f"{tier.name} has no custom resource: it could land on any GPU pod"
    assert set(node_types) == set(demands)
    for group, (owner, demand, deployment) in demands.items():
        fitting = {name for name, node in node_types.items() if _fits(demand, node["resources"]) >= 1}
        assert fitting == {group}, f"{owner}'s replicas fit {sorted(fitting)}"
        offering = {name for name, node in node_types.items() if set(deployment.resources) & set(node["resources"])}
        assert offering == {group}, f"{owner}'s custom resources are offered by {sorted(offering)}"
        node, scale = node_types[group], scale_of(deployment)
        if group == "headgroup":
            # One head holds the gateway at full scale plus a rolling update's surge, and offers no GPU.
            assert _fits(demand, node["resources"]) == scale.maximum and node["resources"]["GPU"] == 0
            continue
        # One replica per pod, with the GPUs it reserves and none idle; pods scale with the replicas.
        assert _fits(demand, node["resources"]) == 1
        assert node["resources"]["GPU"] == deployment.num_gpus == demand["GPU"]
        assert (node["min_workers"], node["max_workers"]) == (scale.minimum, scale.maximum)
        container = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == group)["template"]["spec"]
        limits = container["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == str(int(deployment.num_gpus))
    assert cluster["enableInTreeAutoscaling"] is True  # the tiers autoscale: pods must follow


def test_secrets_come_from_the_secret_and_the_names_are_the_ones_the_stack_reads() -> None:
    assert (kuberay.REDIS_PASSWORD_ENV, kuberay.SENTINEL_PASSWORD_ENV) == (PASSWORD_ENV, SENTINEL_PASSWORD_ENV)
    manifest = _manifest()
    cluster = manifest["spec"]["rayClusterConfig"]
    containers = [cluster["headGroupSpec"]["template"]["spec"]["containers"][0]] + [
        group["template"]["spec"]["containers"][0] for group in cluster["workerGroupSpecs"]
    ]
    for container in containers:
        for variable in container["env"]:
            if re.search(r"KEY|PASSWORD|DSN|TOKEN", variable["name"]):
                assert "value" not in variable and variable["valueFrom"]["secretKeyRef"]["name"] == "tierserve"
    head_env = {variable["name"]: variable for variable in containers[0]["env"]}
    admin = head_env[ADMIN_KEY_ENV]["valueFrom"]["secretKeyRef"]
    assert admin == {"name": "tierserve", "key": "admin-key"}  # required: the pod does not start without it
    assert head_env[_stack().audit.postgres_dsn_env]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "redis://" not in MANIFEST.read_text()  # the URL is the stack config's, in the image


def _gpu_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["cache"]["redis"].update(url="redis://localhost:6379/0"), "a name every pod resolves"),
        (lambda d: d["cache"]["redis"].update(url="redis+sentinel://10.0.0.5:26379,[::1]:26379/m"), "own Redis"),
        (lambda d: d["cache"]["redis"].pop("url"), "unset"),
        (lambda d: d["tiers"][1]["deployment"].pop("resources"), r"tiers\[medium\].deployment.resources is empty"),
        (lambda d: d["tiers"][1]["deployment"].update(resources={"tier_small": 1}), "asked for by small and medium"),
        (lambda d: d["tiers"][0]["deployment"].update(num_gpus=0.5), "whole number of GPUs"),
        (lambda d: d["tiers"][0]["deployment"].update(resources={"tier_small": 0.5}), "whole custom resources"),
        (lambda d: d["gateway"]["deployment"].pop("resources"), "gateway.deployment.resources is empty"),
        (lambda d: d["gateway"]["deployment"].pop("memory_gb"), "memory_gb is unset"),
    ],
)
def test_a_config_that_cannot_be_laid_out_is_refused_with_the_field_named(change: Any, message: str) -> None:
    data = _gpu_data()
    change(data)
    with pytest.raises(KubeRayError, match=message):
        rayservice(parse_config(data), ManifestOptions(ray_version="2.60.0"))


def test_surge_and_fixed_replicas_size_the_groups() -> None:
    data = _gpu_data()
    data["tiers"][0]["deployment"] |= {"num_replicas": 3, "max_surge_percent": 50}
    del data["tiers"][0]["deployment"]["autoscaling"]
    for tier in data["tiers"][1:]:
        tier["deployment"] |= {"num_replicas": 1}
        del tier["deployment"]["autoscaling"]
    cluster = rayservice(parse_config(data), ManifestOptions(ray_version="2.60.0"))["spec"]["rayClusterConfig"]
    small = cluster["workerGroupSpecs"][0]
    assert (small["replicas"], small["minReplicas"], small["maxReplicas"]) == (3, 3, 5)  # 50 % of 3, rounded up
    assert cluster["enableInTreeAutoscaling"] is True  # the surge's pods must be added by someone
    data["tiers"][0]["deployment"]["max_surge_percent"] = 0
    cluster = rayservice(parse_config(data), ManifestOptions(ray_version="2.60.0"))["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is False


# --- KubeRay's CRD -----------------------------------------------------------------------------------------------


def _crd_path() -> Path | None:
    named = os.environ.get(CRD_ENV)
    if named:
        return Path(named)
    return SHARED_CRD if SHARED_CRD.is_file() else None


def _as_json_schema(node: Any) -> Any:
    """A Kubernetes structural schema as the API server applies it, in JSON Schema terms: an object with declared
    properties takes no others (the server drops them; `kubectl apply --validate=strict` refuses them) unless it says
    x-kubernetes-preserve-unknown-fields; `nullable` admits null; int-or-string admits both. The other x-kubernetes-*
    keywords (list types, map types, CEL rules) are unknown to jsonschema and ignored."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _as_json_schema(value) for key, value in node.items()}
    declared = "properties" in schema and "additionalProperties" not in schema
    if declared and not schema.get("x-kubernetes-preserve-unknown-fields"):
        extra = {"apiVersion", "kind", "metadata"} if schema.get("x-kubernetes-embedded-resource") else set()
        schema["properties"] |= {key: {} for key in extra - set(schema["properties"])}
        schema["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
        schema.pop("type", None)
        schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    return schema


def _crd_validator() -> jsonschema.Draft7Validator:
    path = _crd_path()
    if path is None or not path.is_file():
        pytest.skip(
            f"no KubeRay CRD: set {CRD_ENV} to ray-operator/config/crd/bases/ray.io_rayservices.yaml of a KubeRay "
            f"release, or place it at {SHARED_CRD} (it is not kept in this repository)"
        )
    crd = yaml.safe_load(path.read_text())
    assert crd["spec"]["names"]["kind"] == "RayService"
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _as_json_schema(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def test_the_manifest_is_valid_against_kuberays_crd() -> None:
    validator = _crd_validator()
    manifest = _manifest()
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]
    assert errors == []
    # The check has teeth: a misspelt field and a wrong type are caught, as the API server would.
    misspelt = copy.deepcopy(manifest)
    misspelt["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplica"] = 1
    assert not validator.is_valid(misspelt)
    wrong = copy.deepcopy(manifest)
    wrong["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] = "8"
    assert not validator.is_valid(wrong)
    quantity = copy.deepcopy(manifest)  # int-or-string: a number is a quantity as well as a string
    head = quantity["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["resources"]["requests"]["cpu"] = 18
    assert validator.is_valid(quantity)
