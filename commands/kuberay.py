"""`tierserve kuberay --config configs/gpu.yaml`: a KubeRay `RayService` (ray.io/v1) for a GPU fleet, generated from
the stack config so the two cannot drift apart (tests/unit/test_kuberay.py compares deploy/kuberay/rayservice.yaml
with what this writes).

The layout: the head pod runs Ray's control plane, the HAProxy ingress and every gateway replica (it alone offers
the gateway's custom resource); each tier gets a worker group whose pods offer exactly one replica of that tier (its
GPUs, CPUs, memory and its custom resource), so Ray Serve places a tier's replicas only there and the Ray
autoscaler adds or removes pods as Serve autoscales the tier. Secrets never appear: the admin key and the optional
Redis and PostgreSQL credentials come from one Kubernetes Secret through `secretKeyRef`, and the Redis URL is in the
stack config baked into the image.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from serving.config import ADMIN_KEY_ENV, ConfigError, DeploymentConfig, StackConfig, TierConfig, load_config
from serving.status import APP_NAME  # /admin/status reads Serve's view of the application by this name

DEFAULT_CONFIG = Path("configs/gpu.yaml")
DEFAULT_IMAGE = "tierserve:gpu"
# Where deploy/kuberay/README.md's image keeps the repository (the rayproject/ray images' user is `ray`).
IMAGE_ROOT = PurePosixPath("/home/ray/tierserve")
DEFAULT_NAME = "tierserve"
SECRET_NAME = "tierserve"  # kubectl create secret generic tierserve --from-literal=admin-key=...
MODELS_CLAIM = "tierserve-models"  # a PersistentVolumeClaim holding the pre-downloaded Hugging Face cache
# Ray's own processes beside the replicas: GCS, dashboard, Serve controller and HAProxy on the head; raylet and
# dashboard agent on a worker. Requested on top of what the replicas reserve, so they do not eat into it.
# The object store is set, and counted in them: Ray's default (30 % of the pod's memory) would come on top of what the
# replicas reserve inside the same limit. The stack passes small messages between replicas; 1 GiB is plenty.
OBJECT_STORE_GIB = 1
HEAD_SYSTEM_CPUS, HEAD_SYSTEM_GIB = 2, 4 + OBJECT_STORE_GIB
WORKER_SYSTEM_CPUS, WORKER_SYSTEM_GIB = 1, 2 + OBJECT_STORE_GIB
OBJECT_STORE_PARAM = str(OBJECT_STORE_GIB * 2**30)
# KubeRay's own raylet readiness check. Without a readinessProbe of ours, KubeRay adds a Serve proxy check on port
# 8000 to RayService workers; with the ingress on the head only (proxy_location HeadOnly) no worker runs a proxy and
# the GPU pods would never be Ready.
RAYLET_READY = "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
# cache/redis_connect.py reads these (commands reach cache only through its door, which does not export them).
REDIS_PASSWORD_ENV, SENTINEL_PASSWORD_ENV = "TIERSERVE_REDIS_PASSWORD", "TIERSERVE_SENTINEL_PASSWORD"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# KubeRay refuses longer RayService names: it appends 6 characters for the cluster and "-serve-svc" for a Service.
MAX_NAME = 47


class KubeRayError(Exception):
    """The stack config cannot be laid out as a RayService; the message says what to change."""


@dataclass(frozen=True)
class ManifestOptions:
    image: str = DEFAULT_IMAGE
    config_in_image: str = str(IMAGE_ROOT / DEFAULT_CONFIG)
    ray_version: str = ""
    name: str = DEFAULT_NAME


@dataclass(frozen=True)
class Scale:
    """Replicas of one deployment: at start, at least, and at most including a rolling update's surge."""

    initial: int
    minimum: int
    maximum: int


