"""The one typed configuration of the stack, loaded once from a YAML file in configs/.

Every other module receives the part it needs; nothing else reads files or environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cache import CacheConfig
from drift.config import DriftConfig
from guards.config import GuardsConfig
from router import RouterConfig
from serving.audit.config import AuditConfig
from serving.tenancy.config import TenancyConfig

AUTO_MODEL = "auto"

# Models that `tierserve models prepare` can build offline from GGUF files shipped in PyPI packages.
PreparedModel = Literal["smollm2-135m-instruct", "gemma3-270m"]


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message names the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutoscalingConfig(_Strict):
    min_replicas: int = Field(default=1, ge=0, description="Replicas kept when idle.")
    max_replicas: int = Field(default=2, ge=1, description="Upper bound under load.")
    target_ongoing_requests: float = Field(
        default=4.0, gt=0, description="In-flight requests per replica that the autoscaler aims for."
    )
    upscale_delay_s: float = Field(default=10.0, ge=0, description="Sustained load before adding a replica.")
    downscale_delay_s: float = Field(default=120.0, ge=0, description="Idle time before removing one.")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class DeploymentConfig(_Strict):
    """How Ray Serve runs one tier (or the gateway)."""

    num_replicas: int = Field(default=1, ge=1, description="Fixed replica count (ignored with autoscaling).")
    autoscaling: AutoscalingConfig | None = Field(default=None, description="Autoscale instead of fixed.")
    num_cpus: float = Field(default=1.0, ge=0, description="Ray logical CPUs reserved per replica.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs reserved per replica.")
    memory_gb: float | None = Field(default=None, gt=0, description="Ray memory reservation per replica.")
    max_ongoing_requests: int = Field(default=32, ge=1, description="Requests in flight per replica.")
    max_surge_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Extra replicas a rolling update may start before old ones stop (Ray Serve's max_surge_percent). "
        "100 starts every replacement first, so a redeploy never leaves the deployment without a replica, at the "
        "cost of running both for a while: the gateway's default (cheap, stateless). 0 stops an old replica first: "
        "the tiers' default, since a second vLLM engine may not fit (it ran this 24 GB machine out of memory with "
        "two tiers; on GPUs a spare GPU is rarely there); a tier's fallback chain covers the gap.",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables for the replica process (runtime_env)."
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources per replica, e.g. {tier_large: 1}: the replica is placed only on nodes "
        "started with that resource (`ray start --resources '{\"tier_large\": 4}'`), which is how a tier is pinned to "
        "the nodes meant for it on a cluster.",
    )
    max_replicas_per_node: int | None = Field(
        default=None,
        ge=1,
        description="At most this many replicas on one Ray node (Ray Serve's option). With 1 and a custom resource "
        "that only ingress nodes carry, the gateway runs one replica per ingress node (docs/operations.md).",
    )
    request_router: Literal["power_of_two", "prefix_aware"] = Field(
        default="power_of_two",
        description="How a caller picks one of several replicas: Ray Serve's default power-of-two choice on queue "
        "length, or `prefix_aware` (Ray Serve LLM's PrefixCacheAffinityRouter): a request goes to the replica that "
        "served the longest common prefix of its prompt unless their queues differ by more than `prefix_imbalance`, "
        "so multi-turn conversations reuse the KV cache vLLM already holds.",
    )
    prefix_imbalance: int = Field(
        default=4,
        ge=1,
        description="prefix_aware only: routing falls back to power-of-two when the replicas' queue lengths differ "
        "by more than this.",
    )

    @field_validator("resources")
    @classmethod
    def _custom_resources(cls, resources: dict[str, float]) -> dict[str, float]:
        reserved = sorted({"CPU", "GPU", "memory", "object_store_memory"} & set(resources))
        if reserved:
            raise ValueError(f"{reserved} are set by num_cpus/num_gpus/memory_gb, not as custom resources")
        negative = {name: value for name, value in resources.items() if value < 0}
        if negative:
            raise ValueError(f"a custom resource amount is >= 0, got {negative}")
        return resources


class EngineConfig(_Strict):
    """Arguments of vLLM's OpenAI server for this tier. Any other `vllm serve` option goes in `extra`."""

    max_model_len: int = Field(default=2048, ge=16, description="Context window (prompt + completion).")
    dtype: str = Field(default="bfloat16", description="Weights/activations dtype.")
    enforce_eager: bool = Field(default=True, description="No graph capture/compilation (fast start on CPU).")
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs one replica shards the model over.")
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description="Share of GPU memory vLLM may take (GPU only)."
    )
    max_num_seqs: int | None = Field(default=None, ge=1, description="Max sequences batched per step.")
    seed: int = Field(default=0, description="Engine seed.")
    tool_call_parser: str | None = Field(
        default=None,
        description="vLLM tool-call parser for this model (e.g. hermes, llama3_json). Set: `tool_choice` auto, "
        "required and named all work; unset: vLLM refuses tool_choice auto.",
    )
    chat_template: str | None = Field(
        default=None, description="Chat template (file path or inline Jinja) instead of the model's own."
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Further vLLM server arguments by their attribute name (`--enable-prefix-caching` is "
        "`enable_prefix_caching`), passed verbatim; an unknown name fails the tier's start.",
    )


class BreakerConfig(_Strict):
    """The tier's circuit breaker in each gateway replica (purgatory): open after `failures` failures in a row, or
    when at least `failure_ratio` of the calls of the last `window_s` failed (with `min_calls` calls or more);
    refuse calls for `open_s`, then let requests probe (half-open); the first success closes it."""

    failures: int = Field(default=5, ge=1, description="Consecutive failures that open the breaker.")
    failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Share of failed calls in the window that opens the breaker."
    )
    min_calls: int = Field(default=20, ge=1, description="Calls in the window before the ratio counts.")
    window_s: float = Field(default=30.0, gt=0, description="The failure ratio's window.")
    open_s: float = Field(default=10.0, gt=0, description="How long an open breaker refuses before probing.")


