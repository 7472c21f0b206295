"""The one way the commands call a running stack's admin API: the admin key as a bearer token, and any failure
(no key, no stack, an error answer) printed as one red line and turned into an exit code."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

console = Console(stderr=True)


def admin_request(
    method: str, url: str, admin_key: str, path: str, timeout_s: float = 30, **kwargs: Any
) -> httpx.Response:
    if not admin_key:
        console.print(Text("no admin key: set TIERSERVE_ADMIN_KEY or pass --admin-key", style="red"))
        raise typer.Exit(2)
    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}{path}",
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=timeout_s,
            **kwargs,
        )
    except httpx.HTTPError as error:
        console.print(Text(f"cannot reach {url}: {error}", style="red"), soft_wrap=True)
        raise typer.Exit(1) from None
    if response.status_code >= 300:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        console.print(Text(f"{response.status_code}: {message}", style="red"), soft_wrap=True)
        raise typer.Exit(1)
    return response
