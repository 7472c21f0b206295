"""`tierserve plan --rps R [--mix FILE] [--slo-file F] [--json]`: the replicas, GPUs and cost per hour a target load
needs, from each tier's capacity at the SLOs (a capacity profile: measured with `tierserve loadtest --find-capacity
--model TIER --profile-out FILE`, or read from published benchmarks, configs/capacity-gpu.yaml) and the share of
traffic each tier gets (the router's calibrated shares unless --mix says otherwise). Without --rps it says how much
load the config's own replicas carry. The arithmetic is loadtest/plan.py; this module reads the stack config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadtest.plan import (
    CapacityProfile,
    FleetTier,
    Placement,
    PlanError,
    check_mix,
    fleet_capacity,
    load_mix,
    load_profile,
    placement_for,
    plan_fleet,
)
from serving.config import ConfigError, StackConfig, load_config

__all__ = ["add_plan_command", "default_profile_path", "fleet_from_config"]

_err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(Text(f"error: {message}", style="red"), soft_wrap=True)
    return typer.Exit(code)


def fleet_from_config(config: StackConfig) -> list[FleetTier]:
    """Each tier's GPUs per replica and replica bounds (fixed replicas: both bounds are num_replicas)."""
    fleet = []
    for tier in config.tiers:
        deployment = tier.deployment
        scaling = deployment.autoscaling
        low, high = (scaling.min_replicas, scaling.max_replicas) if scaling else (deployment.num_replicas,) * 2
        threads = max(1, int(deployment.num_cpus)) if deployment.num_gpus == 0 else 1  # GPU tiers compute there
        fleet.append(FleetTier(tier.name, deployment.num_gpus, low, high, deployment.max_ongoing_requests, threads))
    return fleet


def default_profile_path(config_path: Path) -> Path:
    """configs/capacity-gpu.yaml for configs/gpu.yaml: a profile lives beside the config whose fleet it measured."""
    return config_path.with_name(f"capacity-{config_path.stem}.yaml")


def _mix(config: StackConfig, config_path: Path, mix_file: Path | None) -> tuple[dict[str, float], str]:
    tiers = [t.name for t in config.tiers]
    if mix_file is not None:
        return load_mix(mix_file, tiers), str(mix_file)
    shares = config.router.calibrated_shares
    if shares is None:
        if len(tiers) == 1:
            return {tiers[0]: 1.0}, "one tier"
        raise PlanError(
            f"{config_path} has no router.calibrated_shares: run `tierserve router calibrate` on a sample of your "
            "traffic (it records them) or give --mix FILE ({tier: share, ...})"
        )
    where = f"router.calibrated_shares of {config_path}"
    return check_mix(shares, tiers, where), where


