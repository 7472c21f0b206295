"""`tierserve loadtest`: the release gate. Runs a scenario under Locust, prints every SLO with its measured
value, writes an HTML report and a JSON summary, and exits 1 when any SLO is missed.

Exit codes: 0 every SLO met, 1 an SLO missed, 2 bad input (scenario, --slo, SLO file, unreachable URL),
3 the load itself failed (Locust crashed, the stack did not start).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadtest.records import RequestRecord, read_records
from loadtest.runner import (
    LoadPlan,
    LoadtestError,
    Verdict,
    check_endpoint,
    judge,
    managed_stack,
    parse_duration,
    run_locust,
    write_json,
)
from loadtest.slo import ScenarioSlo, SloError, apply_override, load_slo_file
from loadtest.workloads import SCENARIOS, UnknownScenarioError, scenario

__all__ = ["add_loadtest_command", "print_verdict"]

DEFAULT_SLO_FILE = Path("configs/slo-cpu.yaml")
DEFAULT_STACK_CONFIG = Path("configs/default.yaml")


def _fail(console: Console, message: str, code: int) -> typer.Exit:
    console.print(Text(f"error: {message}", style="red"), soft_wrap=True)
    return typer.Exit(code)


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if metric.endswith("_ms"):
        return f"{value:,.1f} ms"
    if metric in ("error_rate", "goodput_ratio", "cache_hit_ratio"):
        return f"{value:.1%}"
    return f"{value:,.2f}"


def print_verdict(console: Console, verdict: Verdict) -> None:
    table = Table(title=f"SLOs — scenario {verdict.scenario} ({verdict.records} requests)", title_justify="left")
    for column in ("SLO", "target", "measured", "result"):
        table.add_column(column, justify="left" if column == "SLO" else "right")
    for r in verdict.results:
        bound = "≤" if r.direction == "max" else "≥"
        result = "[green]pass[/green]" if r.passed else f"[red]FAIL[/red] {r.note}".rstrip()
        table.add_row(r.name, f"{bound} {_fmt(r.target, r.metric)}", _fmt(r.measured, r.metric), result)
    console.print(table)
    overall = verdict.stats.overall
    mix = ", ".join(f"{n} {g.requests}" for n, g in verdict.stats.tiers.items())
    cache = ", ".join(f"{n} {g.requests}" for n, g in verdict.stats.caches.items())
    errors = ", ".join(f"{k}: {v}" for k, v in overall.errors_by_kind.items()) or "none"
    console.print(
        f"rps {_fmt(overall.metric('rps'), 'rps')}, goodput {_fmt(overall.metric('goodput_rps'), 'rps')}/s, "
        f"output {_fmt(overall.metric('output_tokens_per_s'), 'x')} tok/s | tiers: {mix} | cache: {cache} | "
        f"errors: {errors}",
        highlight=False,
    )
    if verdict.passed:
        console.print("[bold green]PASS[/bold green]: every SLO met")
    else:
        names = ", ".join(r.name for r in verdict.breaches)
        console.print(f"[bold red]FAIL[/bold red]: {len(verdict.breaches)} SLO(s) missed: {names}")


def _resolve_slo(console: Console, slo_file: Path, name: str, overrides: list[str]) -> ScenarioSlo:
    try:
        slo = load_slo_file(slo_file).for_scenario(name)
        for text in overrides:
            slo = apply_override(slo, text)
    except SloError as error:
        raise _fail(console, str(error), 2) from None
    return slo


@contextmanager
def _progress(console: Console, total_s: float) -> Iterator[Callable[[float, int], None]]:
    with console.status("starting Locust ...") as status:

        def update(elapsed: float, records: int) -> None:
            status.update(f"load: {elapsed:.0f}/{total_s:.0f}s, {records} requests recorded")

        yield update


def add_loadtest_command(app: typer.Typer, stack_api_key: Callable[[Path], str]) -> None:
    """Register `loadtest` on the `tierserve` app (commands.main). `stack_api_key(config)` is a key the stack that
    config describes accepts ("" when it needs none): the loadtest package reads no stack config itself."""

    @app.command("loadtest")
    def loadtest(
        scenario_name: Annotated[
            str, typer.Option("--scenario", "-s", help=f"One of: {', '.join(SCENARIOS)}.")
        ] = "chat",
        users: Annotated[int, typer.Option("--users", "-u", min=1, help="Concurrent simulated users.")] = 4,
        spawn_rate: Annotated[float, typer.Option("--spawn-rate", "-r", min=0.01, help="Users started/s.")] = 2.0,
        duration: Annotated[
            str | None, typer.Option("--duration", "-t", help="Run time: 60s, 5m, 1h (default 60s; soak 30m).")
        ] = None,
        url: Annotated[
            str | None, typer.Option("--url", help="A running stack. Without it, the stack is started and stopped.")
        ] = None,
        api_key: Annotated[str, typer.Option("--api-key", envvar="TIERSERVE_API_KEY", help="Bearer key.")] = "",
        slo_file: Annotated[Path, typer.Option("--slo-file", help="SLO targets per scenario.")] = DEFAULT_SLO_FILE,
        slo: Annotated[
            list[str] | None, typer.Option("--slo", help="Override one target: NAME=VALUE (repeatable).")
        ] = None,
        json_out: Annotated[Path | None, typer.Option("--json-out", help="Write the JSON summary here.")] = None,
        report: Annotated[Path | None, typer.Option("--report", help="HTML report (default: in --out-dir).")] = None,
        out_dir: Annotated[Path, typer.Option("--out-dir", help="Records, report, Locust log.")] = Path(
            ".tierserve/loadtest"
        ),
        model: Annotated[str, typer.Option("--model", help="Model alias (auto: routed).")] = "auto",
        max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Cap on output tokens.")] = 64,
        think_time: Annotated[str, typer.Option("--think-time", help="MIN,MAX seconds between requests.")] = "0.5,2",
        config: Annotated[
            Path, typer.Option("--config", "-c", help="Stack config to start when --url is not given.")
        ] = DEFAULT_STACK_CONFIG,
        port: Annotated[int | None, typer.Option("--port", help="Port for the stack it starts.")] = None,
        from_records: Annotated[
            Path | None, typer.Option("--from-records", help="Judge an earlier run's records; run no load.")
        ] = None,
        find_capacity: Annotated[
            bool, typer.Option("--find-capacity", help="Ramp users until an SLO breaks; report the highest pass.")
        ] = False,
        max_users: Annotated[int, typer.Option("--max-users", min=1, help="Capacity search: upper bound.")] = 64,
        step_duration: Annotated[str, typer.Option("--step-duration", help="Capacity search: per step.")] = "30s",
        target_rps: Annotated[
            float | None, typer.Option("--target-rps", min=0.0, help="Capacity search: requests/s to plan for.")
        ] = None,
        refine: Annotated[
            int,
            typer.Option(
                "--refine",
                min=0,
                help="Capacity search: after the first failing step, up to this many steps bisecting the users "
                "between it and the last pass (doubling alone leaves the limit within a factor of 2).",
            ),
        ] = 0,
        profile_out: Annotated[
            Path | None,
            typer.Option(
                "--profile-out",
                help="Capacity search pinned to one tier (--model TIER): record the tier's capacity in this profile "
                "file for `tierserve plan` (other tiers' entries are kept).",
            ),
        ] = None,
        profile_replicas: Annotated[
            int, typer.Option("--profile-replicas", min=1, help="With --profile-out: replicas the tier ran.")
        ] = 1,
        watch_pid: Annotated[
            int | None,
            typer.Option(
                "--watch-pid",
                help="With --url: the stack's `tierserve serve` pid, to sample its memory and open files per "
                "component through the run (a stack this command starts is watched anyway).",
            ),
        ] = None,
        watch_interval: Annotated[
            float, typer.Option("--watch-interval", min=0.5, help="Seconds between samples.")
        ] = 10.0,
    ) -> None:
        """Run a load scenario against the stack and gate on its SLOs (exit 1 when any is missed)."""
        console = Console(stderr=False)
        try:
            chosen = scenario(scenario_name)
            run_s = parse_duration(duration) if duration else chosen.default_duration_s or 60.0
            step_s = parse_duration(step_duration)
        except (UnknownScenarioError, ValueError) as error:
            raise _fail(console, str(error), 2) from None
        low, _, high = think_time.partition(",")
        try:
            if float(low) < 0 or float(high or low) < float(low):
                raise ValueError
        except ValueError:
            raise _fail(console, f"bad --think-time {think_time!r}: use MIN,MAX seconds, e.g. 0.5,2", 2) from None
        if profile_out is not None and (not find_capacity or model == "auto"):
            raise _fail(console, "--profile-out records one tier: use it with --find-capacity and --model TIER", 2)
        if profile_out is not None and profile_out.exists():
            _check_profile(console, profile_out, slo_file, scenario_name)  # before minutes of load, not after
        targets = _resolve_slo(console, slo_file, scenario_name, slo or [])
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = out_dir / f"{scenario_name}-{stamp}"
        html = report or run_dir / "report.html"
        if from_records is not None:
            try:
                records = read_records(from_records)
            except (OSError, ValueError) as error:
                raise _fail(console, f"cannot read {from_records}: {error}", 2) from None
            _finish(console, judge(scenario_name, records, targets, None), records, html, json_out, {})
            return

        if url is None and not config.exists():
            raise _fail(console, f"stack config {config} not found (or pass --url)", 2)
        try:
            stack = nullcontext((url.rstrip("/"), watch_pid)) if url else _start_stack(console, config, port, run_dir)
            with stack as (target, pid):
                key = api_key or (stack_api_key(config) if url is None and config is not None else "")
                check_endpoint(target, key)
                plan = LoadPlan(
                    scenario=scenario_name,
                    url=target,
                    users=users,
                    spawn_rate=spawn_rate,
                    duration_s=run_s,
                    records=run_dir / "records.jsonl",
                    log=run_dir / "locust.log",
                    api_key=key,
                    model=model,
                    max_tokens=max_tokens,
                    think_time=think_time,
                )
                if find_capacity:
                    from loadtest.capacity import find_capacity as search

                    result = search(console, plan, targets, max_users, step_s, target_rps, refine)
                    if json_out is not None:
                        write_json(json_out, result)
                    if profile_out is not None and result["overall"]["max_users"]:
                        source = (
                            f"tierserve loadtest --find-capacity --scenario {scenario_name} --model {model} "
                            f"--max-tokens {max_tokens} --think-time {think_time} --step-duration {step_duration} "
                            f"--refine {refine} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
                        )
                        _record_profile(
                            console, profile_out, model, result, profile_replicas, source, slo_file, scenario_name
                        )
                    raise typer.Exit(0 if result["overall"]["max_users"] else 1)
                from loadtest.resources import ResourceWatch  # psutil: only when a stack is watched

                watch = ResourceWatch(pid, watch_interval).start() if pid is not None else None
                with _progress(console, run_s) as progress:
                    records = run_locust(plan, progress)
                resources = watch.stop() if watch is not None else None
        except LoadtestError as error:
            code = 2 if str(error).startswith(("cannot reach", "stack config")) or "refused" in str(error) else 3
            raise _fail(console, str(error), code) from None
        verdict = judge(scenario_name, records, targets, run_s)
        extra: dict[str, object] = {"url": target, "users": users, "spawn_rate": spawn_rate, "slo_file": str(slo_file)}
        if resources is not None:
            print_resources(console, resources)
            extra["resources"] = resources
        _finish(console, verdict, records, html, json_out, extra | {"records_file": str(plan.records)})


@contextmanager
def _start_stack(console: Console, config: Path, port: int | None, run_dir: Path) -> Iterator[tuple[str, int]]:
    from loadtest.processes import free_port

    chosen = port or free_port()
    with ExitStack() as stack:
        stack.callback(console.print, "stack stopped.")
        with console.status(f"starting tierserve ({config}) on port {chosen}; loading models takes minutes on CPU"):
            url, pid = stack.enter_context(managed_stack(config, chosen, run_dir))
        console.print(f"stack ready at {url}")
        yield url, pid


def _check_profile(console: Console, path: Path, slo_file: Path, scenario_name: str) -> None:
    from loadtest.plan import PlanError, TierProfile, load_profile, with_tier

    try:
        probe = TierProfile(rps_per_replica=1.0)  # any entry: only the file's SLO file and scenario are checked
        with_tier(load_profile(path), "-", probe, slo_file=str(slo_file), scenario=scenario_name)
    except PlanError as error:
        raise _fail(console, str(error), 2) from None


def _record_profile(
    console: Console,
    path: Path,
    tier: str,
    result: dict[str, Any],
    replicas: int,
    source: str,
    slo_file: Path,
    scenario_name: str,
) -> None:
    """Set `tier`'s entry of the capacity profile at `path` from a search pinned to it (`tierserve plan` reads it)."""
    from loadtest.plan import PlanError, load_profile, save_profile, tier_profile_from_capacity, with_tier

    try:
        entry = tier_profile_from_capacity(result, replicas, source)
        old = load_profile(path) if path.exists() else None
        # What the figures ran on: a profile's own description (e.g. its GPUs) is kept; a new one gets this host's,
        # where `tierserve loadtest` runs the stack it measures.
        kept = old.hardware if old is not None else ""
        hardware = kept or f"{os.cpu_count()} logical CPUs ({platform.machine()})"
        cpus = old.host_cpus if old is not None and old.host_cpus else os.cpu_count()
        meta = {"slo_file": str(slo_file), "scenario": scenario_name, "hardware": hardware, "host_cpus": cpus}
        profile = with_tier(old, tier, entry, **meta)
        save_profile(path, profile)
    except PlanError as error:
        raise _fail(console, str(error), 2) from None
    console.print(f"capacity profile: {path} (tier {tier}: {entry.rps_per_replica:.3f} requests/s per replica)")