def scale_of(deployment: DeploymentConfig) -> Scale:
    auto = deployment.autoscaling
    if auto is None:
        low = high = initial = deployment.num_replicas
    else:  # serving/app.py starts an autoscaled deployment at max(min_replicas, 1)
        low, high, initial = auto.min_replicas, auto.max_replicas, max(auto.min_replicas, 1)
    # Ray Serve starts ceil(max_surge_percent% of the target) replacements before old replicas stop; they need room.
    surge = (deployment.max_surge_percent * high + 99) // 100
    return Scale(initial=initial, minimum=low, maximum=high + surge)


def _number(value: float) -> str:
    return f"{value:g}"


def _gib(value: float) -> str:
    return f"{math.ceil(value)}Gi"


def _cpus_param(cpus: float) -> str:
    # Whole CPUs: the Ray autoscaler reads num-cpus with int(); a replica asking for 0.5 still fits in 1.
    return str(math.ceil(cpus))


def _resources_param(owner: str, resources: dict[str, float]) -> str:
    # The Ray autoscaler reads this param as JSON of whole numbers (autoscaling_config._get_custom_resources) and
    # stops on anything else.
    fractional = {key: value for key, value in resources.items() if not float(value).is_integer()}
    if fractional:
        raise KubeRayError(
            f"{owner}.deployment.resources: a node offers whole custom resources to the Ray autoscaler, and "
            f"{fractional} per pod is not (use 1 per replica)"
        )
    plain = {key: int(value) for key, value in sorted(resources.items())}
    # KubeRay pastes rayStartParams into a shell command: single-quoted JSON, as KubeRay quotes what it adds itself.
    return "'" + json.dumps(plain, separators=(",", ":")) + "'"


def _loopback(host: str) -> bool:
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_redis(stack: StackConfig) -> None:
    url = stack.cache.redis.url
    if url is None:
        raise KubeRayError(
            "cache.redis.url is unset: on a cluster every gateway and tier replica must share one operator-run Redis"
        )
    parts = urlsplit(url)
    # A Sentinel URL names several host:port pairs; each is read as a URL of its own (brackets, ports, no password).
    hosts = [urlsplit(f"//{item}").hostname or "" for item in parts.netloc.rsplit("@", 1)[-1].split(",") if item]
    if parts.scheme == "unix" or not hosts or any(not host or _loopback(host) for host in hosts):
        raise KubeRayError(
            f"cache.redis.url points at this node's own Redis ({parts.scheme}://{','.join(hosts)}): give a name every "
            "pod resolves, e.g. redis://redis:6379/0 for a Service `redis`"
        )


def _placement(owner: str, deployment: DeploymentConfig, example: str) -> dict[str, float]:
    if not deployment.resources:
        raise KubeRayError(
            f"{owner}.deployment.resources is empty: give it a custom resource (e.g. {{{example}: 1}}) so its "
            "replicas land only on the pods meant for them"
        )
    if deployment.memory_gb is None:
        raise KubeRayError(f"{owner}.deployment.memory_gb is unset: the pods' memory is sized from it")
    return dict(deployment.resources)


def _tier_group_name(tier: TierConfig) -> str:
    name = "tier-" + re.sub(r"[._]", "-", tier.name)
    if not _DNS_LABEL.match(name) or len(name) > 63:  # it becomes the value of the pods' ray.io/group label
        raise KubeRayError(f"tier {tier.name!r} gives no valid worker group name ({name!r})")
    return name


def _env(value_env: dict[str, str], secrets: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in value_env.items()]
    for variable, key, optional in secrets:
        ref: dict[str, Any] = {"name": SECRET_NAME, "key": key}
        if optional:
            ref["optional"] = True
        env.append({"name": variable, "valueFrom": {"secretKeyRef": ref}})
    return env