def _same_file(a: str, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


def _print(console: Console, report: dict[str, Any], profile: CapacityProfile) -> None:
    plan = report.get("plan")
    if plan is not None:
        table = Table(
            title=f"{plan['target_rps']:,g} requests/s, cache hit {plan['cache_hit']:.0%}, "
            f"headroom {plan['headroom']:.0%}, {plan['placement']} placement",
            title_justify="left",
        )
        unit = "per host" if plan["placement"] == "shared" else "per replica"
        columns = ("tier", "share", "requests/s", unit, "replicas", "config max", "load", "GPUs", "$/h")
        for column in columns:
            table.add_column(column, justify="left" if column == "tier" else "right")
        for row in plan["tiers"]:
            cost = row["cost_per_hour_usd"]
            table.add_row(
                row["tier"],
                f"{row['share']:.0%}",
                f"{row['demand_rps']:,.2f}",
                f"{row['rps_per_replica']:,.3f}",
                str(row["replicas"]),
                str(row["config_max_replicas"]),
                f"{row['utilization']:.0%}",
                f"{row['gpus']:g}",
                "—" if cost is None else f"{cost:,.2f}",
            )
        console.print(table)
        cost, per_million = plan["cost_per_hour_usd"], plan["usd_per_million_requests"]
        hosts = f"{plan['hosts']} host(s) running every tier, " if plan["hosts"] is not None else ""
        console.print(
            f"total: {hosts}{plan['replicas']} replicas, {plan['gpus']:g} GPUs"
            + ("" if cost is None else f", [bold]${cost:,.2f}/hour[/bold], ${per_million:,.2f} per million requests"),
            highlight=False,
        )
    capacity = report["capacity"]
    replicas = ", ".join(f"{t} {n}" for t, n in capacity["replicas"].items())
    console.print(
        f"the config's fleet at its most replicas ({replicas}) carries [bold]{capacity['rps']:,.3f} requests/s"
        f"[/bold] of this mix at the SLOs, no headroom (bottleneck: {capacity['bottleneck']})",
        highlight=False,
    )
    console.print(
        f"mix: {report['mix_source']}; profile: {report['profile']} ({profile.hardware or 'hardware not stated'}), "
        f"SLOs: {profile.slo_file or 'not stated'}",
        highlight=False,
        soft_wrap=True,
    )
    for warning in report["warnings"]:
        console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


def add_plan_command(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        rps: Annotated[
            float | None, typer.Option("--rps", min=0.0, help="Target requests/s (none: what the config carries).")
        ] = None,
        mix: Annotated[
            Path | None, typer.Option("--mix", help="Tier shares, YAML/JSON {tier: share} (default: the router's).")
        ] = None,
        slo_file: Annotated[
            Path | None, typer.Option("--slo-file", help="The SLOs to plan for; the profile must be measured at them.")
        ] = None,
        config: Annotated[Path, typer.Option("--config", "-c", help="Stack config: tiers, GPUs, replicas.")] = Path(
            "configs/default.yaml"
        ),
        profile_path: Annotated[
            Path | None, typer.Option("--profile", help="Capacity profile (default: capacity-<config>.yaml beside it).")
        ] = None,
        headroom: Annotated[
            float, typer.Option(min=0.05, max=1.0, help="Plan each replica for this share of its capacity.")
        ] = 0.8,
        cache_hit: Annotated[
            float, typer.Option("--cache-hit", min=0.0, max=0.99, help="Share answered from the cache.")
        ] = 0.0,
        placement: Annotated[
            str, typer.Option(help="dedicated (replicas own their GPUs), shared (one host), auto: from the GPUs.")
        ] = "auto",
        gpu_hour_usd: Annotated[
            float | None, typer.Option("--gpu-hour-usd", min=0.0, help="Price of a GPU-hour (default: profile's).")
        ] = None,
        host_hour_usd: Annotated[
            float | None, typer.Option("--host-hour-usd", min=0.0, help="Shared: price of a host-hour.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Replicas, GPUs and cost per hour for a target load, from measured per-tier capacity and the router's mix."""
        if placement not in ("auto", "dedicated", "shared"):
            raise _fail(f"--placement must be auto, dedicated or shared, got {placement!r}")
        try:
            stack = load_config(config)
        except ConfigError as error:
            raise _fail(str(error)) from None
        path = profile_path or default_profile_path(config)
        try:
            if not path.exists():
                raise PlanError(
                    f"no capacity profile at {path}: measure each tier with `tierserve loadtest --find-capacity "
                    f"--model TIER --profile-out {path}` (or python -m benchmarks.plan_check), or pass --profile"
                )
            profile = load_profile(path)
            if slo_file is not None and profile.slo_file is not None and not _same_file(profile.slo_file, slo_file):
                raise PlanError(
                    f"{path} holds capacities at the SLOs of {profile.slo_file}, not {slo_file}: a capacity holds only "
                    "at the targets it was measured against; measure a profile with --slo-file "
                    f"{slo_file} (tierserve loadtest --find-capacity --profile-out)"
                )
            fleet = fleet_from_config(stack)
            auto = placement_for(fleet, profile.host_cpus)
            chosen: Placement = auto if placement == "auto" else placement  # type: ignore[assignment]
            shares, mix_source = _mix(stack, config, mix)
            capacity = fleet_capacity(
                shares,
                profile,
                fleet,
                placement=chosen,
                replicas={t.name: t.max_replicas for t in fleet},
                cache_hit=cache_hit,
            )
            made = None
            if rps is not None:
                made = plan_fleet(
                    rps,
                    shares,
                    profile,
                    fleet,
                    placement=chosen,
                    headroom=headroom,
                    cache_hit=cache_hit,
                    gpu_hour_usd=gpu_hour_usd if gpu_hour_usd is not None else profile.gpu_hour_usd,
                    host_hour_usd=host_hour_usd if host_hour_usd is not None else profile.host_hour_usd,
                )
        except PlanError as error:
            raise _fail(str(error)) from None
        warnings = list(dict.fromkeys([*capacity.warnings, *(made.warnings if made is not None else [])]))
        if slo_file is not None and profile.slo_file is None:
            warnings.append(f"{path} does not say which SLOs its capacities hold at")
        report: dict[str, Any] = {
            "config": str(config),
            "profile": str(path),
            "slo_file": profile.slo_file,
            "sources": profile.sources,
            "mix": {t: round(s, 4) for t, s in shares.items()},
            "mix_source": mix_source,
            "profile_tiers": {
                name: entry.model_dump(mode="json", exclude_none=True) for name, entry in profile.tiers.items()
            },
            "plan": made.as_dict() if made is not None else None,
            "capacity": capacity.as_dict(),
            "warnings": warnings,
        }
        if as_json:
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
            return
        _print(Console(), report, profile)