def print_resources(console: Console, resources: dict[str, Any]) -> None:
    table = Table(title=f"memory and open files over the run ({resources.get('span_s', 0)} s)")
    for column in ("component", "RSS first MiB", "RSS last MiB", "growth %", "MiB/h", "files first", "files last"):
        table.add_column(column, justify="left" if column == "component" else "right")
    for name, row in resources["components"].items():
        table.add_row(
            name,
            str(row["rss_mib_first"]),
            str(row["rss_mib_last"]),
            str(row["rss_growth_pct"]),
            str(row["rss_growth_mib_per_hour"]),
            str(row["open_files_first"]),
            str(row["open_files_last"]),
        )
    console.print(table)


def _finish(
    console: Console,
    verdict: Verdict,
    records: list[RequestRecord],
    html: Path,
    json_out: Path | None,
    extra: dict[str, object],
) -> None:
    print_verdict(console, verdict)
    try:
        from loadtest.report import write_report

        write_report(html, verdict, records)
        console.print(f"report: {html}")
        extra = extra | {"report": str(html)}
    except ImportError as error:  # plotly missing: the verdict still stands
        console.print(Text(f"no HTML report ({error})", style="yellow"), soft_wrap=True)
    if json_out is not None:
        write_json(json_out, verdict.as_dict(**extra))
        console.print(f"summary: {json_out}")
    if not verdict.passed:
        raise typer.Exit(1)