class ShedConfig(_Strict):
    """Load shedding per tier, in each gateway replica: requests in flight to the tier are bounded by a limit that
    adapts to the TTFT they get (AIMD): it shrinks by 10 % while admitted requests' first token comes later than
    `ttft_target_s` and grows back by one per limit's worth of timely ones. Past the limit a request is answered at
    once (503 + Retry-After) instead of queuing; past three quarters of it, a tenant holding more than its share of
    the tier is refused first (429), so one tenant's burst does not shed the others."""

    enabled: bool = Field(default=True, description="Bound the requests in flight to this tier.")
    ttft_target_s: float = Field(default=5.0, gt=0, description="The TTFT admitted requests should get.")
    initial_limit: int | None = Field(
        default=None, ge=1, description="Starting limit; unset: replicas x max_ongoing_requests (what they can run)."
    )
    min_limit: int = Field(default=2, ge=1, description="The limit never shrinks below this.")
    max_limit: int | None = Field(default=None, ge=1, description="Nor grows above this; unset: 2x the initial.")


class TierReliability(_Strict):
    """Deadlines, retries and fallbacks of one tier."""

    first_token_timeout_s: float | None = Field(
        default=None, gt=0, description="Until the tier's first event; past it: retried or 504. Unset: the total."
    )
    total_timeout_s: float | None = Field(
        default=None, gt=0, description="Upper bound of one generation; unset: gateway.request_timeout_s."
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a call that failed before its first byte (same tier)."
    )
    backoff_s: float = Field(default=0.05, ge=0, description="First retry's backoff; doubles, with full jitter.")
    backoff_max_s: float = Field(default=1.0, ge=0, description="Largest backoff between retries.")
    fallback: list[str] = Field(
        default_factory=list,
        description="Tiers tried in order when this one fails before its first byte or its breaker is open "
        "(pinned models too); the answer carries x-tierserve-fallback-from.",
    )
    breaker: BreakerConfig = Field(default_factory=BreakerConfig, description="Circuit breaker.")
    shed: ShedConfig = Field(default_factory=ShedConfig, description="Load shedding (adaptive admission bound).")


