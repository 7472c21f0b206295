"""`tierserve audit verify|export|tail`: the audit log of a running stack through its admin API (`--url`, the
admin key from TIERSERVE_ADMIN_KEY or --admin-key), its files directly (`--dir`, e.g. .tierserve/data/audit), or
the records every replica shipped to PostgreSQL (`--postgres`, the DSN from TIERSERVE_AUDIT_DSN)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from serving.admin_audit import jsonl, select, since_iso
from serving.admin_client import admin_request
from serving.audit import verify

DirOption = Annotated[Path | None, typer.Option("--dir", help="Read the segment files here instead of a stack.")]
UrlOption = Annotated[str, typer.Option("--url", help="The running stack (ignored with --dir).")]
AdminKeyOption = Annotated[
    str, typer.Option("--admin-key", envvar="TIERSERVE_ADMIN_KEY", help="The admin key (TIERSERVE_ADMIN_KEY).")
]
SinceOption = Annotated[str | None, typer.Option("--since", help="24h, 7d, or an ISO time.")]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Only this tenant's records.")]
PostgresOption = Annotated[
    bool, typer.Option("--postgres", help="Read the records shipped to PostgreSQL (DSN from TIERSERVE_AUDIT_DSN).")
]
TableOption = Annotated[str, typer.Option("--table", help="The PostgreSQL table (audit.postgres_table).")]
DEFAULT_URL = "http://127.0.0.1:8000"

console = Console(stderr=True)


def _get(url: str, admin_key: str, path: str, params: dict[str, Any]) -> httpx.Response:
    chosen = {key: value for key, value in params.items() if value is not None}
    return admin_request("GET", url, admin_key, path, timeout_s=120, params=chosen)


def _records(directory: Path | None, url: str, admin_key: str, path: str, **params: Any) -> list[str]:
    if directory is None:
        return [line + "\n" for line in _get(url, admin_key, path, params).text.splitlines() if line]
    try:
        return list(jsonl(select(directory, params.get("since"), params.get("tenant"))))
    except ValueError as error:
        console.print(Text(str(error), style="red"))
        raise typer.Exit(2) from None


def _dsn() -> str:
    dsn = os.environ.get("TIERSERVE_AUDIT_DSN")
    if not dsn:
        console.print(Text("--postgres reads the DSN from TIERSERVE_AUDIT_DSN, which is not set", style="red"))
        raise typer.Exit(2)
    return dsn


def build_audit_app() -> typer.Typer:
    audit = typer.Typer(
        help="Read and check the audit log (hash-chained, one record per request).", no_args_is_help=True
    )

    @audit.command("verify")
    def verify_command(
        directory: DirOption = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        postgres: PostgresOption = False,
        table: TableOption = "tierserve_audit",
    ) -> None:
        """Check every record's hash and link: exit 1 when any record was edited, removed or moved."""
        if postgres:
            from serving.audit.postgres import pg_verify

            report = pg_verify(_dsn(), table).as_dict()
        elif directory is not None:
            if not directory.is_dir():
                console.print(Text(f"no audit log at {directory}", style="red"))
                raise typer.Exit(2)
            report = verify(directory).as_dict()
        else:
            report = _get(url, admin_key, "/admin/audit/verify", {}).json()
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        style = "green" if report["ok"] else "red"
        summary = f"{report['records']} records from {report['writers']} writers: " + (
            "intact" if report["ok"] else f"{len(report['problems'])} problems"
        )
        console.print(Text(summary, style=style))
        if not report["ok"]:
            raise typer.Exit(1)

    @audit.command("export")
    def export_command(
        since: SinceOption = None,
        tenant: TenantOption = None,
        directory: DirOption = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        postgres: PostgresOption = False,
        table: TableOption = "tierserve_audit",
    ) -> None:
        """Every record (oldest first) as JSON lines on stdout."""
        if postgres:
            from serving.audit.postgres import pg_records

            start = since_iso(since) if since else None
            for record in pg_records(_dsn(), table, since=start, tenant=tenant):
                sys.stdout.write(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
            return
        sys.stdout.writelines(_records(directory, url, admin_key, "/admin/audit/export", since=since, tenant=tenant))

    @audit.command("tail")
    def tail_command(
        n: Annotated[int, typer.Option("-n", min=1, max=10_000, help="How many of the newest records.")] = 20,
        tenant: TenantOption = None,
        directory: DirOption = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
    ) -> None:
        """The newest records as JSON lines."""
        if directory is not None:
            sys.stdout.writelines(_records(directory, url, admin_key, "", tenant=tenant)[-n:])
        else:
            sys.stdout.writelines(_records(None, url, admin_key, "/admin/audit/tail", n=n, tenant=tenant))

    return audit
