"""`tierserve router ...`: train, evaluate, calibrate and explain the complexity router.

Mounted by commands/router.py, which passes what the router package must not import itself: an embedder (the
cache's all-MiniLM-L6-v2) and a loader for the stack config (tier order and prices).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
import typer
from numpy.typing import NDArray
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from router.calibrate import achieved_shares, parse_shares, thresholds_for_shares, write_thresholds
from router.config import RouterConfig
from router.cost import TierPrice, expected_cost
from router.data import DataError, load_outcomes, load_prompts
from router.errors import RouterError
from router.evaluate import RoutingReport, evaluate_scores
from router.factory import build_scorer
from router.model import TrainedScorer, load_weights
from router.policy import Router, ThresholdPolicy
from router.scorer import HeuristicScorer, RouteInput
from router.train import embed_prompts, split_of, train

__all__ = ["RouterStack", "TextEmbedder", "add_router_commands"]


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


@dataclass(frozen=True)
class RouterStack:
    """What the router commands need from a stack config."""

    router: RouterConfig
    tiers: list[TierPrice]  # cheapest first


EmbedderFactory = Callable[[], TextEmbedder]
StackLoader = Callable[[Path], RouterStack]

DEFAULT_DATA = Path("../shared/data/routellm-mmlu")
DEFAULT_OUT = Path("router/weights/minilm-mmlu.json")
DEFAULT_CACHE = Path(".tierserve/router")
_err = Console(stderr=True)


def _fail(error: Exception, code: int = 2) -> typer.Exit:
    _err.print(Text(f"error: {error}", style="red"), soft_wrap=True)
    return typer.Exit(code)


def _embed_all(embedder_factory: EmbedderFactory, prompts: Sequence[str], cache: Path | None) -> NDArray[np.float32]:
    embedder = embedder_factory()
    with Progress(
        TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=_err
    ) as progress:
        task = progress.add_task("embed", total=len(prompts))
        return embed_prompts(
            prompts, embedder.embed, cache, progress=lambda done, _: progress.update(task, completed=done)
        )


def _print_report(out: Console, title: str, report: RoutingReport) -> None:
    table = Table(title=title)
    table.add_column("strong calls", justify="right")
    table.add_column("quality", justify="right")
    table.add_column("PGR", justify="right")
    for point in report.curve:
        table.add_row(f"{point.share:.0%}", f"{point.quality:.3f}", f"{point.pgr:.3f}")
    out.print(table)
    out.print(
        f"n={report.n}  weak {report.weak_accuracy:.3f}  strong {report.strong_accuracy:.3f}   "
        f"[bold]APGR {report.apgr:.3f}[/bold]"
        + (f" (95 % CI {report.apgr_ci95[0]:.3f}-{report.apgr_ci95[1]:.3f})" if report.apgr_ci95 else "")
        + f" (random 0.500, oracle {report.oracle_apgr:.3f})   "
        f"CPT(50%) {report.cpt50:.1%}   CPT(80%) {report.cpt80:.1%}"
    )


def _latency_us(router: Router, requests: Sequence[RouteInput]) -> dict[str, float]:
    # Warm up (regex, numpy) on other texts: the features' per-text cache must not serve the timed requests.
    for number, request in enumerate(requests[:50]):
        router.route(RouteInput(f"warm-up {number}: {request.text[:200]}", embedding=request.embedding))
    timings = []
    for request in requests:
        started = time.perf_counter_ns()
        router.route(request)
        timings.append((time.perf_counter_ns() - started) / 1e3)
    values = np.asarray(timings)
    return {
        "p50_us": round(float(np.percentile(values, 50)), 1),
        "p99_us": round(float(np.percentile(values, 99)), 1),
        "mean_us": round(float(values.mean()), 1),
    }


def _embed_latency_ms(embedder: TextEmbedder, prompts: Sequence[str], n: int = 50) -> dict[str, float]:
    sample = list(prompts[:n])
    embedder.embed(sample[:2])
    timings = []
    for prompt in sample:
        started = time.perf_counter()
        embedder.embed([prompt])
        timings.append((time.perf_counter() - started) * 1e3)
    return {
        "p50_ms": round(float(np.percentile(timings, 50)), 2),
        "p99_ms": round(float(np.percentile(timings, 99)), 2),
    }


def add_router_commands(app: typer.Typer, embedder_factory: EmbedderFactory, stack_loader: StackLoader) -> None:
    """Register train / eval / calibrate / explain on a `router` group."""

    @app.command("train")
    def train_command(
        data: Annotated[
            Path, typer.Option(help="Outcome data: a folder of CSV/JSONL files or one file.")
        ] = DEFAULT_DATA,
        out: Annotated[Path, typer.Option(help="Where to write the weights (JSON).")] = DEFAULT_OUT,
        weak: Annotated[str | None, typer.Option(help="Weak model's correctness column.")] = None,
        strong: Annotated[str | None, typer.Option(help="Strong model's correctness column.")] = None,
        cache_dir: Annotated[
            Path, typer.Option(help="Reuse embeddings of identical prompt sets from here.")
        ] = DEFAULT_CACHE,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Embed everything again, keep nothing.")] = False,
        label: Annotated[
            str,
            typer.Option(help="gain (hard = only the strong model was right) or weak-wrong (the weak model failed)."),
        ] = "gain",
    ) -> None:
        """Fit the scorer (embedding + surface features, logistic) with a held-out split; writes the weights."""
        if label not in ("weak-wrong", "gain"):
            raise _fail(ValueError(f"--label must be weak-wrong or gain, got {label!r}"))
        try:
            outcomes = load_outcomes(data, weak, strong)
        except DataError as error:
            raise _fail(error) from None
        _err.print(f"{len(outcomes)} prompts from {data} ({len(set(outcomes.groups))} files)")
        embeddings = _embed_all(embedder_factory, outcomes.prompts, None if no_cache else cache_dir)
        result = train(outcomes, embeddings, source=str(data), label="weak-wrong" if label == "weak-wrong" else "gain")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.weights.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8")
        console = Console()
        for head, by_c in result.validation.items():
            console.print(f"validation APGR ({head}): " + ", ".join(f"C={c:g}: {v:.3f}" for c, v in by_c.items()))
        _print_report(console, "held-out test split (embedding + features)", result.test)
        console.print(f"features only, same split: APGR {result.test_features_only.apgr:.3f}")
        if result.unseen_subjects is not None:
            console.print(
                f"unseen subjects (5 folds of whole files left out of training): APGR "
                f"{result.unseen_subjects.apgr:.3f} pooled, per fold {result.unseen_folds}"
            )
        console.print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")

    @app.command("eval")
    def eval_command(
        data: Annotated[Path, typer.Option(help="CSV/JSONL (or a folder of them) with prompt + True/False columns.")],
        weak: Annotated[str | None, typer.Option(help="Weak model's correctness column.")] = None,
        strong: Annotated[str | None, typer.Option(help="Strong model's correctness column.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        weights: Annotated[Path | None, typer.Option(help="Weights file (default: shipped).")] = None,
        scorer_name: Annotated[
            str, typer.Option("--scorer", help="blend (the default stack's), trained or heuristic.")
        ] = "blend",
        heuristic: Annotated[bool, typer.Option(help="Same as --scorer heuristic.")] = False,
        no_embedding: Annotated[bool, typer.Option("--no-embedding", help="Score from surface features only.")] = False,
        heldout_only: Annotated[
            bool, typer.Option(help="Only rows of the training split's held-out 20 % (for the training data).")
        ] = False,
        exclude: Annotated[
            str | None, typer.Option(help="Leave out rows whose True/False column of this name is True.")
        ] = None,
        cache_dir: Annotated[Path | None, typer.Option(help="Embedding cache folder.")] = DEFAULT_CACHE,
    ) -> None:
        """Quality vs share of strong-model calls (PGR), APGR, CPT(50%), CPT(80%) and routing latency."""
        try:
            outcomes = load_outcomes(data, weak, strong, exclude)
            config = RouterConfig.model_validate(
                {"scorer": "heuristic" if heuristic else scorer_name, "weights_path": weights}
            )
            scorer = build_scorer(config)
        except (RouterError, ValidationError) as error:
            raise _fail(error) from None
        use_embedding = not (no_embedding or config.scorer == "heuristic")
        # Embed the whole file before taking the held-out rows: `router train` cached exactly that set.
        embeddings = _embed_all(embedder_factory, outcomes.prompts, cache_dir) if use_embedding else None
        if heldout_only:
            keep = np.array([split_of(p) == "test" for p in outcomes.prompts])
            outcomes = outcomes.subset(keep)
            embeddings = None if embeddings is None else embeddings[keep]
        requests = [
            RouteInput(p, embedding=None if embeddings is None else embeddings[i])
            for i, p in enumerate(outcomes.prompts)
        ]
        scores = np.array([scorer.score(r) for r in requests])
        try:
            report = evaluate_scores(scores, outcomes.weak, outcomes.strong, bootstrap=1000)
        except RouterError as error:
            raise _fail(error) from None
        latency = _latency_us(Router(scorer, ThresholdPolicy(["weak", "strong"], [0.5])), requests)
        payload: dict[str, Any] = {
            "data": str(data),
            "weak_column": outcomes.weak_column,
            "strong_column": outcomes.strong_column,
            "scorer": config.scorer + ("" if use_embedding or config.scorer == "heuristic" else " (features only)"),
            **report.as_dict(),
            "routing_latency": latency,
        }
        if use_embedding:
            payload["embedding_latency_batch1"] = _embed_latency_ms(embedder_factory(), outcomes.prompts)
        if as_json:
            typer.echo(json.dumps(payload, indent=2))
            return
        console = Console()
        _print_report(console, f"{data} ({payload['scorer']})", report)
        console.print(
            f"routing decision: p50 {latency['p50_us']:.0f} µs, p99 {latency['p99_us']:.0f} µs (after the embedding)"
            + (
                f"; embedding batch-1: p50 {payload['embedding_latency_batch1']['p50_ms']:.1f} ms"
                if use_embedding
                else ""
            )
        )

    @app.command("calibrate")
    def calibrate_command(
        prompts: Annotated[Path, typer.Option(help="Sample of real traffic: .txt (one a line), .csv/.jsonl (prompt).")],
        share: Annotated[list[str], typer.Option(help="TIER=FRACTION, repeatable; one tier may take the rest.")],
        config: Annotated[Path, typer.Option("--config", "-c", help="Stack config YAML to update.")] = Path(
            "configs/default.yaml"
        ),
        dry_run: Annotated[bool, typer.Option(help="Print the thresholds, leave the config alone.")] = False,
        completion_tokens: Annotated[
            int, typer.Option(min=0, help="Completion tokens per request assumed for the cost view.")
        ] = 256,
        cache_dir: Annotated[Path | None, typer.Option(help="Embedding cache folder.")] = DEFAULT_CACHE,
    ) -> None:
        """Set router.thresholds so each tier gets its chosen share of this traffic; print the cost saving."""
        stack = stack_loader(config)
        tiers = [t.name for t in stack.tiers]
        try:
            texts = load_prompts(prompts)
            shares = parse_shares(share, tiers)
            scorer = build_scorer(stack.router)
        except RouterError as error:
            raise _fail(error) from None
        embeddings = _embed_all(embedder_factory, texts, cache_dir) if stack.router.scorer != "heuristic" else None
        scores = np.array(
            [
                scorer.score(RouteInput(t, embedding=None if embeddings is None else embeddings[i]))
                for i, t in enumerate(texts)
            ]
        )
        thresholds = thresholds_for_shares(scores, shares)
        got = achieved_shares(scores, tiers, thresholds)
        console = Console()
        table = Table(title=f"{len(texts)} prompts from {prompts}")
        for column in ("tier", "wanted", "got", "scores from"):
            table.add_column(column, justify="right")
        for i, tier in enumerate(tiers):
            low = 0.0 if i == 0 else thresholds[i - 1]
            table.add_row(tier, f"{shares[tier]:.1%}", f"{got[tier]:.1%}", f"{low:.4f}")
        console.print(table)
        worst = max(abs(got[t] - shares[t]) for t in tiers)
        if worst > 0.05:
            _err.print(
                Text(f"warning: a tier is {worst:.1%} off its share (many equal scores?)", style="yellow"),
                soft_wrap=True,
            )
        prompt_tokens = float(np.mean([len(t) / 4 for t in texts]))  # ~4 characters a token
        cost = expected_cost(got, stack.tiers, prompt_tokens, completion_tokens)
        console.print(
            f"thresholds: {[round(t, 6) for t in thresholds]}   expected cost saving vs everything on "
            f"'{tiers[-1]}': [bold]{cost.saving:.1%}[/bold] (${cost.per_request * 1000:.4f} vs "
            f"${cost.all_largest_per_request * 1000:.4f} per 1k requests of "
            f"~{prompt_tokens:.0f}+{completion_tokens} tokens)"
        )
        if dry_run:
            return
        try:
            # the shares obtained, not the ones asked for: `tierserve plan` sizes the fleet from them
            previous = write_thresholds(config, thresholds, got)
        except RouterError as error:
            raise _fail(error, 1) from None
        try:
            stack_loader(config)  # the edited file must still be a valid stack config
        except (typer.Exit, Exception):
            config.write_text(previous, encoding="utf-8")
            raise
        console.print(f"wrote router.thresholds and router.calibrated_shares to {config}")

    @app.command("bench")
    def bench_command(
        data: Annotated[Path, typer.Option(help="Prompts to draw text from (.txt/.csv/.jsonl).")],
        repeats: Annotated[int, typer.Option(min=50, help="Decisions timed per case.")] = 2000,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Routing-decision latency (p50/p99, after the embedding) by scorer and prompt length."""
        try:
            texts = load_prompts(data)
            results = _bench(embedder_factory, texts, repeats)
        except RouterError as error:
            raise _fail(error) from None
        if as_json:
            typer.echo(json.dumps(results, indent=2))
            return
        table = Table(title=f"routing decision latency, {repeats} decisions per case (µs; embedding in ms)")
        for column in ("prompt", "case", "p50", "p99"):
            table.add_column(column, justify="right" if column in ("p50", "p99") else "left")
        for length, cases in results.items():
            for case, stats in cases.items():
                p50, p99 = (
                    (stats["p50_ms"], stats["p99_ms"]) if "p50_ms" in stats else (stats["p50_us"], stats["p99_us"])
                )
                table.add_row(length, case, f"{p50:.1f}", f"{p99:.1f}")
        Console().print(table)

    @app.command("explain")
    def explain_command(
        prompt: Annotated[str, typer.Argument(help="The prompt to score.")],
        config: Annotated[Path, typer.Option("--config", "-c", help="Stack config YAML.")] = Path(
            "configs/default.yaml"
        ),
        max_tokens: Annotated[int | None, typer.Option(help="Requested max_tokens.")] = None,
        turns: Annotated[int, typer.Option(min=0, help="Earlier user turns in the conversation.")] = 0,
        no_embedding: Annotated[
            bool, typer.Option("--no-embedding", help="As when no embedding is available.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Score one prompt and show what pushed the score up or down, and the tier it goes to."""
        stack = stack_loader(config)
        try:
            scorer = build_scorer(stack.router.model_copy(update={"scorer": "trained"}))
            configured = build_scorer(stack.router)
            policy = ThresholdPolicy([t.name for t in stack.tiers], stack.router.thresholds)
        except RouterError as error:
            raise _fail(error) from None
        assert isinstance(scorer, TrainedScorer)
        embedding = None if no_embedding else embedder_factory().embed([prompt])[0]
        request = RouteInput(prompt, max_tokens=max_tokens, earlier_turns=turns, embedding=embedding)
        explanation = scorer.explain(request)
        final = configured.score(request)  # what the stack routes on (the blend, by default)
        parts = {"trained": explanation.score}
        if stack.router.scorer != "trained":
            parts["heuristic"] = HeuristicScorer(stack.router.weights).score(request)
        tier = policy.tier_for(final)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "tier": tier,
                        "thresholds": policy.thresholds,
                        "scorer": stack.router.scorer,
                        "final_score": final,
                        "parts": parts,
                        **asdict(explanation),
                    },
                    indent=2,
                )
            )
            return
        console = Console()
        table = Table(title="logit contributions (positive: harder)")
        table.add_column("part")
        table.add_column("value", justify="right")
        table.add_column("logit", justify="right")
        table.add_row("intercept", "", f"{explanation.intercept:+.3f}")
        if explanation.used_embedding:
            table.add_row("embedding (topic)", "", f"{explanation.embedding_logit:+.3f}")
        for c in sorted(explanation.contributions, key=lambda c: -abs(c.logit)):
            table.add_row(c.name, f"{c.value:.3g}", f"{c.logit:+.3f}")
        console.print(table)
        console.print(f"trained score {explanation.score:.4f} ({scorer.weights.label})")
        if stack.router.scorer == "blend":
            share = stack.router.blend_trained_share
            console.print(
                f"blend: {share:g} x trained {parts['trained']:.4f} + {1 - share:g} x heuristic "
                f"{parts['heuristic']:.4f}"
            )
        elif stack.router.scorer == "heuristic":
            console.print(f"the stack routes on the heuristic score {parts['heuristic']:.4f}")
        console.print(
            f"score [bold]{final:.4f}[/bold] ({stack.router.scorer}) -> tier [bold]{tier}[/bold] "
            f"(thresholds {policy.thresholds}; {'with' if explanation.used_embedding else 'without'} embedding)"
        )