class TierConfig(_Strict):
    """One model tier: a name clients can pin, its model, its engine, its deployment and its price."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Tier name (the model id clients use).")
    model: str = Field(description="Path or hub id of the model vLLM loads. Ignored when `prepared` is set.")
    prepared: PreparedModel | None = Field(
        default=None, description="Embedded model built by `tierserve models prepare` into models_dir."
    )
    version: str = Field(
        default="1",
        min_length=1,
        description="Bump when the model changes: cached answers of older versions stop matching.",
    )
    stop: list[str] = Field(
        default_factory=list, description="Stop strings added to every request (e.g. a base model's turn marker)."
    )
    engine: EngineConfig = Field(default_factory=EngineConfig, description="vLLM engine arguments.")
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig, description="Ray Serve options.")
    price_per_1k_prompt_tokens: float = Field(default=0.0, ge=0, description="Cost accounting, USD.")
    price_per_1k_completion_tokens: float = Field(default=0.0, ge=0, description="Cost accounting, USD.")
    reliability: TierReliability = Field(
        default_factory=TierReliability, description="Deadlines, retries, circuit breaker, fallback chain."
    )


class GatewayConfig(_Strict):
    host: str = Field(default="127.0.0.1", description="HTTP bind address of the Serve proxy.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    ingress: Literal["haproxy", "proxy"] = Field(
        default="haproxy",
        description="HTTP edge: 'haproxy' = Ray Serve's HAProxy ingress forwarding straight to the gateway "
        "replicas (~22 ms less per request here); 'proxy' = Ray Serve's Python proxy actor. With 'haproxy' the "
        "replicas' own HTTP ports (30000-31000) listen on all interfaces, as Ray requires.",
    )
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        default="EveryNode",
        description="Where Ray Serve runs an ingress (Ray's option): on every node that holds a replica (each "
        "node's own address answers; put a load balancer in front), or on the head node only. HeadOnly is for "
        "nodes that share one address (several `ray start` nodes on one machine, as the cluster test runs).",
    )
    haproxy_threads: int = Field(default=2, ge=1, le=64, description="HAProxy worker threads (ingress=haproxy).")
    throughput_optimized: bool = Field(
        default=True,
        description="Ray Serve's throughput-optimized mode (ingress=haproxy): user code on each replica's event loop, "
        "gRPC between deployments, GC frozen after start. Measured with one tier against vLLM's own server: TTFT "
        "+5.7 ms instead of +13.7 ms, 8-stream throughput 1.04x instead of 0.95x (docs/benchmarks.md).",
    )
    shutdown_drain_s: float = Field(
        default=60.0,
        ge=0,
        description="On Ctrl-C or SIGTERM (ingress=haproxy): new connections are refused at once and requests in "
        "flight, streams included, get this long to finish before the stack stops.",
    )
    drain_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a stopping gateway replica keeps accepting requests (ingress=haproxy; Ray's own default "
        "is the same). HAProxy reloads without it, but an HAProxy process replaced by a reload keeps each client "
        "connection it holds for one more request (Ray's `idle-close-on-response`), with its old server list: a "
        "connection streaming at the reload sends that request when its stream ends. At 2 s a rolling update under "
        "load answered 1 such request of ~60 with a bare 500, in 2 runs of 3 (the replica had closed). Keep it above "
        "your longest stream; a stop (Ctrl-C, a scale-down) waits this long for its gateway replicas.",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict, description="Bearer API key -> tenant id. Empty: open, one default tenant."
    )
    default_tenant: str = Field(default="default", min_length=1, description="Tenant when no keys are set.")
    admin_key_file: Path | None = Field(
        default=None,
        description="File holding the /admin API's bearer key (a mounted secret); TIERSERVE_ADMIN_KEY in the "
        "environment wins. Neither: the admin API is disabled. Never read from this YAML.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_yaml(cls, data: Any) -> Any:
        if isinstance(data, dict) and "admin_key" in data:
            raise ValueError(
                f"gateway.admin_key is not read from YAML (a secret must not live in a config file): set "
                f"{ADMIN_KEY_ENV} or gateway.admin_key_file"
            )
        return data

    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Larger bodies get 413.")
    health_cache_s: float = Field(default=5.0, ge=0, description="How long a health probe result is reused.")
    health_timeout_s: float = Field(default=30.0, gt=0, description="A tier probe slower than this fails.")
    request_timeout_s: float = Field(default=300.0, gt=0, description="Upper bound of one generation.")
    retry_budget_ratio: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Retries allowed as a share of the requests of the last 10 s (Envoy's retry budget): under a "
        "broad failure, retries add at most this much load.",
    )
    retry_budget_min: int = Field(
        default=3, ge=0, description="Retries always allowed per 10 s, so a quiet stack can still retry."
    )
    deployment: DeploymentConfig = Field(
        default_factory=lambda: DeploymentConfig(num_cpus=0.5, max_ongoing_requests=256, max_surge_percent=100),
        description="Ray Serve options of the gateway (max_surge_percent defaults to 100 here: replacements first).",
    )

    @field_validator("deployment")
    @classmethod
    def _routed_by_load(cls, deployment: DeploymentConfig) -> DeploymentConfig:
        if deployment.request_router != "power_of_two":
            # Its callers are the HTTP ingress, whose requests carry bytes, not a conversation to match.
            raise ValueError("request_router: prefix_aware is for tiers; the gateway's callers send no prompt")
        return deployment

    @field_validator("deployment")
    @classmethod
    def _surge_first(cls, deployment: DeploymentConfig) -> DeploymentConfig:
        # A gateway replica is cheap and stateless: unless the config says otherwise, a rolling update starts its
        # replacements before the old replicas stop, so the ingress always has replicas that are up.
        if "max_surge_percent" not in deployment.model_fields_set:
            return deployment.model_copy(update={"max_surge_percent": 100})
        return deployment


class LoggingConfig(_Strict):
    encoding: Literal["TEXT", "JSON"] = Field(
        default="TEXT", description="Replica log format; JSON lines carry the request id, route and replica."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Replica log level.")


class TracingConfig(_Strict):
    exporter: Literal["none", "otlp", "console"] = Field(
        default="none",
        description="Where request traces go: none (no tracing cost), otlp (OTLP/HTTP protobuf to `endpoint`), "
        "or console (spans printed as JSON to the gateway's log).",
    )
    endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces endpoint (exporter: otlp)."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra OTLP request headers (e.g. auth).")
    service_name: str = Field(default="tierserve", min_length=1, description="The traces' service.name.")
    sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces kept; a caller's `traceparent` decision is followed (parent-based).",
    )


class ShadowConfig(_Strict):
    """Shadow scoring (docs/observability.md): a share of the answers given by a smaller tier, and of cache hits,
    is asked again of the largest tier off the request path; how far the two answers agree (cosine of their
    sentence embeddings) becomes the router's quality regret per tier and the share of cached answers the largest
    tier would still give. It has its own concurrency budget and stands aside while the largest tier is busy."""

    share: float = Field(default=0.0, ge=0, le=1, description="Share of smaller tiers' answers re-asked.")
    cache_share: float = Field(default=0.0, ge=0, le=1, description="Share of cache hits re-asked.")
    tenants: dict[str, float] = Field(
        default_factory=dict,
        description="Per-tenant share (answers and cache hits alike) over the two above; 0 leaves a tenant out "
        "(one whose prompts must not be processed twice).",
    )
    max_concurrent: int = Field(default=1, ge=1, le=64, description="Shadow generations in flight per replica.")
    max_queue: int = Field(default=16, ge=0, description="Samples waiting for a slot; more are dropped, counted.")
    max_tokens: int = Field(default=128, ge=1, description="Upper bound of a shadow answer's length.")
    agreement: float = Field(
        default=0.8, gt=0, le=1, description="Answers agree at or above this cosine of their embeddings."
    )
    mode: Literal["idle", "headroom"] = Field(
        default="idle",
        description="When a shadow may run. idle: only while no user request is in flight to any tier, and "
        "stopped (then retried) as soon as one is: for tiers that share hardware (the CPU stacks), where any "
        "extra generation slows users. headroom: while the largest tier holds less than `busy_share` of its "
        "admission limit: for a largest tier on its own GPUs.",
    )
    busy_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="headroom mode: a sample waits while the largest tier holds this share of its admission "
        "limit in user requests. Either mode drops a sample still waiting after `timeout_s`.",
    )
    timeout_s: float = Field(default=120.0, gt=0, description="A sample's whole budget: waiting plus generating.")

    def share_for(self, tenant: str, cached: bool) -> float:
        if tenant in self.tenants:
            return self.tenants[tenant]
        return self.cache_share if cached else self.share

    @field_validator("tenants")
    @classmethod
    def _shares(cls, tenants: dict[str, float]) -> dict[str, float]:
        bad = {name: share for name, share in tenants.items() if not 0 <= share <= 1}
        if bad:
            raise ValueError(f"a tenant's shadow share is between 0 and 1, got {bad}")
        return tenants


class RayConfig(_Strict):
    address: str | None = Field(
        default=None,
        description="Existing cluster to join from one of its nodes: `auto` (the cluster `ray start` began on this "
        "node) or its GCS address host:6379; unset starts a one-node Ray in the serve process. Ray Client URLs "
        "(ray://) are refused: the serve process must run on a node, where it waits for the HTTP ingress and "
        "applies `tierserve scale` and reloads.",
    )

    @field_validator("address")
    @classmethod
    def _on_a_node(cls, address: str | None) -> str | None:
        if address is not None and address.startswith("ray://"):
            raise ValueError(
                f"{address!r} is a Ray Client URL: run `tierserve serve` on a node of the cluster and give "
                "`auto` or the head's GCS address (host:6379)"
            )
        return address

    num_cpus: int | None = Field(
        default=None, ge=1, description="Logical CPUs of a locally started Ray (enough for every replica)."
    )


class StackConfig(_Strict):
    """Everything the stack needs, validated once."""

    tiers: list[TierConfig] = Field(min_length=1, description="Tiers ordered from cheapest to largest.")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig, description="HTTP edge.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="Semantic cache.")
    router: RouterConfig = Field(default_factory=RouterConfig, description="Complexity router.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logs of every deployment.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="OpenTelemetry request traces.")
    tenancy: TenancyConfig = Field(default_factory=TenancyConfig, description="Keys, limits, budgets, cost.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="The audit log (docs/security.md).")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift of the traffic (docs/observability.md).")
    shadow: ShadowConfig = Field(
        default_factory=ShadowConfig, description="Shadow scoring on the largest tier (docs/observability.md)."
    )
    guards: GuardsConfig = Field(
        default_factory=GuardsConfig, description="Input and output guards, PII (docs/security.md)."
    )
    models_dir: Path = Field(
        default=Path(".tierserve/models"),
        description="Where prepared models live; a relative path resolves against the folder above the config file's.",
    )
    data_dir: Path = Field(
        default=Path(".tierserve/data"),
        description="State of a locally started Redis; resolved like models_dir.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        if AUTO_MODEL in names:
            raise ValueError(f"'{AUTO_MODEL}' is reserved for routing and cannot name a tier")
        if len(self.router.thresholds) != len(self.tiers) - 1:
            raise ValueError(
                f"router.thresholds needs {len(self.tiers) - 1} value(s) for {len(self.tiers)} tiers, "
                f"got {len(self.router.thresholds)}"
            )
        for tier in self.tiers:
            wrong = [f for f in tier.reliability.fallback if f not in names or f == tier.name]
            if wrong:
                raise ValueError(f"tiers[{tier.name}].reliability.fallback: {wrong} are not other tiers of {names}")
        unknown = sorted(self.router.tier_names_used() - set(names))
        if unknown:
            raise ValueError(f"router.tenants names unknown tier(s) {unknown}; tiers: {names}")
        unknown = sorted(self.guards.route_tiers() - set(names))
        if unknown:
            raise ValueError(f"guards: input_route_tier names unknown tier(s) {unknown}; tiers: {names}")
        return self

    def tier(self, name: str) -> TierConfig:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)

    def model_path(self, tier: TierConfig) -> str:
        """What vLLM loads for a tier: the prepared folder, or the configured path/hub id."""
        if tier.prepared is not None:
            return str(self.models_dir / tier.prepared)
        return tier.model


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, *, source: str = "<config>", base_dir: Path | None = None) -> StackConfig:
    """Validate plain data into a StackConfig; relative paths resolve against `base_dir`."""
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None
    if base_dir is not None:
        config = config.model_copy(
            update={
                "models_dir": (base_dir / config.models_dir).resolve(),
                "data_dir": (base_dir / config.data_dir).resolve(),
            }
        )
        if config.router.weights_path is not None:
            weights = (base_dir / config.router.weights_path).resolve()
            config = config.model_copy(update={"router": config.router.model_copy(update={"weights_path": weights})})
    return config


ADMIN_KEY_ENV = "TIERSERVE_ADMIN_KEY"


def admin_key(gateway: GatewayConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The /admin API's key: TIERSERVE_ADMIN_KEY, else the first line of gateway.admin_key_file, else None."""
    env = os.environ if environ is None else environ
    key = env.get(ADMIN_KEY_ENV, "").strip()
    if not key and gateway.admin_key_file is not None:
        try:
            key = gateway.admin_key_file.read_text().strip()
        except OSError as error:
            raise ConfigError(
                f"cannot read gateway.admin_key_file {gateway.admin_key_file}: {error.strerror}"
            ) from None
    if key and len(key) < 16:
        raise ConfigError("the admin key must be at least 16 characters")
    return key or None


