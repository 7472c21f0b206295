"""Wires `tierserve router ...` (router/cli.py) to what the router package must not import itself: the cache's
embedder (the same all-MiniLM-L6-v2 the gateway uses) and the stack config (tier order and prices)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from router import TierPrice
from router.cli import RouterStack, TextEmbedder, add_router_commands
from serving.config import ConfigError, load_config

__all__ = ["build_router_app", "load_router_stack"]


def _embedder() -> TextEmbedder:
    # Imported here: loading sentence-transformers takes seconds and must not happen at import time.
    from cache import CacheConfig, SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(device=CacheConfig().embedder_device)


def load_router_stack(path: Path) -> RouterStack:
    try:
        stack = load_config(path)
    except ConfigError as error:
        Console(stderr=True).print(Text(f"{error}", style="red"), soft_wrap=True)
        raise typer.Exit(2) from None
    prices = [TierPrice(t.name, t.price_per_1k_prompt_tokens, t.price_per_1k_completion_tokens) for t in stack.tiers]
    return RouterStack(router=stack.router, tiers=prices)


def build_router_app() -> typer.Typer:
    app = typer.Typer(help="Train, evaluate, calibrate and explain the complexity router.", no_args_is_help=True)
    add_router_commands(app, _embedder, load_router_stack)
    return app
