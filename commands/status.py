"""`tierserve status [--json] [--watch N]`: a running stack in one screen (GET /admin/status): nodes, tiers with
replicas per node and health, queue depth, TTFT p50 and tokens/s over the last minute, circuit breakers, cache
entries and hit ratio per tenant, Redis's role, budget burn."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from commands.audit import DEFAULT_URL, AdminKeyOption, UrlOption
from serving.admin_client import admin_request


def _number(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_status(data: dict[str, Any]) -> Group:
    parts: list[Any] = [Text(f"tierserve status at {data['generated_at']} (from gateway {data['answered_by']})")]
    nodes = Table(title="nodes", title_justify="left")
    for column in ("node", "alive", "CPUs", "GPUs", "memory GB", "resources"):
        nodes.add_column(column)
    for node in data["nodes"]:
        custom = ", ".join(f"{k}={v:g}" for k, v in sorted(node["resources"].items()))
        alive = "yes" if node["alive"] else "DEAD"
        nodes.add_row(
            node["ip"], alive, f"{node['cpus']:g}", f"{node['gpus']:g}", f"{node['memory_gb']:g}", custom,
            style=None if node["alive"] else "red",
        )  # fmt: skip
    parts.append(nodes)
    window = int(data.get("window_s", 60))
    tiers = Table(title=f"tiers (last {window} s)", title_justify="left")
    columns = ("tier", "health", "replicas by node", "running", "queue", "TTFT p50 s", "tokens/s", "answers/min")
    for column in (*columns, "breakers"):
        tiers.add_column(
            column, justify="left" if column in ("tier", "health", "replicas by node", "breakers") else "right"
        )
    for name, tier in data["tiers"].items():
        deployment = tier.get("deployment") or {}
        states = deployment.get("replica_states", {})
        health = deployment.get("status", "?") + (f" {states}" if set(states) - {"RUNNING"} else "")
        by_node = ", ".join(f"{ip}: {count}" for ip, count in sorted(tier["replicas_by_node"].items())) or "-"
        breakers = ", ".join(f"{state} x{count}" for state, count in sorted(tier["breakers"].items())) or "-"
        tiers.add_row(
            name, health, by_node, _number(tier["running"], 0), _number(tier["queue"], 0),
            _number(tier["ttft_p50_s"], 3), _number(tier["tokens_per_s"]), _number(tier["answers_per_min"], 1),
            breakers, style="red" if "open" in tier["breakers"] or health.split()[0] != "HEALTHY" else None,
        )  # fmt: skip
    parts.append(tiers)
    cache = Table(title=f"cache ({_number(data['cache']['hits_per_min'], 1)} hits/min)", title_justify="left")
    for column in ("tenant", "entries", f"answers ({window} s)", "hit ratio"):
        cache.add_column(column, justify="left" if column == "tenant" else "right")
    for tenant, row in data["cache"]["tenants"].items():
        cache.add_row(tenant, str(row["entries"]), str(row.get("answers", 0)), _number(row.get("hit_ratio"), 3))
    parts.append(cache)
    redis = data["redis"]
    line = f"redis: {redis.get('role')}"
    if redis.get("role") not in (None, "unreachable"):
        line += f", {redis.get('connected_replicas', 0)} replicas connected, {redis.get('used_memory')} used"
    parts.append(Text(line, style="red" if redis.get("role") == "unreachable" else ""))
    if data["budgets"]:
        budgets = Table(title="budget burn", title_justify="left")
        for column in ("tenant", "window", "spent USD", "budget USD", "used"):
            budgets.add_column(column, justify="left" if column in ("tenant", "window") else "right")
        for tenant, row in data["budgets"].items():
            budgets.add_row(
                tenant, row["window"], f"{row['spent_usd']:.4f}", f"{row['budget_usd']:.2f}", f"{row['used']:.1%}",
                style="red" if row["used"] >= 0.8 else None,
            )  # fmt: skip
        parts.append(budgets)
    return Group(*parts)


def add_status_command(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
        watch: Annotated[
            float | None, typer.Option("--watch", help="Refresh every this many seconds until Ctrl-C.", min=0.5)
        ] = None,
        url: UrlOption = DEFAULT_URL,
        key: AdminKeyOption = "",
    ) -> None:
        """The running stack in one screen: nodes, tiers, replicas, queues, latency, breakers, cache, Redis, budgets."""
        if as_json:
            sys.stdout.write(json.dumps(admin_request("GET", url, key, "/admin/status").json(), indent=2) + "\n")
            return
        console = Console()
        if watch is None:
            console.print(render_status(admin_request("GET", url, key, "/admin/status").json()))
            return
        with Live(console=console, auto_refresh=False) as live:
            try:
                while True:
                    live.update(render_status(admin_request("GET", url, key, "/admin/status").json()), refresh=True)
                    time.sleep(watch)
            except KeyboardInterrupt:
                pass
