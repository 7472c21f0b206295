"""The eval's HTML report: scores per tier and grader, latency and cost, and every case with its answer."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["write_html"]


def write_html(run: dict[str, Any], path: Path, regressions: list[str]) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    summary = run["summary"]
    tiers = list(summary["by_tier"])
    cases = run["cases"]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean score by tier", "latency by case (ms)"))
    figure.add_trace(go.Bar(x=tiers, y=[summary["by_tier"][t]["mean_score"] for t in tiers], name="score"), 1, 1)
    figure.add_trace(
        go.Bar(x=[c["name"] for c in cases], y=[c["latency_ms"] for c in cases], name="latency"), row=1, col=2
    )
    figure.update_layout(height=420, showlegend=False)
    rows = "".join(
        f"<tr><td>{html.escape(c['name'])}</td><td>{c['grader']}</td><td>{c['score']:.2f}</td>"
        f"<td>{html.escape(str(c['tier']))}</td><td>{c['latency_ms']:.0f}</td>"
        f"<td>{html.escape((c['error'] or c['answer'])[:300])}</td></tr>"
        for c in cases
    )
    overall = summary["overall"]
    verdict = (
        "<p style='color:#b00'>Regressions: " + html.escape("; ".join(regressions)) + "</p>" if regressions else ""
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tierserve eval</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
table{{border-collapse:collapse}}</style></head><body>
<h1>tierserve eval: {html.escape(run["model"])}{" pinned to " + html.escape(run["tier"]) if run["tier"] else ""}</h1>
<p>{overall["cases"]} cases, mean score {overall["mean_score"]}, {overall["errors"]} errors,
cost ${overall["cost_usd"]:.6f}, latency p50 {overall["latency_p50_ms"]} ms, p95 {overall["latency_p95_ms"]} ms.</p>
{verdict}{figure.to_html(full_html=False, include_plotlyjs="cdn")}
<table><tr><th>case</th><th>grader</th><th>score</th><th>tier</th><th>ms</th><th>answer</th></tr>{rows}</table>
</body></html>"""
    path.write_text(page, encoding="utf-8")
