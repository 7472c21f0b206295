"""`tierserve keys` and `tierserve cost`: API keys and spend of a running stack, through its /admin API (the admin
key from TIERSERVE_ADMIN_KEY or --admin-key). A new or rotated key is printed once; Redis keeps only its hash."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from serving.admin_client import admin_request

UrlOption = Annotated[str, typer.Option("--url", help="The running stack.")]
AdminKeyOption = Annotated[
    str, typer.Option("--admin-key", envvar="TIERSERVE_ADMIN_KEY", help="The admin key (TIERSERVE_ADMIN_KEY).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (with `key` and `id`).")]
RpmOption = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute.")]
TpmOption = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute.")]
ConcurrentOption = Annotated[int | None, typer.Option("--max-concurrent", min=1, help="Requests in flight at once.")]
BudgetOption = Annotated[float | None, typer.Option("--budget-usd", min=0.000001, help="Spend per budget window.")]
WindowOption = Annotated[str | None, typer.Option("--budget-window", help="day or month (UTC).")]
ModelsOption = Annotated[str | None, typer.Option("--models", help="Comma-separated models the key may use.")]
NameOption = Annotated[str | None, typer.Option("--name", help="A label for the key.")]
DEFAULT_URL = "http://127.0.0.1:8000"

console = Console(stderr=True)


def _table_console() -> Console:
    """Stdout; piped (no terminal) it would wrap at 80 columns and cut ids, so it gets room for every column."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def _call(method: str, url: str, admin_key: str, path: str, **kwargs: Any) -> dict[str, Any]:
    data: dict[str, Any] = admin_request(method, url, admin_key, path, **kwargs).json()
    return data


def _limits(
    rpm: int | None, tpm: int | None, concurrent: int | None, budget: float | None, window: str | None
) -> dict[str, Any]:
    if window is not None and window not in ("day", "month"):
        raise typer.BadParameter("--budget-window must be day or month")
    given = {"rpm": rpm, "tpm": tpm, "max_concurrent": concurrent, "budget_usd": budget, "budget_window": window}
    return {name: value for name, value in given.items() if value is not None}


def _models(models: str | None) -> list[str] | None:
    return [m.strip() for m in models.split(",") if m.strip()] if models is not None else None


