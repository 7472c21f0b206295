"""Capacity planning: from what one replica of each tier sustains at the SLOs (a capacity profile) and the share of
traffic each tier gets (the mix) to the replicas, GPUs and cost per hour a target load needs, and back: the load a
given fleet carries.

Pure functions over plain data. `tierserve plan` (commands/plan.py) reads the stack config and hands its tiers in
as `FleetTier`s, so this module, like the rest of the load-test package, never imports the stack.

Two placements, because they add capacity differently:
- `dedicated` (a GPU fleet): every replica owns its GPUs, so tiers do not slow each other and a tier's capacity is
  its replicas times one replica's. A tier needs ceil(demand / (per-replica capacity x headroom)) replicas.
- `shared` (CPU tiers that need more cores than the host has): every tier's engine computes on the same cores, so
  a request of any tier uses part of one host. A tier-only run measures what the host sustains for that tier alone
  (c_t); a mix then fills sum_t(rps_t / c_t) hosts, and one host carries 1 / sum_t(s_t / c_t) requests/s of the mix.
CPU tiers whose engines' compute threads all fit the host's cores (a CPU replica's vLLM computes with as many
threads as its whole Ray CPUs, at least one) do not take cores from each other either: they plan as `dedicated`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CapacityProfile",
    "FleetCapacity",
    "FleetTier",
    "Placement",
    "Plan",
    "PlanError",
    "TierPlan",
    "TierProfile",
    "check_mix",
    "fleet_capacity",
    "load_mix",
    "load_profile",
    "observed_mix",
    "placement_for",
    "plan_fleet",
    "save_profile",
    "tier_profile_from_capacity",
    "with_tier",
]

Placement = Literal["dedicated", "shared"]
_EPS = 1e-9  # 512 / (32 * 0.8) is 20.000000000000004 in floating point: that is 20 replicas, not 21
_MIX_TOLERANCE = 0.01  # shares written to 2-4 decimals may miss 1 by rounding, not by more


class PlanError(ValueError):
    """A missing or invalid profile or mix, or a plan that cannot be made; the message says what and where."""


class TierProfile(BaseModel):
    """What one replica of a tier sustains while meeting the SLOs, and where that figure comes from."""

    model_config = ConfigDict(extra="forbid")

    rps_per_replica: float = Field(gt=0, description="Requests/s one replica sustains at the SLOs.")
    output_tokens_per_s_per_replica: float | None = Field(default=None, ge=0, description="Output tokens/s there.")
    mean_prompt_tokens: float | None = Field(default=None, ge=0, description="Of the workload measured.")
    mean_output_tokens: float | None = Field(default=None, ge=0, description="Of the workload measured.")
    measured_replicas: int = Field(default=1, ge=1, description="Replicas that served the measurement.")
    mean_e2e_s: float | None = Field(
        default=None,
        gt=0,
        description="Mean request time at that rate: with it, Little's law gives the requests in "
        "flight the rate needs, which the tier's max_ongoing_requests may not allow.",
    )
    max_users: int | None = Field(default=None, ge=0, description="Closed-loop users at the limit (measured).")
    limit_found: bool = Field(default=True, description="False: every step met the SLOs, the figure a lower bound.")
    source: str = Field(default="", description="The command, run or publication the figure comes from.")


class CapacityProfile(BaseModel):
    """Per-tier capacities measured (or read from a publication) on one kind of hardware, at one set of SLOs."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    hardware: str = Field(default="", description="What the figures were measured on.")
    slo_file: str | None = Field(default=None, description="The SLO file the capacities hold at.")
    scenario: str | None = Field(default=None, description="The load-test scenario (request shape) measured.")
    gpu_hour_usd: float | None = Field(default=None, ge=0, description="Price of one GPU for an hour.")
    host_hour_usd: float | None = Field(default=None, ge=0, description="Price of one host for an hour (shared).")
    host_cpus: int | None = Field(
        default=None, ge=1, description="Logical CPUs of the host CPU tiers were measured on (decides placement)."
    )
    sources: list[str] = Field(default_factory=list, description="Where the figures come from (URLs, runs).")
    tiers: dict[str, TierProfile] = Field(default_factory=dict, description="tier -> capacity of one replica.")


