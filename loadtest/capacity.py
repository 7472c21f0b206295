"""`tierserve loadtest --find-capacity`: run the scenario at 1, 2, 4, ... users (one short Locust run per
step) until an SLO breaks, optionally bisect between the last pass and that failure, and report the highest load
that met every SLO, overall and per tier."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.runner import LoadPlan, Verdict, judge, run_locust
from loadtest.slo import ScenarioSlo, SloResult

__all__ = ["StepResult", "capacity_steps", "find_capacity", "next_refinement", "summarize_capacity"]


def capacity_steps(max_users: int) -> list[int]:
    """Doubling user counts up to and including `max_users`: coarse first, since every step costs a run."""
    steps, users = [], 1
    while users < max_users:
        steps.append(users)
        users *= 2
    return [*steps, max_users]


# Floors on how much traffic a run carried: a gate's check that its configured load was served. A capacity
# step sets the load itself (1 user cannot make the requests/s of 4), so these are reported, not judged.
_THROUGHPUT = frozenset({"rps", "goodput_rps", "output_tokens_per_s", "requests"})


def _judged(result: SloResult) -> bool:
    return result.metric not in _THROUGHPUT


def _unmeasured(result: SloResult) -> bool:
    """A tier or cache SLO the step could not measure: in a short step at a few requests/s, one tier may
    get no streamed request (no TTFT) or none at all. That is no evidence of a breach, so it does not end
    the search; the step only shows no capacity for that scope. Overall SLOs must always be measured."""
    return result.measured is None and result.scope != "overall"


@dataclass(frozen=True)
class StepResult:
    users: int
    verdict: Verdict

    @property
    def breaches(self) -> list[SloResult]:
        return [r for r in self.verdict.breaches if _judged(r) and not _unmeasured(r)]

    @property
    def unmeasured(self) -> list[SloResult]:
        return [r for r in self.verdict.results if _judged(r) and _unmeasured(r)]

    def passed(self, scope: str | None = None) -> bool:
        """No SLO breached (scope None; a tier SLO the step could not measure is no breach), or every SLO
        of one scope (`tier:small`) measured and met, plus the overall error rate. Throughput floors are
        not judged: the step's load is what is being varied."""
        if scope is None:
            return not self.breaches
        if self.verdict.stats.group(scope) is None:
            return False  # a tier that got no request this step has shown no capacity
        return all(
            r.passed for r in self.verdict.results if _judged(r) and (r.scope == scope or r.name == "error_rate")
        )


def next_refinement(steps: list[StepResult]) -> int | None:
    """The user count halfway between the highest pass below the first failure and that failure, or None when
    they are adjacent (or nothing failed). Doubling alone leaves the limit anywhere in a factor of two, too
    coarse for a capacity plan to be checked against; each bisection step halves that interval."""
    ordered = sorted(steps, key=lambda s: s.users)
    failed = next((s.users for s in ordered if not s.passed()), None)
    if failed is None:
        return None
    passed = max((s.users for s in ordered if s.users < failed and s.passed()), default=0)
    middle = (passed + failed) // 2
    return middle if passed < middle < failed else None


