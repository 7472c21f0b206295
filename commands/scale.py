"""`tierserve scale TIER N` and `tierserve scale TIER --min A --max B`: change a running stack's replicas of one tier
without a restart (the serve process deploys the new scale in place; new replicas start, surplus ones drain).
`--reset` returns the tier to its config file's scale; `tierserve scale` alone shows the scale in force."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from commands.audit import DEFAULT_URL, AdminKeyOption, UrlOption
from serving.admin_client import admin_request

console = Console(stderr=True)


def _scale_text(scale: dict[str, Any] | None) -> str:
    if not scale or scale.get("reset"):
        return ""
    if "replicas" in scale:
        return f"{scale['replicas']} replicas"
    if "num_replicas" in scale:
        return f"{scale['num_replicas']} replicas"
    if "min_replicas" not in scale:
        return ""
    target = f", target {scale['target_ongoing_requests']} in flight" if "target_ongoing_requests" in scale else ""
    return f"autoscaling {scale['min_replicas']}..{scale['max_replicas']}{target}"


def add_scale_command(app: typer.Typer) -> None:
    @app.command("scale")
    def scale(
        tier: Annotated[str | None, typer.Argument(help="The tier to scale; none: show the scale in force.")] = None,
        replicas: Annotated[int | None, typer.Argument(help="A fixed number of replicas.", min=1)] = None,
        min_replicas: Annotated[int | None, typer.Option("--min", help="Autoscale from this many.", min=1)] = None,
        max_replicas: Annotated[int | None, typer.Option("--max", help="...up to this many.", min=1)] = None,
        target: Annotated[
            float | None, typer.Option("--target", help="With --min/--max: requests in flight per replica.")
        ] = None,
        reset: Annotated[bool, typer.Option("--reset", help="Back to the config file's scale.")] = False,
        wait: Annotated[bool, typer.Option(help="Wait until the tier runs at its new scale.")] = True,
        timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 900.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        url: UrlOption = DEFAULT_URL,
        key: AdminKeyOption = "",
    ) -> None:
        """Scale a tier of a running stack in place, with requests in flight finishing (exit 1 if it failed)."""
        if tier is None:
            tiers = admin_request("GET", url, key, "/admin/scale").json()["tiers"]
            if as_json:
                sys.stdout.write(json.dumps(tiers, indent=2) + "\n")
                return
            table = Table(title="scale in force")
            for column in ("tier", "config file", "live (tierserve scale)"):
                table.add_column(column)
            for name, row in tiers.items():
                table.add_row(name, _scale_text(row["config"]), _scale_text(row["live"]) or "-")
            Console().print(table)
            return
        body: dict[str, Any] = {"tier": tier}
        if replicas is not None:
            body["replicas"] = replicas
        if min_replicas is not None or max_replicas is not None:
            body |= {"min_replicas": min_replicas, "max_replicas": max_replicas}
        if target is not None:
            body["target_ongoing_requests"] = target
        if reset:
            body["reset"] = True
        result = admin_request("POST", url, key, "/admin/scale", json=body).json()
        console.print(f"{result['id']}: {tier} -> {_scale_text(result['scale']) or 'config file scale'} (queued)")
        deadline = time.monotonic() + timeout
        while wait and result["state"] in ("queued", "applying"):
            if time.monotonic() > deadline:
                console.print(Text(f"still {result['state']} after {timeout:.0f}s", style="yellow"))
                raise typer.Exit(1)
            time.sleep(1)
            result = admin_request("GET", url, key, f"/admin/scale/{result['id']}").json()
        if as_json:
            sys.stdout.write(json.dumps(result, indent=2) + "\n")
        if result["state"] == "failed":
            console.print(Text(f"failed: {result['message']}", style="red"), soft_wrap=True)
            raise typer.Exit(1)
        if result["state"] == "done":
            console.print(Text(f"done in {result['seconds']}s: {result['message']}", style="green"))