def _read_yaml(path: Path, what: str) -> Any:
    """The file's YAML (JSON is YAML), or a PlanError that names the file and what it was meant to be."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanError(f"cannot read {what} {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PlanError(f"{what} {path} is not valid YAML or JSON: {error}") from None


def load_profile(path: Path) -> CapacityProfile:
    raw = _read_yaml(path, "capacity profile")
    try:
        return CapacityProfile.model_validate(raw or {})
    except ValidationError as error:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise PlanError(f"capacity profile {path}: {where}") from None


def save_profile(path: Path, profile: CapacityProfile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = profile.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def tier_profile_from_capacity(result: Mapping[str, Any], replicas: int, source: str) -> TierProfile:
    """One tier's profile from a `--find-capacity` result of a run pinned to that tier (every request on it): the
    request rate of the highest step that met every SLO, per replica. The rate, not the goodput: a plan sizes for
    the load offered, and a passing step's goodput ratio is already held to the SLO file's floor."""
    top = result["overall"]
    rps = float(top.get("rps") or 0.0)
    if rps <= 0:
        raise PlanError("no step of the capacity search met the SLOs: there is no capacity to record")
    tokens = float(top.get("output_tokens_per_s") or 0.0)
    e2e_ms = float(top.get("e2e_mean_ms") or 0.0)
    return TierProfile(
        rps_per_replica=round(rps / replicas, 4),
        output_tokens_per_s_per_replica=round(tokens / replicas, 2) if tokens else None,
        mean_output_tokens=round(tokens / rps, 1) if tokens else None,
        mean_e2e_s=round(e2e_ms / 1000, 3) if e2e_ms else None,
        measured_replicas=replicas,
        max_users=int(top.get("max_users") or 0),
        limit_found=bool(top.get("limit_found", True)),
        source=source,
    )


def with_tier(profile: CapacityProfile | None, tier: str, entry: TierProfile, **meta: Any) -> CapacityProfile:
    """`profile` with `tier`'s entry set (a new profile when None). Tiers measured against another SLO file or
    scenario do not belong in one profile: that is refused rather than mixed."""
    base = profile or CapacityProfile()
    for key in ("slo_file", "scenario"):
        old, new = getattr(base, key), meta.get(key)
        if old is None or new is None or not base.tiers:
            continue
        same = Path(old).resolve() == Path(new).resolve() if key == "slo_file" else old == new  # ./x and x: one file
        if not same:
            raise PlanError(f"the profile's tiers were measured with {key} {old!r}, not {new!r}: use another file")
    updates = {k: v for k, v in meta.items() if v is not None}
    return base.model_copy(update=updates | {"tiers": {**base.tiers, tier: entry}})


# ------------------------------------------------------------------------------------------------------ the mix


def check_mix(mix: Mapping[str, float], tiers: list[str], where: str) -> dict[str, float]:
    """Every tier's share (0 for one left out), in tier order, scaled to add up to exactly 1."""
    unknown = sorted(set(mix) - set(tiers))
    if unknown:
        raise PlanError(f"{where}: unknown tier(s) {', '.join(unknown)}; tiers: {', '.join(tiers)}")
    bad = [t for t, v in mix.items() if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1]
    if bad:
        raise PlanError(f"{where}: a share is a number between 0 and 1 ({', '.join(bad)})")
    total = float(sum(mix.values()))
    if abs(total - 1.0) > _MIX_TOLERANCE:
        raise PlanError(f"{where}: the shares add up to {total:.4f}, not 1")
    return {t: float(mix.get(t, 0.0)) / total for t in tiers}


def load_mix(path: Path, tiers: list[str]) -> dict[str, float]:
    """A mix file: YAML or JSON (JSON is YAML), one `tier: share` per tier."""
    raw = _read_yaml(path, "mix file")
    if not isinstance(raw, dict) or not raw:
        raise PlanError(f"mix file {path}: expected a mapping of tier to share, e.g. {{small: 0.7, large: 0.3}}")
    return check_mix({str(k): v for k, v in raw.items()}, tiers, f"mix file {path}")