def summarize_capacity(steps: list[StepResult], target_rps: float | None = None) -> dict[str, Any]:
    """The highest passing step overall and per tier, with the goodput it sustained there. Only steps below
    the first overall failure count: a pass above a failure is noise, not capacity. Steps are taken in order of
    their users, so bisection steps run after the doubling ones fall into place."""
    steps = sorted(steps, key=lambda s: s.users)
    counted: list[StepResult] = []
    for step in steps:
        counted.append(step)
        if not step.passed():
            break

    def best(scope: str | None) -> dict[str, Any]:
        passing = [s for s in counted if s.passed(scope)]
        if not passing:
            return {"max_users": 0, "goodput_rps": 0.0, "rps": 0.0, "output_tokens_per_s": 0.0}
        top = passing[-1]
        group = top.verdict.stats.group(scope or "overall")

        def figure(name: str) -> float:
            return round((group.metric(name) if group else None) or 0.0, 4)

        # tokens/s and latencies at the limit go with the rate: a capacity profile (loadtest/plan.py) keeps them
        return {
            "max_users": top.users,
            "goodput_rps": figure("goodput_rps"),
            "rps": figure("rps"),
            "output_tokens_per_s": figure("output_tokens_per_s"),
            "ttft_p95_ms": figure("ttft_p95_ms"),
            "e2e_p95_ms": figure("e2e_p95_ms"),
            "e2e_mean_ms": figure("e2e_mean_ms"),
        }

    tiers = sorted({t for s in counted for t in s.verdict.stats.tiers if t != "unknown"})
    overall = best(None)
    # every step passed: the limit lies above --max-users, and the figures are a lower bound
    overall["limit_found"] = any(not s.passed() for s in counted)
    if target_rps is not None and overall["goodput_rps"] > 0:
        overall["copies_for_target"] = math.ceil(target_rps / overall["goodput_rps"])
    return {
        "steps": [
            {
                "users": s.users,
                "passed": s.passed(),
                "breaches": [r.name for r in s.breaches],
                "unmeasured": [r.name for r in s.unmeasured],
                "rps": s.verdict.stats.overall.metric("rps"),
                "goodput_rps": s.verdict.stats.overall.metric("goodput_rps"),
                "e2e_p95_ms": s.verdict.stats.overall.metric("e2e_p95_ms"),
                "ttft_p95_ms": s.verdict.stats.overall.metric("ttft_p95_ms"),
                # the mix the router made at this load: what a capacity plan of the mix is checked with
                "tier_requests": {name: g.requests for name, g in s.verdict.stats.tiers.items()},
            }
            for s in steps
        ],
        "overall": overall,
        "tiers": {t: best(f"tier:{t}") for t in tiers},
        "target_rps": target_rps,
    }


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def find_capacity(
    console: Console,
    plan: LoadPlan,
    slo: ScenarioSlo,
    max_users: int,
    step_s: float,
    target_rps: float | None = None,
    refine: int = 0,
) -> dict[str, Any]:
    """Double the users until an SLO breaks, then run up to `refine` bisection steps between the last pass and
    the first failure."""
    steps: list[StepResult] = []

    def run_step(users: int) -> StepResult:
        step_plan = replace(
            plan,
            users=users,
            spawn_rate=float(users),  # all at once: the step measures a load level, not a ramp
            duration_s=step_s,
            records=plan.records.with_name(f"records-{users}u.jsonl"),
            log=plan.log.with_name(f"locust-{users}u.log"),
        )
        with console.status(f"capacity: {users} users for {step_s:.0f}s ..."):
            records = run_locust(step_plan)
        step = StepResult(users, judge(plan.scenario, records, slo, step_s))
        steps.append(step)
        verdict = (
            "[green]pass[/green]" if step.passed() else "[red]FAIL[/red] " + ", ".join(r.name for r in step.breaches)
        )
        if step.unmeasured:
            verdict += " (not measured: " + ", ".join(r.name for r in step.unmeasured) + ")"
        console.print(f"{users:>4} users: {len(records)} requests, {verdict}")
        return step

    for users in capacity_steps(max_users):
        if not run_step(users).passed():
            break
    for _ in range(refine):
        middle = next_refinement(steps)
        if middle is None:
            break
        run_step(middle)
    result = summarize_capacity(steps, target_rps)
    table = Table(title=f"Capacity — scenario {plan.scenario}", title_justify="left")
    for column in ("users", "rps", "goodput rps", "TTFT p95 ms", "e2e p95 ms", "result"):
        table.add_column(column, justify="right")
    for row in result["steps"]:
        outcome = "pass" if row["passed"] else "FAIL: " + ", ".join(row["breaches"])
        table.add_row(
            str(row["users"]),
            f"{row['rps'] or 0:.2f}",
            f"{row['goodput_rps'] or 0:.2f}",
            _ms(row["ttft_p95_ms"]),
            _ms(row["e2e_p95_ms"]),
            outcome + (f" ({len(row['unmeasured'])} not measured)" if row["unmeasured"] else ""),
        )
    console.print(table)
    top = result["overall"]
    console.print(
        f"highest load meeting every SLO: [bold]{top['max_users']} users[/bold], "
        f"{top['goodput_rps']:.2f} good requests/s"
        + ("" if top["limit_found"] else f" (every step passed: at least this; raise --max-users above {max_users})")
    )
    for tier, best in result["tiers"].items():
        console.print(f"  tier {tier}: {best['max_users']} users, {best['goodput_rps']:.2f} good requests/s")
    if "copies_for_target" in top:
        console.print(
            f"for {target_rps} requests/s: about {top['copies_for_target']}x the replicas measured here "
            "(capacity scales with replicas while the tier, not the gateway, is the bottleneck)"
        )
    return result
