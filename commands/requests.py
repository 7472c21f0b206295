"""`tierserve requests show ID | tail`: the path of one request, prompt to output, from the audit trail: who asked
(tenant, key id), what the guards said, the cache's verdict (similarity, the request a replay came from), the
route score and tier, tokens, cost, latency per stage and the trace id. Through a running stack's admin API
(`--url`, the admin key or the tenant's own key) or the audit files (`--dir`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from commands.audit import DEFAULT_URL, AdminKeyOption, DirOption, TenantOption, UrlOption
from serving.admin_audit import select
from serving.admin_client import admin_request

console = Console()


def _fetch(directory: Path | None, url: str, key: str, **params: Any) -> list[dict[str, Any]]:
    chosen = {k: v for k, v in params.items() if v is not None}
    if directory is not None:
        return select(directory, tenant=chosen.get("tenant"), request_id=chosen.get("request_id"))
    text = admin_request("GET", url, key, "/admin/audit/export", timeout_s=120, params=chosen).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _path(record: dict[str, Any]) -> Table:
    guard = record.get("guard") or {}
    ttft = record.get("ttft_ms")
    rows: list[tuple[str, Any]] = [
        ("request", record.get("request_id")),
        ("time", record.get("time")),
        ("who", f"tenant {record.get('tenant')}, key {record.get('key_id')}"),
        ("asked", f"{record.get('endpoint')} model={record.get('model')} stream={record.get('stream')}"),
        ("prompt version", record.get("prompt_version")),
        ("input guard", f"{guard.get('input')} (score {guard.get('score')}); PII: {guard.get('input_pii') or 'none'}"),
        ("cache", f"{record.get('cache')} similarity={record.get('similarity')} lineage={record.get('lineage')}"),
        ("route", f"score {record.get('route_score')} ({record.get('route_reason')}) -> tier {record.get('tier')}"),
        ("answered by", f"{record.get('answered_by')} fallback_from={record.get('fallback_from')}"),
        ("output guard", f"{guard.get('output') or 'nothing found'} ({guard.get('output_action')})"),
        ("status", f"{record.get('status')} {record.get('error') or ''}".strip()),
        ("tokens", f"{record.get('prompt_tokens')} in, {record.get('completion_tokens')} out"),
        ("cost", f"${record.get('cost_usd') or 0:.6f}"),
        ("latency", f"{record.get('latency_ms')} ms" + (f" (first token {ttft} ms)" if ttft is not None else "")),
        ("stages", ", ".join(f"{k} {v:.1f} ms" for k, v in (record.get("stages_ms") or {}).items()) or None),
        ("trace", record.get("trace_id")),
        ("prompt", record.get("prompt_text") or f"sha256 {record.get('prompt_sha256')}"),
        ("answer", record.get("answer_text") or f"sha256 {record.get('answer_sha256')}"),
    ]
    table = Table(show_header=False, title=f"request {record.get('request_id')}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        if value not in (None, ""):
            table.add_row(name, str(value))
    return table


def build_requests_app() -> typer.Typer:
    requests = typer.Typer(help="One request's path, prompt to output, from the audit trail.", no_args_is_help=True)

    @requests.command("show")
    def show(
        request_id: Annotated[str, typer.Argument(help="The request id (x-request-id).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the audit record as JSON.")] = False,
        directory: DirOption = None,
        url: UrlOption = DEFAULT_URL,
        key: AdminKeyOption = "",
    ) -> None:
        """Everything recorded about REQUEST_ID."""
        records = [r for r in _fetch(directory, url, key, request_id=request_id) if r.get("kind") == "request"]
        if not records:
            Console(stderr=True).print(Text(f"no request {request_id} in the audit trail", style="red"))
            raise typer.Exit(1)
        for record in records:
            if as_json:
                sys.stdout.write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            else:
                console.print(_path(record))

    @requests.command("tail")
    def tail(
        n: Annotated[int, typer.Option("-n", min=1, max=1000, help="How many of the newest requests.")] = 10,
        tenant: TenantOption = None,
        directory: DirOption = None,
        url: UrlOption = DEFAULT_URL,
        key: AdminKeyOption = "",
    ) -> None:
        """The newest requests, one path each."""
        records = [r for r in _fetch(directory, url, key, tenant=tenant, kind="request") if r.get("kind") == "request"]
        for record in records[-n:]:
            console.print(_path(record))

    return requests