def observed_mix(steps: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The share of requests each tier answered over the steps of a capacity search (their `tier_requests`)."""
    counts: dict[str, int] = {}
    for step in steps:
        for tier, n in (step.get("tier_requests") or {}).items():
            if tier != "unknown":
                counts[tier] = counts.get(tier, 0) + int(n)
    total = sum(counts.values())
    return {t: n / total for t, n in counts.items()} if total else {}


# ------------------------------------------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class FleetTier:
    """What the stack config says of one tier's replicas (fixed: min = max = num_replicas)."""

    name: str
    gpus_per_replica: float
    min_replicas: int
    max_replicas: int
    max_ongoing_requests: int | None = None  # requests one replica takes at once (Ray Serve queues the rest)
    engine_threads: int = 1  # a CPU replica's compute threads (OMP_NUM_THREADS: its whole Ray CPUs, at least one)


def placement_for(fleet: Sequence[FleetTier], host_cpus: int | None = None) -> Placement:
    """`dedicated` when tiers cannot slow each other: every tier has GPUs of its own, or (CPU tiers) every replica's
    engine threads together fit the cores of the host the profile was measured on; `shared` otherwise."""
    if all(t.gpus_per_replica > 0 for t in fleet):
        return "dedicated"
    threads = sum(t.engine_threads * t.max_replicas for t in fleet if t.gpus_per_replica == 0)
    return "dedicated" if host_cpus is not None and threads <= host_cpus else "shared"


@dataclass(frozen=True)
class TierPlan:
    tier: str
    share: float
    demand_rps: float  # requests/s the tier must answer (cache hits taken off)
    rps_per_replica: float  # capacity of one replica at the SLOs (shared: of one host, for this tier alone)
    replicas: int
    gpus: float
    utilization: float  # demand over the capacity planned (at most the headroom)
    cost_per_hour_usd: float | None
    config_max_replicas: int


@dataclass(frozen=True)
class Plan:
    target_rps: float
    cache_hit: float
    headroom: float
    placement: Placement
    tiers: list[TierPlan]
    hosts: int | None  # shared placement: copies of the whole stack
    gpus: float
    cost_per_hour_usd: float | None
    usd_per_million_requests: float | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def rounded(value: Any) -> Any:
            return round(value, 4) if isinstance(value, float) else value

        return {
            "target_rps": self.target_rps,
            "cache_hit": self.cache_hit,
            "headroom": self.headroom,
            "placement": self.placement,
            "tiers": [{k: rounded(v) for k, v in asdict(t).items()} for t in self.tiers],
            "hosts": self.hosts,
            "replicas": sum(t.replicas for t in self.tiers),
            "gpus": rounded(self.gpus),
            "cost_per_hour_usd": rounded(self.cost_per_hour_usd),
            "usd_per_million_requests": rounded(self.usd_per_million_requests),
            "warnings": self.warnings,
        }


def _ceil(value: float) -> int:
    return max(0, math.ceil(value - _EPS))


def _capacities(
    mix: Mapping[str, float], profile: CapacityProfile, fleet: list[FleetTier], placement: Placement
) -> tuple[dict[str, float], list[str]]:
    """What one replica (shared: one host) of every tier with a figure carries, and why it is less than the
    profile's. A tier with traffic and no figure cannot be planned.

    Little's law: a replica serving r requests/s that take e2e seconds each holds r x e2e of them at once. When the
    config lets it take fewer (max_ongoing_requests), the rest queue in front of it and the rate at the SLOs is
    at most max_ongoing / e2e. The e2e measured at the profile's rate is the longest it gets below that rate, so
    the cap errs low."""
    missing = [t.name for t in fleet if mix.get(t.name, 0.0) > 0 and t.name not in profile.tiers]
    if missing:
        raise PlanError(
            f"the capacity profile has no figure for tier(s) {', '.join(missing)}, which get traffic: measure them "
            "(`tierserve loadtest --find-capacity --model TIER --profile-out FILE`) or give them no share"
        )
    capacity: dict[str, float] = {}
    warnings: list[str] = []
    for tier in fleet:
        entry = profile.tiers.get(tier.name)
        if entry is None:
            continue
        # shared: what the host carried for this tier alone, with the replicas it had then
        unit, replicas = ("host", tier.max_replicas) if placement == "shared" else ("replica", 1)
        rate = entry.rps_per_replica * (entry.measured_replicas if placement == "shared" else 1)
        capacity[tier.name] = rate
        if entry.mean_e2e_s is None or tier.max_ongoing_requests is None:
            continue
        slots = tier.max_ongoing_requests * replicas
        needed = rate * entry.mean_e2e_s
        if needed > slots:
            capacity[tier.name] = slots / entry.mean_e2e_s
            if mix.get(tier.name, 0.0) > 0:
                warnings.append(
                    f"tier {tier.name}: {rate:g} requests/s of {entry.mean_e2e_s:g} s each need {needed:.0f} in "
                    f"flight per {unit}, max_ongoing_requests allows {slots}: planned at {capacity[tier.name]:.2f} "
                    f"requests/s per {unit} (raise max_ongoing_requests and the engine's max_num_seqs to use the "
                    "whole figure)"
                )
    return capacity, warnings


def _profile_warnings(mix: Mapping[str, float], profile: CapacityProfile) -> list[str]:
    return [
        f"tier {name}: every step of its capacity search met the SLOs, so its capacity is a lower bound "
        "(the plan over-provisions it)"
        for name, entry in profile.tiers.items()
        if mix.get(name, 0.0) > 0 and not entry.limit_found
    ]


def plan_fleet(
    target_rps: float,
    mix: Mapping[str, float],
    profile: CapacityProfile,
    fleet: list[FleetTier],
    *,
    placement: Placement,
    headroom: float = 0.8,
    cache_hit: float = 0.0,
    gpu_hour_usd: float | None = None,
    host_hour_usd: float | None = None,
) -> Plan:
    """Replicas, GPUs and cost per hour for `target_rps` requests/s split by `mix`, each tier run at no more than
    `headroom` of its capacity at the SLOs; a `cache_hit` share of the requests is answered by the gateway."""
    if target_rps <= 0:
        raise PlanError("the target load must be above 0 requests/s")
    if not 0 < headroom <= 1:
        raise PlanError("headroom is the share of a replica's capacity to plan for: above 0, at most 1")
    if not 0 <= cache_hit < 1:
        raise PlanError("the cache hit ratio lies in [0, 1)")
    capacity, warnings = _capacities(mix, profile, fleet, placement)
    served = target_rps * (1 - cache_hit)
    warnings += _profile_warnings(mix, profile)
    rows: list[TierPlan] = []
    hosts: int | None = None
    if placement == "dedicated":
        for tier in fleet:
            demand = served * mix.get(tier.name, 0.0)
            per_replica = capacity.get(tier.name, 0.0)
            replicas = _ceil(demand / (per_replica * headroom)) if demand > 0 else 0
            rows.append(_row(tier, mix, demand, per_replica, replicas, gpu_hour_usd))
    else:
        # One host serves the whole mix: hosts follow the summed time-shares, every host runs every tier's replicas.
        used = sum(served * mix.get(t.name, 0.0) / capacity[t.name] for t in fleet if mix.get(t.name, 0.0) > 0)
        hosts = max(1, _ceil(used / headroom))
        for tier in fleet:
            demand = served * mix.get(tier.name, 0.0)
            per_host = capacity.get(tier.name, 0.0)
            rows.append(_row(tier, mix, demand, per_host, hosts * tier.max_replicas, gpu_hour_usd, used / hosts))
    for row in rows:
        if placement == "dedicated" and row.replicas > row.config_max_replicas:
            warnings.append(
                f"tier {row.tier}: needs {row.replicas} replicas, the config allows at most "
                f"{row.config_max_replicas} (raise autoscaling.max_replicas or num_replicas)"
            )
    gpus = sum(r.gpus for r in rows)
    cost: float | None
    if placement == "shared":
        # a host's price covers what it holds; GPUs on it are added only when they are priced apart
        cost = None if host_hour_usd is None or hosts is None else hosts * host_hour_usd + gpus * (gpu_hour_usd or 0)
    else:
        cost = None if gpu_hour_usd is None or gpus == 0 else gpus * gpu_hour_usd
    if cost is None:
        price = "--host-hour-usd (a shared host)" if placement == "shared" else "--gpu-hour-usd (GPU tiers)"
        warnings.append(f"no cost: give {price} or put its price in the capacity profile")
    per_million = None if cost is None else cost / (target_rps * 3600) * 1e6
    return Plan(target_rps, cache_hit, headroom, placement, rows, hosts, gpus, cost, per_million, warnings)


def _row(
    tier: FleetTier,
    mix: Mapping[str, float],
    demand: float,
    per_replica: float,
    replicas: int,
    gpu_hour_usd: float | None,
    utilization: float | None = None,
) -> TierPlan:
    gpus = replicas * tier.gpus_per_replica
    if utilization is None:
        utilization = demand / (replicas * per_replica) if replicas and per_replica else 0.0
    return TierPlan(
        tier=tier.name,
        share=mix.get(tier.name, 0.0),
        demand_rps=demand,
        rps_per_replica=per_replica,
        replicas=replicas,
        gpus=gpus,
        utilization=utilization,
        cost_per_hour_usd=None if gpu_hour_usd is None else gpus * gpu_hour_usd,
        config_max_replicas=tier.max_replicas,
    )


@dataclass(frozen=True)
class FleetCapacity:
    """The highest load of the mix a fleet carries at the SLOs (no headroom), and which tier sets it."""

    rps: float
    bottleneck: str
    replicas: dict[str, int]
    tier_limits: dict[str, float]  # dedicated: the total load at which each tier is full; shared: host share
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 4),
            "bottleneck": self.bottleneck,
            "replicas": self.replicas,
            "tier_limits": {k: (round(v, 4) if math.isfinite(v) else None) for k, v in self.tier_limits.items()},
            "warnings": self.warnings,
        }