def _print_record(result: dict[str, Any], as_json: bool, *, new_key: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    record = result["record"]
    if new_key:
        typer.echo(result["key"])
        console.print(Text("The key is shown once: store it now. Redis keeps only its hash.", style="yellow"))
    limits = {k: v for k, v in record["limits"].items() if v is not None and k != "budget_window"}
    if record["limits"].get("budget_usd") is not None:
        limits["budget_window"] = record["limits"]["budget_window"]
    console.print(
        f"id {record['id']}  tenant {record['tenant']}  {'REVOKED  ' if record['revoked'] else ''}"
        f"models {','.join(record['models']) or 'all'}  limits {limits or 'none'}"
    )


def build_keys_app() -> typer.Typer:
    keys = typer.Typer(help="API keys of a running stack (hashed in its Redis).", no_args_is_help=True)

    @keys.command("create")
    def create(
        tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key belongs to.")],
        rpm: RpmOption = None,
        tpm: TpmOption = None,
        max_concurrent: ConcurrentOption = None,
        budget_usd: BudgetOption = None,
        budget_window: WindowOption = None,
        models: ModelsOption = None,
        name: NameOption = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        as_json: JsonOption = False,
    ) -> None:
        """Create a key and print it once."""
        body: dict[str, Any] = {"tenant": tenant, "name": name or "", "models": _models(models) or []}
        body |= _limits(rpm, tpm, max_concurrent, budget_usd, budget_window)
        _print_record(_call("POST", url, admin_key, "/admin/keys", json=body), as_json, new_key=True)

    @keys.command("list")
    def list_keys(
        tenant: Annotated[str | None, typer.Option("--tenant", help="One tenant's keys.")] = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        as_json: JsonOption = False,
    ) -> None:
        """Every key (never the key itself: its id, prefix, tenant, limits)."""
        params = {"tenant": tenant} if tenant else None
        records = _call("GET", url, admin_key, "/admin/keys", params=params)["data"]
        if as_json:
            typer.echo(json.dumps({"key": None, "id": None, "data": records}))
            return
        table = Table("id", "prefix", "tenant", "name", "state", "models", "rpm", "tpm", "conc", "budget")
        for r in records:
            lim = r["limits"]
            budget = f"${lim['budget_usd']}/{lim['budget_window']}" if lim.get("budget_usd") else ""
            table.add_row(
                r["id"], r["prefix"] + "…", r["tenant"], r["name"], "revoked" if r["revoked"] else "active",
                ",".join(r["models"]) or "all", *(str(lim.get(k) or "") for k in ("rpm", "tpm", "max_concurrent")),
                budget,
            )  # fmt: skip
        _table_console().print(table)

    @keys.command("show")
    def show(
        key_id: str, url: UrlOption = DEFAULT_URL, admin_key: AdminKeyOption = "", as_json: JsonOption = False
    ) -> None:
        """One key."""
        record = _call("GET", url, admin_key, f"/admin/keys/{key_id}")
        _print_record({"key": None, "id": record["id"], "record": record}, as_json)

    @keys.command("update")
    def update(
        key_id: str,
        rpm: RpmOption = None,
        tpm: TpmOption = None,
        max_concurrent: ConcurrentOption = None,
        budget_usd: BudgetOption = None,
        budget_window: WindowOption = None,
        models: ModelsOption = None,
        name: NameOption = None,
        clear: Annotated[
            list[str] | None, typer.Option("--clear", help="Remove a limit: rpm, tpm, max_concurrent, budget_usd.")
        ] = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        as_json: JsonOption = False,
    ) -> None:
        """Change a key's limits, models or name (takes effect on every replica within a second)."""
        body: dict[str, Any] = _limits(rpm, tpm, max_concurrent, budget_usd, budget_window)
        for limit in clear or []:
            if limit not in ("rpm", "tpm", "max_concurrent", "budget_usd"):
                raise typer.BadParameter(f"--clear {limit}: not a limit")
            body[limit] = None
        if models is not None:
            body["models"] = _models(models)
        if name is not None:
            body["name"] = name
        record = _call("PATCH", url, admin_key, f"/admin/keys/{key_id}", json=body)
        _print_record({"key": None, "id": record["id"], "record": record}, as_json)

    @keys.command("revoke")
    def revoke(
        key_id: str, url: UrlOption = DEFAULT_URL, admin_key: AdminKeyOption = "", as_json: JsonOption = False
    ) -> None:
        """Revoke a key: refused (401) on every gateway replica within a second."""
        _print_record(_call("POST", url, admin_key, f"/admin/keys/{key_id}/revoke"), as_json)

    @keys.command("rotate")
    def rotate(
        key_id: str, url: UrlOption = DEFAULT_URL, admin_key: AdminKeyOption = "", as_json: JsonOption = False
    ) -> None:
        """A new secret for the same key id (limits and history kept); the old secret stops working."""
        _print_record(_call("POST", url, admin_key, f"/admin/keys/{key_id}/rotate"), as_json, new_key=True)

    return keys


def build_cost_app() -> typer.Typer:
    cost = typer.Typer(help="Spend, from the stack's ledger.", no_args_is_help=True)

    @cost.command("report")
    def report(
        since: Annotated[str, typer.Option("--since", help="How far back: 30m, 24h, 7d.")] = "24h",
        by: Annotated[str, typer.Option("--by", help="tenant, key, tier, model or day.")] = "tenant",
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        as_json: JsonOption = False,
    ) -> None:
        """Spend, saved by the cache and saved by routing (against the largest tier), grouped."""
        data = _call("GET", url, admin_key, "/admin/cost", params={"since": since, "by": by})
        if as_json:
            typer.echo(json.dumps(data))
            return
        table = Table(
            by, "requests", "prompt tok", "completion tok", "cost $", "saved by cache $", "saved by routing $"
        )
        for row in [*data["rows"], data["total"]]:
            table.add_row(
                row["group"], str(row["requests"]), str(row["prompt_tokens"]), str(row["completion_tokens"]),
                f"{row['cost_usd']:.6f}", f"{row['saved_by_cache_usd']:.6f}", f"{row['saved_by_routing_usd']:.6f}",
                end_section=row["group"] == data["rows"][-1]["group"] if data["rows"] else False,
            )  # fmt: skip
        _table_console().print(table)

    return cost