def _bench(
    embedder_factory: EmbedderFactory, prompts: Sequence[str], repeats: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Decision latency (after the embedding) per scorer and prompt length, and the embedding itself."""
    embedder = embedder_factory()
    words = " ".join(prompts).split()
    lengths = {"10 words": 10, "100 words": 100, "1000 words": 1000, "10000 words": 10_000}
    # Numbered, so every timed text is distinct (the features are cached per text, and a small data file
    # repeats the same window at 10k words).
    texts = {
        name: [f"{i}. " + " ".join(words[(i * n) % max(len(words) - n, 1) :][: n - 1]) for i in range(repeats)]
        for name, n in lengths.items()
    }
    blend = build_scorer(RouterConfig(scorer="blend"))
    trained = build_scorer(RouterConfig(scorer="trained"))
    heuristic = build_scorer(RouterConfig(scorer="heuristic"))
    policy = ThresholdPolicy(["small", "large"], [0.5])
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, batch in texts.items():
        # Any real embedding will do for timing the decision: embed a few and reuse them.
        sample = embedder.embed(batch[:20])
        vectors = [sample[i % len(sample)] for i in range(len(batch))]
        cases = {
            "blend, the default (embedding + features)": (
                blend,
                [RouteInput(t, embedding=vectors[i]) for i, t in enumerate(batch)],
            ),
            "trained (embedding + features)": (
                trained,
                [RouteInput(t, embedding=vectors[i]) for i, t in enumerate(batch)],
            ),
            "trained (features only)": (trained, [RouteInput(t) for t in batch]),
            "heuristic": (heuristic, [RouteInput(t) for t in batch]),
        }
        results[name] = {
            label: _latency_us(Router(scorer, policy), requests) for label, (scorer, requests) in cases.items()
        }
        results[name]["embedding batch-1 (ms)"] = _embed_latency_ms(embedder, batch, n=min(repeats, 30))
    return results


def default_weights_summary() -> dict[str, Any]:
    """The shipped weights' training record (for docs and `router eval`)."""
    return load_weights().training
