"""`tierserve prompts create|list|show|diff|approve`: versioned system prompts of a running stack, through its
admin API (the admin key from TIERSERVE_ADMIN_KEY or --admin-key). A request serves one with the header
`x-tierserve-prompt: name@version` once it is approved."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from serving.admin_client import admin_request

UrlOption = Annotated[str, typer.Option("--url", help="The running stack.")]
AdminKeyOption = Annotated[
    str, typer.Option("--admin-key", envvar="TIERSERVE_ADMIN_KEY", help="The admin key (TIERSERVE_ADMIN_KEY).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
DEFAULT_URL = "http://127.0.0.1:8000"

console = Console(stderr=True)


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def build_prompts_app() -> typer.Typer:
    prompts = typer.Typer(help="Versioned system prompts: create, review, approve.", no_args_is_help=True)

    @prompts.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="The prompt's name (letters, digits, . _ -).")],
        file: Annotated[Path | None, typer.Option("--file", "-f", help="The template text, from a file.")] = None,
        text: Annotated[str | None, typer.Option("--text", help="The template text.")] = None,
        description: Annotated[str, typer.Option("--description", help="What changed and why.")] = "",
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
        as_json: JsonOption = False,
    ) -> None:
        """A new version of NAME (unapproved: it serves once approved)."""
        if (file is None) == (text is None):
            raise typer.BadParameter("give the template with exactly one of --file or --text")
        template = file.read_text() if file is not None else str(text)
        body = {"name": name, "template": template, "description": description}
        created = admin_request("POST", url, admin_key, "/admin/prompts", json=body).json()
        if as_json:
            _print(created)
        else:
            console.print(f"created {created['name']}@{created['version']} (not approved yet)")

    @prompts.command("list")
    def list_prompts(url: UrlOption = DEFAULT_URL, admin_key: AdminKeyOption = "", as_json: JsonOption = False) -> None:
        """Every prompt, its number of versions and its approved ones."""
        data = admin_request("GET", url, admin_key, "/admin/prompts").json()
        if as_json:
            _print(data)
            return
        table = Table("name", "versions", "approved")
        for row in data["data"]:
            table.add_row(row["name"], str(row["versions"]), ", ".join(map(str, row["approved"])) or "-")
        Console().print(table)

    @prompts.command("show")
    def show(
        name: str,
        version: Annotated[int | None, typer.Argument(help="One version (default: all).")] = None,
        url: UrlOption = DEFAULT_URL,
        admin_key: AdminKeyOption = "",
    ) -> None:
        """NAME's versions (or one), with their text, hash and approval."""
        path = f"/admin/prompts/{name}" + (f"/{version}" if version is not None else "")
        _print(admin_request("GET", url, admin_key, path).json())

    @prompts.command("diff")
    def diff_command(
        name: str, old: int, new: int, url: UrlOption = DEFAULT_URL, admin_key: AdminKeyOption = ""
    ) -> None:
        """A unified diff of two versions of NAME."""
        data = admin_request("GET", url, admin_key, f"/admin/prompts/{name}/diff", params={"old": old, "new": new})
        sys.stdout.write(data.json()["diff"])

    @prompts.command("approve")
    def approve(name: str, version: int, url: UrlOption = DEFAULT_URL, admin_key: AdminKeyOption = "") -> None:
        """Let NAME@VERSION serve (the approval is in the audit log)."""
        approved = admin_request("POST", url, admin_key, f"/admin/prompts/{name}/{version}/approve").json()
        console.print(f"approved {approved['name']}@{approved['version']} (sha256 {approved['sha256'][:12]})")

    return prompts
