"""Is `tierserve plan` right on this machine? On the embedded default (configs/default.yaml, one replica per tier):

1. measure each tier's capacity: a `--find-capacity` search of the `chat` scenario pinned to it (`model=<tier>`,
   every request on that tier), written as a capacity profile (`--profile-out`, what `tierserve plan` reads);
2. predict with the plan's own functions what the config's replicas carry of the routed mix (`model=auto`), with the
   router's calibrated shares (the plan's default) and with the shares the router really made in step 3;
3. measure it: the same search on the routed mix;
4. print and write predicted vs measured and their ratio (the goal: within 20 %).

Every search doubles the users until an SLO of `--slo-file` breaks, then bisects `--refine` times between the last
pass and the failure. With the defaults (60 s steps, up to 32 users) a search takes 6-10 steps of a minute or two
(a step lets the requests in flight at its end finish), so the whole check takes 30-60 minutes on 2 cores, plus a
minute or two to start the stack. It starts and stops the stack itself unless given `--url`. Run it from the
repository root (the paths are relative to it).

    python -m benchmarks.plan_check [--config configs/default.yaml] [--slo-file configs/slo-cpu.yaml]
        [--max-users 32] [--step-duration 60s] [--refine 3] [--profile-out configs/capacity-default.yaml]
        [--out docs/plan-check.json] [--url URL]
    python -m benchmarks.plan_check --repredict docs/plan-check.json   # the prediction again, from a run's searches
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.stack import served
from commands.plan import fleet_from_config
from loadtest.capacity import find_capacity
from loadtest.plan import (
    CapacityProfile,
    FleetTier,
    Placement,
    PlanError,
    check_mix,
    fleet_capacity,
    observed_mix,
    placement_for,
    save_profile,
    tier_profile_from_capacity,
    with_tier,
)
from loadtest.runner import LoadPlan, check_endpoint, parse_duration, write_json
from loadtest.slo import ScenarioSlo, load_slo_file
from serving.cli import first_api_key
from serving.config import load_config

SCENARIO = "chat"  # ShareGPT first turns at temperature 0.7: the cache is bypassed, every request is generated
GOAL = 0.2  # the "within 20 % of the measured capacity"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/default.yaml"))
    parser.add_argument("--slo-file", type=Path, default=Path("configs/slo-cpu.yaml"))
    parser.add_argument("--max-users", type=int, default=32, help="upper bound of every search")
    parser.add_argument("--step-duration", default="60s", help="one step of a search (a Locust run)")
    parser.add_argument("--refine", type=int, default=3, help="bisection steps after the first failure")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--think-time", default="0.5,2", help="MIN,MAX seconds between a user's requests")
    parser.add_argument("--tiers", default=None, help="comma-separated tiers to measure (default: every tier)")
    parser.add_argument("--profile-out", type=Path, default=Path("configs/capacity-default.yaml"))
    parser.add_argument("--out", type=Path, default=Path("docs/plan-check.json"))
    parser.add_argument("--url", default=None, help="a running stack of --config (default: start one)")
    parser.add_argument(
        "--repredict",
        type=Path,
        default=None,
        help="no load: predict again from this earlier result's profile and searches (after a change to the plan)",
    )
    return parser


@contextmanager
def _stack(args: argparse.Namespace, folder: Path) -> Iterator[str]:
    if args.url:
        yield args.url.rstrip("/")
        return
    with served(args.config, folder / "tierserve.log") as url:
        yield url


def _search(
    console: Console, args: argparse.Namespace, url: str, key: str, model: str, slo: ScenarioSlo, folder: Path
) -> dict[str, Any]:
    step_s = parse_duration(args.step_duration)
    console.rule(f"capacity of {SCENARIO}, model={model}")
    plan = LoadPlan(
        scenario=SCENARIO,
        url=url,
        users=1,
        spawn_rate=1.0,
        duration_s=step_s,
        records=folder / model / "records.jsonl",
        log=folder / model / "locust.log",
        api_key=key,
        model=model,
        max_tokens=args.max_tokens,
        think_time=args.think_time,
    )
    return find_capacity(console, plan, slo, args.max_users, step_s, refine=args.refine)


def _counted_steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps up to and including the first failure: the ones the capacity was read from."""
    counted = []
    for step in result["steps"]:
        counted.append(step)
        if not step["passed"]:
            break
    return counted


def _predict(
    mix: dict[str, float], profile: CapacityProfile, fleet: list[FleetTier], placement: Placement
) -> dict[str, Any]:
    tiers = [t.name for t in fleet]
    shares = check_mix(mix, tiers, "mix")
    replicas = {t.name: t.max_replicas for t in fleet}
    capacity = fleet_capacity(shares, profile, fleet, placement=placement, replicas=replicas)
    return {"mix": {t: round(s, 4) for t, s in shares.items()}, **capacity.as_dict()}


