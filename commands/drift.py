"""`tierserve drift report`: what moved in a running stack's traffic against its baseline, and since when (each
gateway replica watches the requests it serves; the report comes from the replica that answers)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from commands.audit import DEFAULT_URL, AdminKeyOption, UrlOption
from serving.admin_client import admin_request


def build_drift_app() -> typer.Typer:
    drift = typer.Typer(help="Drift of the traffic against its baseline.", no_args_is_help=True)

    @drift.command("report")
    def report(
        url: UrlOption = DEFAULT_URL,
        key: AdminKeyOption = "",
        as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    ) -> None:
        """Every signal's drift score (1 = the alarm line), its baseline and window means, and alarms with their
        start time. Exit 1 when any alarm is up."""
        data = admin_request("GET", url, key, "/admin/drift").json()
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
        else:
            console = Console()
            if not data.get("ready"):
                console.print(f"baseline not complete yet: {data.get('seen')} of {data.get('baseline_size')} requests")
            table = Table(title=f"drift (replica {data.get('replica')}, {data.get('seen')} requests seen)")
            for column in ("signal", "score", "baseline", "window", "alarm since"):
                table.add_column(column, justify="left" if column == "signal" else "right")
            for name, signal in data.get("signals", {}).items():
                since = signal.get("since")
                when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S") if since else ""
                mean_b, mean_w = signal.get("baseline_mean"), signal.get("window_mean")
                table.add_row(
                    name,
                    f"{signal['score']:.2f}",
                    "" if mean_b is None else f"{mean_b:.3f}",
                    "" if mean_w is None else f"{mean_w:.3f}",
                    when,
                    style="red" if signal.get("alarm") else None,
                )
            console.print(table)
            evals = data.get("evals") or {}
            if evals:
                runs = Table(title="golden-set evals recorded with the stack (tierserve eval --record)")
                for column in ("set", "latest", "baseline", "drop", "runs", "last run"):
                    runs.add_column(column, justify="left" if column == "set" else "right")
                for name, row in evals.items():
                    when = datetime.fromtimestamp(row["latest_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
                    runs.add_row(
                        name,
                        f"{row['latest']:.3f}",
                        f"{row['baseline']:.3f}",
                        f"{row['drop']:+.3f}",
                        str(row["runs"]),
                        when,
                        style="red" if row.get("alarm") else None,
                    )
                console.print(runs)
        alarms = [signal for signal in data.get("signals", {}).values() if signal.get("alarm")]
        if alarms or any(row.get("alarm") for row in (data.get("evals") or {}).values()):
            raise typer.Exit(1)

    return drift