def fleet_capacity(
    mix: Mapping[str, float],
    profile: CapacityProfile,
    fleet: list[FleetTier],
    *,
    placement: Placement,
    replicas: Mapping[str, int],
    cache_hit: float = 0.0,
) -> FleetCapacity:
    """The requests/s of the mix that `replicas` of each tier carry while meeting the SLOs. Dedicated: the first tier
    to fill up sets it, min_t(n_t c_t / s_t). Shared: the host fills up, 1 / sum_t(s_t / c_t), whatever the
    replica counts (replicas on one host share its cores; the profile was measured at the config's)."""
    if not 0 <= cache_hit < 1:
        raise PlanError("the cache hit ratio lies in [0, 1)")
    capacity, warnings = _capacities(mix, profile, fleet, placement)
    served = 1 - cache_hit
    active = [t.name for t in fleet if mix.get(t.name, 0.0) > 0]
    if not active:
        raise PlanError("the mix sends no traffic to any tier")
    limits: dict[str, float]
    if placement == "dedicated":
        limits = {
            t: (replicas.get(t, 0) * capacity[t] / (mix[t] * served)) if replicas.get(t, 0) else 0.0 for t in active
        }
        bottleneck = min(active, key=lambda t: limits[t])
        rps = limits[bottleneck]
    else:
        parts = {t: mix[t] / capacity[t] for t in active}
        limits = {t: part / sum(parts.values()) for t, part in parts.items()}  # share of the host's time
        bottleneck = max(active, key=lambda t: parts[t])
        rps = 1 / (served * sum(parts.values()))
    return FleetCapacity(rps, bottleneck, {t.name: replicas.get(t.name, 0) for t in fleet}, limits, warnings)
