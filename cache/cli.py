"""`tierserve cache ...`: offline tools for the semantic cache (mounted by commands.main on the `cache` group).

`tierserve cache eval --pairs FILE.jsonl` replays labelled question pairs through the cache's hit decision
(similarity threshold, then the look-alike verifier) and prints how many paraphrases hit and how many
look-alikes would have been served a wrong answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cache.config import CacheConfig
from cache.embedder import Embedder
from cache.evaluation import (
    EvalReport,
    PairsError,
    default_sweep,
    evaluate_pairs,
    load_pairs,
    pair_similarities,
    verifier_latency,
)
from cache.verify import LookalikeVerifier

__all__ = ["add_eval_command", "build_cache_app", "cache_app"]

EmbedderFactory = Callable[[], Embedder]


def _default_embedder() -> Embedder:
    # Imported here: loading sentence-transformers takes seconds and must not happen at import time.
    from cache.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(device=CacheConfig().embedder_device)


def build_cache_app(embedder_factory: EmbedderFactory = _default_embedder) -> typer.Typer:
    """A `cache` command group holding `eval`; tests pass an embedder factory that needs no model."""
    app = typer.Typer(help="Semantic cache tools.", no_args_is_help=True)

    @app.callback()
    def _group() -> None:
        """Semantic cache tools."""

    add_eval_command(app, embedder_factory)
    return app


def add_eval_command(app: typer.Typer, embedder_factory: EmbedderFactory = _default_embedder) -> None:
    """Register `eval` on an existing group (commands.main: `add_eval_command(cache_app)`)."""

    @app.command("eval")
    def eval_command(
        pairs: Annotated[
            Path, typer.Option("--pairs", help='JSONL, one {"a", "b", "same", "category"} object per line.')
        ],
        threshold: Annotated[
            float | None,
            typer.Option(min=0.0, max=1.0, help="Similarity threshold (default: cache.similarity_threshold)."),
        ] = None,
        sweep: Annotated[bool, typer.Option("--sweep", help="Also report thresholds 0.70 ... 0.98.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
        no_verify: Annotated[
            bool, typer.Option("--no-verify", help="Similarity alone, without the look-alike verifier.")
        ] = False,
        latency: Annotated[bool, typer.Option("--latency", help="Also time the verifier per pair.")] = False,
    ) -> None:
        """How often paraphrases hit and look-alikes falsely hit, overall and per category."""
        try:
            loaded = load_pairs(pairs)
        except PairsError as error:
            typer.secho(f"error: {error}", err=True, fg="red")
            raise typer.Exit(2) from None
        chosen = threshold if threshold is not None else CacheConfig().similarity_threshold
        verifier = None if no_verify else LookalikeVerifier()
        embedder = embedder_factory()
        similarities = pair_similarities(loaded, embedder)
        report = evaluate_pairs(
            loaded,
            embedder,
            chosen,
            verifier,
            sweep=default_sweep() if sweep else None,
            similarities=similarities,
        )
        timing = verifier_latency(loaded) if latency and verifier is not None else None
        if as_json:
            payload: dict[str, object] = report.model_dump(mode="json", exclude={"results"}, exclude_none=True)
            if timing is not None:
                payload["verifier_latency"] = timing.model_dump(mode="json")
            typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
            return
        out = Console()
        _print_report(out, report, pairs)
        if timing is not None:
            out.print(
                f"verifier per pair: cold mean {timing.cold_mean_us:.0f} µs (p50 {timing.cold_p50_us:.0f}, "
                f"p99 {timing.cold_p99_us:.0f}), warm mean {timing.warm_mean_us:.1f} µs"
            )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _print_report(out: Console, report: EvalReport, source: Path) -> None:
    mode = "similarity + verifier" if report.verified else "similarity only"
    out.print(
        f"[bold]{source}[/bold]: {report.pairs} pairs, threshold {report.threshold:.2f}, {mode}\n"
        f"hit rate on same pairs: [bold]{_percent(report.hit_rate)}[/bold] of {report.same_pairs}   "
        f"false-hit rate on different pairs: [bold]{_percent(report.false_hit_rate)}[/bold] "
        f"of {report.different_pairs}"
    )
    table = Table(title="per category")
    table.add_column("category")
    table.add_column("same", justify="center")
    table.add_column("pairs", justify="right")
    table.add_column("hits", justify="right")
    table.add_column("rate", justify="right")
    same_of = {r.category: r.same for r in report.results}
    for category, stats in report.per_category.items():
        same = same_of.get(category, False)
        rate = _percent(stats.rate)
        table.add_row(
            category, "yes" if same else "no", str(stats.n), str(stats.hits), rate if same else f"{rate} false"
        )
    out.print(table)
    if report.rejections:
        out.print(
            "verifier rejections above the threshold: " + ", ".join(f"{k} {v}" for k, v in report.rejections.items())
        )
    if report.sweep:
        sweep = Table(title="threshold sweep")
        sweep.add_column("threshold", justify="right")
        sweep.add_column("hit rate", justify="right")
        sweep.add_column("false hits", justify="right")
        if report.verified:
            sweep.add_column("hit rate (verified)", justify="right")
            sweep.add_column("false hits (verified)", justify="right")
        for point in report.sweep:
            row = [f"{point.threshold:.2f}", _percent(point.hit_rate), _percent(point.false_hit_rate)]
            if report.verified:
                row += [_percent(point.verified_hit_rate), _percent(point.verified_false_hit_rate)]
            sweep.add_row(*row)
        out.print(sweep)


cache_app = build_cache_app()


if __name__ == "__main__":  # python -m cache.cli eval --pairs ... (before it is mounted as `tierserve cache`)
    cache_app()