def main() -> None:
    args = _parser().parse_args()
    console = Console()
    config = load_config(args.config)
    fleet = fleet_from_config(config)
    calibrated = config.router.calibrated_shares
    if calibrated is None:
        sys.exit(f"{args.config} has no router.calibrated_shares to predict the mix with")
    if args.repredict is not None:
        earlier = json.loads(args.repredict.read_text())
        profile = CapacityProfile.model_validate(earlier["profile"])
        if profile.host_cpus is None:  # a run from before profiles recorded it: this machine's, which measured it
            profile = profile.model_copy(update={"host_cpus": os.cpu_count()})
        searches = {k: v for k, v in earlier["searches"].items() if k != "auto"}
        mixed, started = earlier["searches"]["auto"], earlier["started"]
        save_profile(args.profile_out, profile)
    else:
        profile, searches, mixed, started = _measure(args, console, fleet)
    _report(args, console, fleet, calibrated, profile, searches, mixed, started)


def _measure(
    args: argparse.Namespace, console: Console, fleet: list[FleetTier]
) -> tuple[CapacityProfile, dict[str, dict[str, Any]], dict[str, Any], str]:
    """Each tier's search (its profile entry) and the routed mix's."""
    tiers = args.tiers.split(",") if args.tiers else [t.name for t in fleet]
    slo = load_slo_file(args.slo_file).for_scenario(SCENARIO)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    profile: CapacityProfile | None = None
    searches: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="plan-check-") as tmp:
        folder = Path(tmp)
        with _stack(args, folder) as url:
            key = first_api_key(args.config)
            check_endpoint(url, key)
            for tier in tiers:
                searches[tier] = _search(console, args, url, key, tier, slo, folder)
                replicas = next(t.max_replicas for t in fleet if t.name == tier)
                source = (
                    f"python -m benchmarks.plan_check: {SCENARIO} pinned to {tier}, --find-capacity "
                    f"--step-duration {args.step_duration} --refine {args.refine} --max-tokens {args.max_tokens} "
                    f"--think-time {args.think_time} ({started})"
                )
                try:
                    entry = tier_profile_from_capacity(searches[tier], replicas, source)
                except PlanError as error:  # no step met the SLOs: nothing to predict with, keep the evidence
                    write_json(args.out, {"started": started, "failed": f"tier {tier}: {error}", "searches": searches})
                    sys.exit(f"tier {tier}: {error} (searches so far in {args.out})")
                profile = with_tier(
                    profile,
                    tier,
                    entry,
                    description=f"{args.config.name} on this machine, measured by benchmarks/plan_check.py",
                    hardware=f"{os.cpu_count()} logical CPUs ({platform.machine()}), every tier on the same cores",
                    host_cpus=os.cpu_count(),
                    slo_file=str(args.slo_file),
                    scenario=SCENARIO,
                )
                save_profile(args.profile_out, profile)  # after every tier: a later failure keeps the earlier ones
            mixed = _search(console, args, url, key, "auto", slo, folder)
    assert profile is not None
    return profile, searches, mixed, started


def _report(
    args: argparse.Namespace,
    console: Console,
    fleet: list[FleetTier],
    calibrated: dict[str, float],
    profile: CapacityProfile,
    searches: dict[str, dict[str, Any]],
    mixed: dict[str, Any],
    started: str,
) -> None:
    placement = placement_for(fleet, profile.host_cpus)
    observed = observed_mix(_counted_steps(mixed))
    predicted = _predict(calibrated, profile, fleet, placement)
    predicted_observed = _predict(observed, profile, fleet, placement) if observed else None
    measured = float(mixed["overall"]["rps"])

    def ratio(prediction: dict[str, Any] | None) -> float | None:
        return None if prediction is None or measured <= 0 else round(prediction["rps"] / measured, 4)

    predicted_ratio = ratio(predicted)

    result = {
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m benchmarks.plan_check " + " ".join(sys.argv[1:]),
        "config": str(args.config),
        "slo_file": str(args.slo_file),
        "scenario": SCENARIO,
        "placement": placement,
        "profile_file": str(args.profile_out),
        "profile": profile.model_dump(mode="json", exclude_none=True),
        "predicted": predicted,
        "predicted_with_observed_mix": predicted_observed,
        "measured": {
            "rps": measured,
            "goodput_rps": mixed["overall"]["goodput_rps"],
            "max_users": mixed["overall"]["max_users"],
            "limit_found": mixed["overall"]["limit_found"],
            "observed_mix": {t: round(s, 4) for t, s in observed.items()},
        },
        "ratio": predicted_ratio,
        "ratio_with_observed_mix": ratio(predicted_observed),
        "within_goal": None if predicted_ratio is None else abs(predicted_ratio - 1) <= GOAL,
        "goal": f"predicted within {GOAL:.0%} of measured",
        "searches": {**searches, "auto": mixed},
    }
    write_json(args.out, result)
    console.print_json(json.dumps({k: result[k] for k in ("predicted", "measured", "ratio", "within_goal")}))
    if not mixed["overall"]["limit_found"]:
        console.print("[yellow]the routed mix met every SLO up to --max-users: measured is a lower bound[/yellow]")
    console.print(f"wrote {args.out} and {args.profile_out}")


if __name__ == "__main__":
    main()
