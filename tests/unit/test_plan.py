"""Capacity planning: the arithmetic of loadtest/plan.py, capacity profiles written by a pinned capacity search (with
its bisection), and `tierserve plan` on the shipped GPU fleet and on configs of its own."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from benchmarks.plan_check import _parser as plan_check_parser
from commands.plan import add_plan_command, default_profile_path, fleet_from_config
from loadtest.capacity import StepResult, next_refinement, summarize_capacity
from loadtest.plan import (
    CapacityProfile,
    FleetTier,
    PlanError,
    TierProfile,
    check_mix,
    fleet_capacity,
    load_mix,
    load_profile,
    observed_mix,
    placement_for,
    plan_fleet,
    save_profile,
    tier_profile_from_capacity,
    with_tier,
)
from loadtest.records import RequestRecord
from loadtest.runner import LoadPlan, judge
from loadtest.slo import ScenarioSlo
from serving.config import load_config

ROOT = Path(__file__).resolve().parents[2]
GPU_FLEET = [
    FleetTier("small", 1, 1, 8, 256),
    FleetTier("medium", 1, 1, 4, 128),
    FleetTier("large", 4, 1, 2, 64),
]
GPU_MIX = {"small": 0.6, "medium": 0.3, "large": 0.1}


def gpu_profile(large_e2e_s: float | None = None) -> CapacityProfile:
    return CapacityProfile(
        slo_file="configs/slo.yaml",
        gpu_hour_usd=3.5,
        tiers={
            "small": TierProfile(rps_per_replica=32),
            "medium": TierProfile(rps_per_replica=32),
            "large": TierProfile(rps_per_replica=16, mean_e2e_s=large_e2e_s),
        },
    )


# ------------------------------------------------------------------------------------------------ the arithmetic


def test_dedicated_plan_sizes_every_tier_for_its_share_at_the_headroom() -> None:
    plan = plan_fleet(1000, GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated", gpu_hour_usd=3.5)
    rows = {t.tier: t for t in plan.tiers}
    # 600 / (32 x 0.8) = 23.4 -> 24; 300 / 25.6 = 11.7 -> 12; 100 / (16 x 0.8) = 7.8 -> 8 replicas of 4 GPUs
    assert [rows[t].replicas for t in ("small", "medium", "large")] == [24, 12, 8]
    assert [rows[t].gpus for t in ("small", "medium", "large")] == [24, 12, 32]
    assert rows["small"].demand_rps == pytest.approx(600) and rows["large"].utilization == pytest.approx(100 / 128)
    assert plan.gpus == 68 and plan.cost_per_hour_usd == pytest.approx(238.0)
    assert plan.usd_per_million_requests == pytest.approx(238.0 / 3.6)  # 3.6 M requests an hour
    assert plan.hosts is None
    # the config's autoscaling bounds (8, 4, 2) are far below: each tier is named
    assert [w.split(":")[0] for w in plan.warnings] == ["tier small", "tier medium", "tier large"]
    assert plan.as_dict()["replicas"] == 44 and plan.as_dict()["tiers"][2]["cost_per_hour_usd"] == pytest.approx(112.0)


def test_replicas_round_up_but_not_on_floating_point_noise() -> None:
    fleet = [FleetTier("only", 1, 1, 100)]
    profile = CapacityProfile(tiers={"only": TierProfile(rps_per_replica=32)})
    exact = plan_fleet(512, {"only": 1.0}, profile, fleet, placement="dedicated")  # 512 / 25.6 is exactly 20
    assert exact.tiers[0].replicas == 20 and exact.tiers[0].utilization == pytest.approx(0.8)
    assert plan_fleet(512.1, {"only": 1.0}, profile, fleet, placement="dedicated").tiers[0].replicas == 21
    assert plan_fleet(10, {"only": 1.0}, profile, fleet, placement="dedicated", headroom=1.0).tiers[0].replicas == 1
    assert exact.cost_per_hour_usd is None and "no cost" in exact.warnings[-1]  # no price given, none in profile


def test_cache_hits_take_load_off_every_tier() -> None:
    plan = plan_fleet(1000, GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated", cache_hit=0.2)
    assert [t.demand_rps for t in plan.tiers] == pytest.approx([480, 240, 80])
    assert [t.replicas for t in plan.tiers] == [19, 10, 7]


def test_a_replica_is_planned_only_at_the_rate_its_request_slots_allow() -> None:
    # 16 requests/s of 7.3 s each hold 117 requests at once (Little's law); max_ongoing_requests 64 allows 64,
    # so one replica carries 64 / 7.3 = 8.77 requests/s at most
    plan = plan_fleet(1000, GPU_MIX, gpu_profile(7.3), GPU_FLEET, placement="dedicated", gpu_hour_usd=3.5)
    large = plan.tiers[2]
    assert large.rps_per_replica == pytest.approx(64 / 7.3) and large.replicas == math.ceil(100 / (64 / 7.3 * 0.8))
    assert large.replicas == 15 and plan.gpus == 24 + 12 + 60
    assert any("need 117 in flight per replica, max_ongoing_requests allows 64" in w for w in plan.warnings)
    roomy = [*GPU_FLEET[:2], FleetTier("large", 4, 1, 2, 128)]  # enough slots: the published rate holds
    assert plan_fleet(1000, GPU_MIX, gpu_profile(7.3), roomy, placement="dedicated").tiers[2].replicas == 8


def test_fleet_capacity_is_set_by_the_tier_that_fills_first() -> None:
    replicas = {"small": 8, "medium": 4, "large": 2}
    capacity = fleet_capacity(GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated", replicas=replicas)
    # small: 8 x 32 / 0.6 = 426.7, medium: 4 x 32 / 0.3 = 426.7, large: 2 x 16 / 0.1 = 320
    assert capacity.rps == pytest.approx(320) and capacity.bottleneck == "large"
    assert capacity.tier_limits["small"] == pytest.approx(8 * 32 / 0.6)
    halved = fleet_capacity(GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated", replicas=replicas, cache_hit=0.5)
    assert halved.rps == pytest.approx(640)  # half the requests never reach a tier
    only_small = fleet_capacity({"small": 1.0}, gpu_profile(), GPU_FLEET, placement="dedicated", replicas=replicas)
    assert only_small.rps == 256 and only_small.bottleneck == "small"


def test_shared_host_adds_the_tiers_time_shares() -> None:
    # the embedded default: both tiers on the same cores; measured alone, the host carries 1.2 requests/s of
    # `small` or 0.4 of `large`. A 70/30 mix uses 0.7/1.2 + 0.3/0.4 = 1.333 hosts per request/s.
    fleet = [FleetTier("small", 0, 1, 1, 32), FleetTier("large", 0, 1, 1, 32)]
    assert placement_for(fleet) == "shared" and placement_for(GPU_FLEET) == "dedicated"
    assert placement_for(fleet, host_cpus=1) == "shared"  # two engines' threads on one core
    profile = CapacityProfile(
        tiers={"small": TierProfile(rps_per_replica=1.2), "large": TierProfile(rps_per_replica=0.4)}
    )
    mix = {"small": 0.7, "large": 0.3}
    capacity = fleet_capacity(mix, profile, fleet, placement="shared", replicas={"small": 1, "large": 1})
    assert capacity.rps == pytest.approx(1 / (0.7 / 1.2 + 0.3 / 0.4)) and capacity.bottleneck == "large"
    assert sum(capacity.tier_limits.values()) == pytest.approx(1.0)  # shares of the host's time
    plan = plan_fleet(3, mix, profile, fleet, placement="shared", host_hour_usd=2.0)
    assert plan.hosts == math.ceil(3 * (0.7 / 1.2 + 0.3 / 0.4) / 0.8) == 5
    assert [t.replicas for t in plan.tiers] == [5, 5] and plan.cost_per_hour_usd == pytest.approx(10.0)
    # a profile measured with 2 replicas per tier on the host still describes the host
    two = CapacityProfile(
        tiers={
            "small": TierProfile(rps_per_replica=0.6, measured_replicas=2),
            "large": TierProfile(rps_per_replica=0.2, measured_replicas=2),
        }
    )
    assert fleet_capacity(mix, two, fleet, placement="shared", replicas={}).rps == pytest.approx(capacity.rps)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: plan_fleet(0, GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated"), "above 0"),
        (lambda: plan_fleet(1, GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated", headroom=0), "headroom"),
        (lambda: plan_fleet(1, GPU_MIX, gpu_profile(), GPU_FLEET, placement="dedicated", cache_hit=1), "cache hit"),
        (
            lambda: plan_fleet(1, GPU_MIX, CapacityProfile(), GPU_FLEET, placement="dedicated"),
            "no figure for tier(s) small, medium, large",
        ),
    ],
)
def test_impossible_plans_say_why(call: Any, needle: str) -> None:
    with pytest.raises(PlanError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        call()


# ------------------------------------------------------------------------------------------------------ the mix


def test_mix_covers_every_tier_and_adds_up_to_one(tmp_path: Path) -> None:
    tiers = ["small", "medium", "large"]
    assert check_mix({"small": 0.7, "large": 0.3}, tiers, "x") == {"small": 0.7, "medium": 0.0, "large": 0.3}
    scaled = check_mix({"small": 0.333, "medium": 0.333, "large": 0.333}, tiers, "x")
    assert sum(scaled.values()) == pytest.approx(1.0) and scaled["small"] == pytest.approx(1 / 3)
    for bad, needle in (
        ({"huge": 1.0}, "unknown tier(s) huge"),
        ({"small": 0.5}, "add up to 0.5000"),
        ({"small": 1.5, "large": -0.5}, "between 0 and 1"),
        ({"small": "all"}, "between 0 and 1"),
    ):
        with pytest.raises(PlanError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            check_mix(bad, tiers, "mix")  # type: ignore[arg-type]
    (tmp_path / "mix.yaml").write_text("small: 0.5\nmedium: 0.25\nlarge: 0.25\n")
    (tmp_path / "mix.json").write_text(json.dumps({"small": 0.9, "large": 0.1}))
    assert load_mix(tmp_path / "mix.yaml", tiers) == {"small": 0.5, "medium": 0.25, "large": 0.25}
    assert load_mix(tmp_path / "mix.json", tiers)["large"] == pytest.approx(0.1)
    (tmp_path / "list.yaml").write_text("- small\n")
    with pytest.raises(PlanError, match="expected a mapping"):
        load_mix(tmp_path / "list.yaml", tiers)
    with pytest.raises(PlanError, match="cannot read mix file"):
        load_mix(tmp_path / "missing.yaml", tiers)


def test_observed_mix_counts_what_each_tier_answered() -> None:
    steps = [{"tier_requests": {"small": 6, "large": 2}}, {"tier_requests": {"small": 8, "unknown": 3}}, {}]
    assert observed_mix(steps) == {"small": 0.875, "large": 0.125}
    assert observed_mix([]) == {}


# ------------------------------------------------------------------------------ profiles from a capacity search


def _record(start: float, e2e: float, tier: str = "small") -> RequestRecord:
    return RequestRecord(start, e2e, 200, True, stream=True, ttft_s=0.2, itl_s=(0.05,), output_tokens=40, tier=tier)


def _step(users: int, e2e: float, duration: float = 10) -> StepResult:
    """`users` each finishing two requests in the step; the SLO is e2e p95 <= 1 s."""
    slo = ScenarioSlo.model_validate({"overall": {"e2e_p95_ms": 1000}})
    records = [_record(i * 0.1, e2e) for i in range(2 * users)]
    return StepResult(users, judge("chat", records, slo, duration))


def test_a_pinned_search_becomes_a_profile_entry(tmp_path: Path) -> None:
    result = summarize_capacity([_step(1, 0.5), _step(2, 0.5), _step(4, 0.8), _step(8, 3.0)])
    assert result["overall"]["max_users"] == 4 and result["steps"][2]["tier_requests"] == {"small": 8}
    entry = tier_profile_from_capacity(result, replicas=2, source="test run")
    # 8 requests in 10 s at the highest pass, over 2 replicas; 40 tokens each; 0.8 s each
    assert entry.rps_per_replica == pytest.approx(0.4) and entry.output_tokens_per_s_per_replica == pytest.approx(16)
    assert entry.mean_output_tokens == pytest.approx(40) and entry.mean_e2e_s == pytest.approx(0.8)
    assert entry.max_users == 4 and entry.limit_found and entry.measured_replicas == 2
    profile = with_tier(None, "small", entry, slo_file="configs/slo-cpu.yaml", scenario="chat", hardware="2 CPUs")
    path = tmp_path / "nested" / "profile.yaml"
    save_profile(path, profile)
    assert load_profile(path) == profile
    large = with_tier(load_profile(path), "large", entry.model_copy(update={"rps_per_replica": 0.1}))
    assert set(large.tiers) == {"small", "large"} and large.slo_file == "configs/slo-cpu.yaml"
    with pytest.raises(PlanError, match="measured with slo_file 'configs/slo-cpu.yaml', not 'configs/slo.yaml'"):
        with_tier(large, "small", entry, slo_file="configs/slo.yaml")
    with pytest.raises(PlanError, match="no step of the capacity search met the SLOs"):
        tier_profile_from_capacity(summarize_capacity([_step(1, 3.0)]), 1, "x")


def test_bad_profiles_are_named(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("tiers: {small: {rps_per_replica: 0}}\n")
    with pytest.raises(PlanError, match=r"p.yaml: tiers.small.rps_per_replica: Input should be greater than 0"):
        load_profile(path)
    path.write_text("tiers: [")
    with pytest.raises(PlanError, match="not valid YAML"):
        load_profile(path)


def test_bisection_narrows_the_limit_between_the_last_pass_and_the_first_failure() -> None:
    def steps(*users_passed: tuple[int, bool]) -> list[StepResult]:
        return [_step(u, 0.5 if ok else 3.0) for u, ok in users_passed]

    assert next_refinement(steps((1, True), (2, True))) is None  # nothing failed
    assert next_refinement(steps((1, False))) is None  # nothing below the failure to bisect towards
    assert next_refinement(steps((1, True), (2, True), (4, True), (8, True), (16, False))) == 12
    assert next_refinement(steps((8, True), (16, False), (12, False))) == 10
    assert next_refinement(steps((8, True), (16, False), (12, False), (10, True))) == 11
    assert next_refinement(steps((8, True), (16, False), (12, False), (10, True), (11, False))) is None
    # run out of order, the steps still sort into one search: 11 users is the limit
    result = summarize_capacity(steps((1, True), (8, True), (16, False), (12, False), (10, True), (11, True)))
    assert [s["users"] for s in result["steps"]] == [1, 8, 10, 11, 12, 16]
    assert result["overall"]["max_users"] == 11 and result["overall"]["limit_found"] is True


def test_find_capacity_bisects_after_doubling(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rich.console import Console

    from loadtest.capacity import find_capacity

    tried: list[int] = []

    def fake_run(plan: LoadPlan, progress: object = None) -> list[RequestRecord]:
        tried.append(plan.users)
        e2e = 0.5 if plan.users <= 11 else 3.0  # this stack holds its SLO up to 11 users
        return [_record(i * 0.1, e2e) for i in range(2 * plan.users)]

    monkeypatch.setattr("loadtest.capacity.run_locust", fake_run)
    plan = LoadPlan("chat", "http://x", 1, 1, 10, tmp_path / "r.jsonl", tmp_path / "l.log")
    slo = ScenarioSlo.model_validate({"overall": {"e2e_p95_ms": 1000}})
    with (tmp_path / "out.txt").open("w") as sink:
        result = find_capacity(Console(file=sink), plan, slo, 32, 10, refine=3)
        assert tried == [1, 2, 4, 8, 16, 12, 10, 11]
        assert result["overall"]["max_users"] == 11 and result["overall"]["rps"] == pytest.approx(2.2)
        tried.clear()
        assert find_capacity(Console(file=sink), plan, slo, 32, 10)["overall"]["max_users"] == 8
        assert tried == [1, 2, 4, 8, 16]  # without --refine: doubling only, as before


def test_loadtest_writes_a_profile_only_for_a_pinned_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from loadtest.cli import add_loadtest_command

    app = typer.Typer()
    add_loadtest_command(app, lambda config: "")
    app.command("unused")(lambda: None)  # a second command keeps `loadtest` a subcommand, as in `tierserve`
    monkeypatch.setattr("loadtest.cli.check_endpoint", lambda url, key: None)
    monkeypatch.setattr(
        "loadtest.capacity.run_locust",
        lambda plan, progress=None: [_record(i, 0.5, tier="large") for i in range(2 * plan.users)],
    )
    profile = tmp_path / "capacity.yaml"
    base = ["loadtest", "--url", "http://127.0.0.1:9", "--out-dir", str(tmp_path), "--find-capacity"]
    base += ["--max-users", "2", "--step-duration", "10s", "--profile-out", str(profile)]
    result = CliRunner().invoke(app, base)  # model auto: a routed mix is no one tier's capacity
    assert result.exit_code == 2 and "--model TIER" in result.stdout and not profile.exists()
    result = CliRunner().invoke(app, [*base, "--model", "large", "--profile-replicas", "2"])
    assert result.exit_code == 0, result.stdout
    written = load_profile(profile)
    assert written.slo_file == "configs/slo-cpu.yaml" and written.scenario == "chat"
    entry = written.tiers["large"]
    assert entry.rps_per_replica == pytest.approx(0.2) and entry.limit_found is False  # 4 requests/10 s, 2 replicas
    assert "--model large" in entry.source
    result = CliRunner().invoke(app, [*base, "--model", "large", "--slo-file", "configs/slo.yaml"])
    assert result.exit_code == 2 and "not 'configs/slo.yaml'" in result.stdout  # refused before any load


# ----------------------------------------------------------------------------------------------- tierserve plan


@pytest.fixture
def plan_app() -> typer.Typer:
    app = typer.Typer()
    add_plan_command(app)

    @app.command("unused")
    def _unused() -> None:  # a second command keeps `plan` a subcommand, as in `tierserve`
        pass

    return app


def run_plan(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["plan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_gpu_fleet_at_1000_requests_per_second(plan_app: typer.Typer) -> None:
    """The worked example of docs/capacity-planning.md, from the shipped profile of vLLM's published figures."""
    code, out, err = run_plan(plan_app, "--config", str(ROOT / "configs/gpu.yaml"), "--rps", "1000", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["mix"] == {"small": 0.6, "medium": 0.3, "large": 0.1}
    assert report["mix_source"].startswith("router.calibrated_shares")
    assert (
        report["slo_file"] == "configs/slo.yaml"
        and "https://blog.vllm.ai/2024/09/05/perf-update.html" in (report["sources"])
    )
    plan = report["plan"]
    # large: 64 request slots (configs/gpu.yaml) at 7.3 s a request carry 8.77/s, not the published 16/s
    assert [t["replicas"] for t in plan["tiers"]] == [24, 12, 15]
    assert plan["gpus"] == 96 and plan["cost_per_hour_usd"] == pytest.approx(336.0)
    assert plan["usd_per_million_requests"] == pytest.approx(93.3333, abs=1e-3)
    assert report["capacity"]["bottleneck"] == "large" and report["capacity"]["rps"] == pytest.approx(175.34, abs=0.01)
    assert any("max_ongoing_requests allows 64" in w for w in report["warnings"])


def test_plan_table_mix_file_and_no_target(plan_app: typer.Typer, tmp_path: Path) -> None:
    config = str(ROOT / "configs/gpu.yaml")
    code, out, _ = run_plan(plan_app, "--config", config, "--rps", "1000", "--gpu-hour-usd", "2")
    assert code == 0 and "$192.00/hour" in out.replace("\n", " ") and "warning:" in out
    (tmp_path / "mix.yaml").write_text("large: 1\n")
    code, out, _ = run_plan(plan_app, "--config", config, "--rps", "100", "--mix", str(tmp_path / "mix.yaml"), "--json")
    report = json.loads(out)
    assert code == 0 and report["mix"] == {"small": 0.0, "medium": 0.0, "large": 1.0}
    assert [t["replicas"] for t in report["plan"]["tiers"]] == [0, 0, 15]
    code, out, _ = run_plan(plan_app, "--config", config, "--json")  # no --rps: what the config carries
    report = json.loads(out)
    assert code == 0 and report["plan"] is None
    assert report["capacity"]["replicas"] == {"small": 8, "medium": 4, "large": 2}


def _cpu_config(tmp_path: Path, shares: bool = True) -> Path:
    config = yaml.safe_load((ROOT / "configs/default.yaml").read_text())
    if not shares:
        config["router"].pop("calibrated_shares")
    path = tmp_path / "configs" / "cpu.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_plan_on_the_shared_cpu_host(plan_app: typer.Typer, tmp_path: Path) -> None:
    config = _cpu_config(tmp_path)
    code, _, err = run_plan(plan_app, "--config", str(config), "--rps", "2")
    assert code == 2 and "no capacity profile at" in err and "--profile-out" in err
    profile = CapacityProfile(
        hardware="2 CPUs",
        slo_file="configs/slo-cpu.yaml",
        tiers={"small": TierProfile(rps_per_replica=1.2), "large": TierProfile(rps_per_replica=0.4)},
    )
    assert default_profile_path(config) == config.parent / "capacity-cpu.yaml"
    save_profile(default_profile_path(config), profile)
    code, out, err = run_plan(plan_app, "--config", str(config), "--rps", "2", "--host-hour-usd", "1.5", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["plan"]["placement"] == "shared" and report["plan"]["hosts"] == math.ceil(2 / 0.8 * 1.3333 - 1e-9)
    assert report["plan"]["cost_per_hour_usd"] == pytest.approx(1.5 * report["plan"]["hosts"])
    assert report["capacity"]["rps"] == pytest.approx(1 / (0.7 / 1.2 + 0.3 / 0.4), abs=1e-4)
    code, _, err = run_plan(plan_app, "--config", str(config), "--slo-file", "configs/slo.yaml")
    assert code == 2 and "holds capacities at the SLOs of configs/slo-cpu.yaml" in err
    code, _, _ = run_plan(plan_app, "--config", str(config), "--slo-file", "configs/slo-cpu.yaml")
    assert code == 0


def test_plan_needs_a_mix(plan_app: typer.Typer, tmp_path: Path) -> None:
    config = _cpu_config(tmp_path, shares=False)
    save_profile(default_profile_path(config), CapacityProfile(tiers={"small": TierProfile(rps_per_replica=1)}))
    code, _, err = run_plan(plan_app, "--config", str(config), "--rps", "1")
    assert code == 2 and "no router.calibrated_shares" in err and "tierserve router calibrate" in err
    (tmp_path / "mix.yaml").write_text("small: 1\n")
    code, out, err = run_plan(plan_app, "--config", str(config), "--mix", str(tmp_path / "mix.yaml"), "--json")
    assert code == 0, err
    assert json.loads(out)["capacity"]["rps"] == pytest.approx(1.0)  # all on small: large's missing figure is moot
    code, _, err = run_plan(plan_app, "--config", str(config), "--placement", "sideways")
    assert code == 2 and "--placement must be" in err


def test_the_fleet_comes_from_the_config() -> None:
    fleet = fleet_from_config(load_config(ROOT / "configs/gpu.yaml"))
    assert fleet == GPU_FLEET
    cpu = fleet_from_config(load_config(ROOT / "configs/default.yaml"))
    assert [(t.name, t.gpus_per_replica, t.min_replicas, t.max_replicas) for t in cpu] == [
        ("small", 0.0, 1, 1),
        ("large", 0.0, 1, 1),
    ]
    shipped = load_profile(ROOT / "configs/capacity-gpu.yaml")
    assert set(shipped.tiers) == {t.name for t in fleet} and all(t.source for t in shipped.tiers.values())


def test_the_check_script_parses_its_arguments() -> None:
    args = plan_check_parser().parse_args([])
    assert args.config == Path("configs/default.yaml") and args.slo_file == Path("configs/slo-cpu.yaml")
    assert args.out == Path("docs/plan-check.json") and args.refine == 3 and args.url is None
    args = plan_check_parser().parse_args(["--url", "http://h:1", "--tiers", "small", "--max-users", "8"])
    assert (args.url, args.tiers, args.max_users) == ("http://h:1", "small", 8)


def test_one_slo_file_spelt_two_ways_is_one_file() -> None:
    first = with_tier(None, "small", TierProfile(rps_per_replica=2), slo_file="configs/slo.yaml", scenario="chat")
    both = with_tier(first, "large", TierProfile(rps_per_replica=1), slo_file="./configs/slo.yaml", scenario="chat")
    assert set(both.tiers) == {"small", "large"}
    with pytest.raises(PlanError, match="scenario"):
        with_tier(both, "large", TierProfile(rps_per_replica=1), slo_file="configs/slo.yaml", scenario="cache")


def test_cpu_engines_whose_threads_fit_the_host_plan_as_dedicated() -> None:
    # configs/default.yaml on 2 cores: one replica each, 0.5 Ray CPU = one compute thread each: they fit.
    two = [FleetTier("small", 0, 1, 1, 32, engine_threads=1), FleetTier("large", 0, 1, 1, 32, engine_threads=1)]
    assert placement_for(two, host_cpus=2) == "dedicated"
    # configs/test.yaml: small has two replicas, three threads on two cores share them.
    three = [FleetTier("small", 0, 2, 2, 16, engine_threads=1), FleetTier("large", 0, 1, 1, 16, engine_threads=1)]
    assert placement_for(three, host_cpus=2) == "shared"
    assert placement_for(two) == "shared"  # a profile that does not say its host's cores: the safe side