def load_config(path: str | Path) -> StackConfig:
    """Read and validate a YAML config; paths in it are relative to the repository holding configs/."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config {file}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config {file} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {file} must be a mapping at the top level")
    return parse_config(raw, source=str(file), base_dir=file.resolve().parent.parent)


def reference_markdown() -> str:
    """Every field of the stack config as Markdown tables, one per section, from the models themselves."""
    sections: list[str] = []

    def walk(model: type[BaseModel], path: str) -> None:
        rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
        nested: list[tuple[type[BaseModel], str]] = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
            for candidate in inner:
                if issubclass(candidate, BaseModel):
                    nested.append((candidate, f"{path}.{name}" if path else name))
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            if len(default) > 40:
                default = "(see section)" if inner and issubclass(inner[0], BaseModel) else default[:37] + "..."
            type_name = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
            type_name = (
                type_name.replace("serving.config.", "").replace("cache.config.", "").replace("router.config.", "")
            )
            rows.append(f"| `{name}` | `{type_name}` | `{default}` | {field.description or ''} |")
        title = path or "top level"
        sections.append(f"### `{title}`\n\n{(model.__doc__ or '').strip()}\n\n" + "\n".join(rows))
        for child, child_path in nested:
            walk(child, child_path + ("[]" if child is TierConfig else ""))

    walk(StackConfig, "")
    return "# Configuration reference\n\nGenerated by `tierserve config reference`.\n\n" + "\n\n".join(sections) + "\n"