def _ray_environment(stack: StackConfig) -> dict[str, str]:
    """What serving/ingress.py sets before `tierserve serve` starts Ray, less its per-stack files and ports (a pod
    runs one stack). Ray reads these when its processes start, on every node alike (KubeRay's high-throughput
    sample sets them on the head and the workers)."""
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    gateway = stack.gateway
    if gateway.ingress == "haproxy":
        if gateway.throughput_optimized:
            env |= {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_LOG_TO_STDERR": "1"}
        env |= {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_NBTHREAD": str(gateway.haproxy_threads),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": _number(gateway.drain_s),
        }
    return env


def serve_config(stack: StackConfig, options: ManifestOptions) -> dict[str, Any]:
    """The Ray Serve config (ray.serve.schema.ServeDeploySchema) KubeRay deploys: configs/serve.yaml's application,
    with the ingress on the head (where the gateway replicas are) on all of the pod's interfaces."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "0.0.0.0", "port": stack.gateway.port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "serving.app:app_builder",
                "args": {"config": options.config_in_image},
            }
        ],
    }


def _head_group(stack: StackConfig, options: ManifestOptions, env: dict[str, str]) -> dict[str, Any]:
    gateway = stack.gateway.deployment
    offered = _placement("gateway", gateway, "ingress")
    scale = scale_of(gateway)
    steady = gateway.autoscaling.max_replicas if gateway.autoscaling else gateway.num_replicas
    memory_gb = gateway.memory_gb or 0.0
    # Ray's logical capacity and the memory limit leave room for a rolling update's surge at full scale; the requests
    # are what runs at full scale outside an update (the surge shares the CPUs for the minutes it lasts).
    start_params = {
        "num-cpus": _cpus_param(gateway.num_cpus * scale.maximum),
        "num-gpus": "0",  # tier replicas never land on the head, even where its node has GPUs
        "resources": _resources_param("gateway", {key: value * scale.maximum for key, value in offered.items()}),
        "object-store-memory": OBJECT_STORE_PARAM,
    }
    secrets = [
        (ADMIN_KEY_ENV, "admin-key", False),
        (REDIS_PASSWORD_ENV, "redis-password", True),
        (SENTINEL_PASSWORD_ENV, "sentinel-password", True),
        (stack.audit.postgres_dsn_env, "audit-dsn", True),
    ]
    container = {
        "name": "ray-head",
        "image": options.image,
        "env": _env(env, secrets),
        "ports": [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            {"containerPort": stack.gateway.port, "name": "serve"},  # KubeRay's serve Service targets this name
        ],
        "resources": {
            "requests": {
                "cpu": _number(math.ceil(gateway.num_cpus * steady) + HEAD_SYSTEM_CPUS),
                "memory": _gib(memory_gb * steady + HEAD_SYSTEM_GIB),
            },
            "limits": {"memory": _gib(memory_gb * scale.maximum + HEAD_SYSTEM_GIB)},
        },
        # The gateways' audit segments (audit.dir defaults to data_dir/audit): the image's /var/lib is not the ray
        # user's. They last as long as the pod; set audit-dsn in the Secret to ship them to PostgreSQL.
        "volumeMounts": [{"name": "tierserve-data", "mountPath": str(stack.data_dir)}],
    }
    return {
        "rayStartParams": start_params,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": options.name, "tierserve/role": "ingress"}},
            "spec": {"containers": [container], "volumes": [{"name": "tierserve-data", "emptyDir": {}}]},
        },
    }


def _worker_group(
    stack: StackConfig, tier: TierConfig, options: ManifestOptions, env: dict[str, str]
) -> dict[str, Any]:
    deployment = tier.deployment
    owner = f"tiers[{tier.name}]"
    offered = _placement(owner, deployment, f"tier_{tier.name}")
    if deployment.num_gpus < 1 or not float(deployment.num_gpus).is_integer():
        raise KubeRayError(
            f"{owner}.deployment.num_gpus is {deployment.num_gpus:g}: a worker pod holds one replica, so a whole "
            "number of GPUs, at least 1 (the manifest is for a GPU fleet with CUDA vLLM in the image)"
        )
    gpus = str(int(deployment.num_gpus))
    scale = scale_of(deployment)
    memory = _gib((deployment.memory_gb or 0.0) + WORKER_SYSTEM_GIB)
    hf_home = str(stack.models_dir / "huggingface")
    secrets = [(REDIS_PASSWORD_ENV, "redis-password", True), (SENTINEL_PASSWORD_ENV, "sentinel-password", True)]
    container = {
        "name": "ray-worker",
        "image": options.image,
        # GPU replicas run with HF_HUB_OFFLINE=1 (serving/app.py): the weights must already be in this cache.
        "env": _env(env | {"HF_HOME": hf_home}, secrets),
        # No CPU limit: throttling the engine's scheduler loop shows up as token latency.
        "resources": {
            "requests": {
                "cpu": _number(math.ceil(deployment.num_cpus) + WORKER_SYSTEM_CPUS),
                "memory": memory,
                "nvidia.com/gpu": gpus,
            },
            "limits": {"memory": memory, "nvidia.com/gpu": gpus},
        },
        "readinessProbe": {
            "exec": {"command": ["bash", "-c", RAYLET_READY]},
            "initialDelaySeconds": 10,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 10,
        },
        "volumeMounts": [
            {"name": "models", "mountPath": str(stack.models_dir)},
            # vLLM's tensor-parallel workers and NCCL talk through shared memory; a pod's default /dev/shm is 64 MB.
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    return {
        "groupName": _tier_group_name(tier),
        "replicas": scale.initial,
        "minReplicas": scale.minimum,
        "maxReplicas": scale.maximum,
        "rayStartParams": {
            "num-cpus": _cpus_param(deployment.num_cpus),
            "num-gpus": gpus,
            "resources": _resources_param(owner, offered),
            "object-store-memory": OBJECT_STORE_PARAM,
        },
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": options.name, "tierserve/tier": tier.name}},
            "spec": {
                "containers": [container],
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": [
                    {"name": "models", "persistentVolumeClaim": {"claimName": MODELS_CLAIM}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                ],
            },
        },
    }


def _check_resources_are_unique(stack: StackConfig) -> None:
    owners: dict[str, str] = {}
    for owner, deployment in [("gateway", stack.gateway.deployment)] + [(t.name, t.deployment) for t in stack.tiers]:
        for resource in deployment.resources:
            if resource in owners:
                raise KubeRayError(
                    f"custom resource {resource!r} is asked for by {owners[resource]} and {owner}: each tier and the "
                    "gateway need their own, or replicas land on another's pods"
                )
            owners[resource] = owner


def rayservice(stack: StackConfig, options: ManifestOptions) -> dict[str, Any]:
    """The RayService for `stack`; KubeRayError when the config cannot be laid out on one pod per tier replica."""
    if not _DNS_LABEL.match(options.name) or len(options.name) > MAX_NAME:
        raise KubeRayError(f"RayService name {options.name!r}: lowercase letters, digits and '-', {MAX_NAME} at most")
    _check_redis(stack)
    _check_resources_are_unique(stack)
    env = _ray_environment(stack)
    workers = [_worker_group(stack, tier, options, env) for tier in stack.tiers]
    names = [group["groupName"] for group in workers]
    if len(set(names)) != len(names):
        raise KubeRayError(f"tier names give the same worker group name twice: {names}")
    cluster: dict[str, Any] = {
        "rayVersion": options.ray_version,
        # The Ray autoscaler adds a tier's pods when Serve autoscales the tier past the pods there are.
        "enableInTreeAutoscaling": any(g["minReplicas"] != g["maxReplicas"] for g in workers),
        "headGroupSpec": _head_group(stack, options, env),
        "workerGroupSpecs": workers,
    }
    serve = yaml.safe_dump(serve_config(stack, options), sort_keys=False)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": options.name, "labels": {"app.kubernetes.io/name": options.name}},
        "spec": {"serveConfigV2": serve, "rayClusterConfig": cluster},
    }


def _block_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def render(manifest: dict[str, Any], header: str) -> str:
    """YAML with `header` as comments and serveConfigV2 as a literal block, readable like KubeRay's samples."""
    # A subclass, so that SafeDumper's own representers stay as they are for everyone else.
    dumper: type[yaml.SafeDumper] = type("_ManifestDumper", (yaml.SafeDumper,), {})
    dumper.add_representer(str, _block_strings)
    body = yaml.dump(manifest, Dumper=dumper, sort_keys=False, width=120)
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + body


def generate(
    config: Path,
    *,
    image: str = DEFAULT_IMAGE,
    config_in_image: str | None = None,
    name: str = DEFAULT_NAME,
    out: Path | None = None,
) -> tuple[dict[str, Any], str]:
    """The manifest for the config file at `config` and its text with a header saying how it was made; what the
    command writes and what tests/unit/test_kuberay.py compares with the checked-in file."""
    stack = load_config(config)
    in_image = config_in_image or str(IMAGE_ROOT / "configs" / config.name)
    options = ManifestOptions(image=image, config_in_image=in_image, ray_version=version("ray"), name=name)
    manifest = rayservice(stack, options)
    command = f"tierserve kuberay --config {config}"
    command += f" --image {image}" if image != DEFAULT_IMAGE else ""
    command += f" --config-in-image {in_image}" if config_in_image else ""
    command += f" --name {name}" if name != DEFAULT_NAME else ""
    command += f" --out {out}" if out else ""
    header = (
        f"A KubeRay RayService for the stack config {config}, generated by:\n"
        f"  {command}\n"
        "Do not edit: change the config and regenerate (tests/unit/test_kuberay.py checks they agree); patch it\n"
        "with kustomize for what is your cluster's (node selectors, a registry).\n"
        f"Image {image} holds the repository at {IMAGE_ROOT} and the config at {in_image}.\n"
        f"Needs the KubeRay operator (v1.4 or later), the Secret {SECRET_NAME} and the claim {MODELS_CLAIM}:\n"
        "see deploy/kuberay/README.md. Then:\n"
        f"  kubectl apply -f {out or 'rayservice.yaml'}"
    )
    return manifest, render(manifest, header)


def _summary(manifest: dict[str, Any]) -> Table:
    cluster = manifest["spec"]["rayClusterConfig"]
    table = Table(title=f"RayService {manifest['metadata']['name']}: node groups", title_justify="left")
    for column in ("group", "pods", "Ray CPUs", "GPUs", "memory", "custom resources"):
        table.add_column(column)
    groups = [("head", cluster["headGroupSpec"], "1")] + [
        (g["groupName"], g, f"{g['minReplicas']}..{g['maxReplicas']} (starts {g['replicas']})")
        for g in cluster["workerGroupSpecs"]
    ]
    for name, group, pods in groups:
        params = group["rayStartParams"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        table.add_row(
            name, pods, params["num-cpus"], params["num-gpus"], limits["memory"], params["resources"].strip("'")
        )
    return table


def add_kuberay_command(app: typer.Typer) -> None:
    @app.command("kuberay")
    def kuberay(
        config: Annotated[Path, typer.Option("--config", "-c", help="Stack config YAML.")] = DEFAULT_CONFIG,
        image: Annotated[str, typer.Option(help="Container image with tierserve (gpu extra) and Ray.")] = DEFAULT_IMAGE,
        config_in_image: Annotated[
            str | None,
            typer.Option(
                help=f"The stack config's path inside the image (default: {IMAGE_ROOT}/configs/ + its file name)."
            ),
        ] = None,
        name: Annotated[str, typer.Option(help="The RayService's name.")] = DEFAULT_NAME,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    ) -> None:
        """A KubeRay RayService (head: ingress + gateways; one GPU worker group per tier) from a stack config."""
        console = Console(stderr=True)
        try:
            manifest, text = generate(config, image=image, config_in_image=config_in_image, name=name, out=out)
        except (ConfigError, KubeRayError) as error:
            console.print(Text(str(error), style="red"), soft_wrap=True)
            raise typer.Exit(2) from None
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            console.print(f"wrote {out}")
        console.print(_summary(manifest))
