"""`tierserve eval --set FILE`: a golden set through a running stack, scored; the regression gate of a release.

Exit codes: 0 passed, 1 the mean score is under --min-score or a case regressed against --baseline, 2 bad input
(the set, the baseline, an unreachable stack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evals.golden import GoldenSetError, load_set
from evals.report import write_html
from evals.runner import compare, run_set
from serving.admin_client import admin_request

__all__ = ["DEFAULT_SET", "add_eval_command"]

DEFAULT_SET = Path("configs/golden/default.jsonl")


def add_eval_command(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        golden: Annotated[Path, typer.Option("--set", help="The golden set (JSONL).")] = DEFAULT_SET,
        url: Annotated[str, typer.Option(help="The running stack.")] = "http://127.0.0.1:8000",
        model: Annotated[str, typer.Option(help="The model to ask: a tier, or auto (the router).")] = "auto",
        tier: Annotated[str | None, typer.Option(help="Pin the router to this tier.")] = None,
        api_key: Annotated[str | None, typer.Option(envvar="TIERSERVE_API_KEY", help="A tenant's key.")] = None,
        judge_model: Annotated[str | None, typer.Option(help="The tier that grades `judge` cases.")] = None,
        min_score: Annotated[float | None, typer.Option(help="Fail when the mean score is under this.")] = None,
        baseline: Annotated[Path | None, typer.Option(help="A previous --json-out to compare with.")] = None,
        json_out: Annotated[Path | None, typer.Option(help="Write the run as JSON (a later --baseline).")] = None,
        html_out: Annotated[Path | None, typer.Option(help="Write an HTML report with plots.")] = None,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Cases in flight at once.")] = 2,
        record: Annotated[
            bool, typer.Option("--record", help="Keep the run with the stack: eval metrics and drift follow it.")
        ] = False,
        as_baseline: Annotated[bool, typer.Option(help="With --record: the set's baseline from now on.")] = False,
        admin_key: Annotated[str, typer.Option(envvar="TIERSERVE_ADMIN_KEY", help="For --record.")] = "",
    ) -> None:
        """Score a golden set per tier and overall (with cost and latency); exit 1 on a regression."""
        console = Console(stderr=True)
        try:
            cases = load_set(golden)
            before = json.loads(baseline.read_text()) if baseline is not None else None
        except (GoldenSetError, OSError, ValueError) as error:
            console.print(Text(f"error: {error}", style="red"), soft_wrap=True)
            raise typer.Exit(2) from None
        similarity = None
        if any(case.grader == "similarity" for case in cases):
            from cache import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder()

            def similarity(a: str, b: str) -> float:
                left, right = embedder.embed([a, b])
                return float(left @ right)

        try:
            run = run_set(cases, url, model, tier, api_key, judge_model, similarity, concurrency).as_dict()
        except httpx.HTTPError as error:
            console.print(Text(f"error: cannot reach the stack at {url}: {error}", style="red"))
            raise typer.Exit(2) from None
        regressions = compare(run, before, cases) if before is not None else []
        overall = run["summary"]["overall"]
        table = Table(title=f"eval {golden.name}: {overall['cases']} cases", title_justify="left")
        for column in ("", "cases", "mean score", "errors", "cost USD", "p50 ms", "p95 ms"):
            table.add_column(column, justify="left" if not column else "right")
        groups = {"overall": overall, **{f"tier {t}": s for t, s in run["summary"]["by_tier"].items()}}
        for name, stats in groups.items():
            table.add_row(
                name,
                str(stats["cases"]),
                f"{stats['mean_score']:.3f}",
                str(stats["errors"]),
                f"{stats['cost_usd']:.6f}",
                str(stats["latency_p50_ms"]),
                str(stats["latency_p95_ms"]),
            )
        console.print(table)
        run["regressions"] = regressions
        if record:
            _record(url, admin_key, golden, model, run, as_baseline)
        if json_out is not None:
            json_out.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
        if html_out is not None:
            write_html(run, html_out, regressions)
        failed = False
        if min_score is not None and (overall["mean_score"] or 0.0) < min_score:
            console.print(Text(f"FAIL: mean score {overall['mean_score']:.3f} < {min_score}", style="red"))
            failed = True
        for line in regressions:
            console.print(Text(f"REGRESSION: {line}", style="red"))
        if failed or regressions:
            raise typer.Exit(1)
        console.print(Text("PASS", style="green"))


def _record(url: str, admin_key: str, golden: Path, model: str, run: dict[str, Any], as_baseline: bool) -> None:
    """POST the run's summary to the stack's /admin/evals (the admin client prints any refusal and exits)."""
    summary = run["summary"]
    overall = summary["overall"]
    body = {
        "set": golden.stem,
        "mean_score": overall["mean_score"] or 0.0,
        "by_tier": {
            tier: stats["mean_score"] for tier, stats in summary["by_tier"].items() if stats["mean_score"] is not None
        },
        "cases": overall["cases"],
        "errors": overall["errors"],
        "model": model,
        "baseline": as_baseline,
    }
    admin_request("POST", url, admin_key, "/admin/evals", json=body)
    Console(stderr=True).print(
        f"recorded with the stack as set '{golden.stem}'" + (" (baseline)" if as_baseline else "")
    )
