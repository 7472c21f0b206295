"""The HTML report of a run: the SLO table and plots (latency percentiles over time, TTFT and e2e CDFs,
requests/s, cache hit ratio, tier mix), one self-contained file (plotly.js inlined once, works offline)."""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.records import RequestRecord
from loadtest.runner import Verdict
from loadtest.stats import percentile

__all__ = ["time_buckets", "write_report"]


def time_buckets(records: Sequence[RequestRecord], width_s: float) -> dict[float, list[RequestRecord]]:
    """Records grouped by the bucket (seconds since the first start) in which they ended."""
    if not records:
        return {}
    origin = min(r.start for r in records)
    buckets: dict[float, list[RequestRecord]] = defaultdict(list)
    for record in records:
        buckets[math.floor((record.end - origin) / width_s) * width_s].append(record)
    return dict(sorted(buckets.items()))


def _ttft(record: RequestRecord) -> float | None:
    return record.ttft_s


def _e2e(record: RequestRecord) -> float | None:
    return record.e2e_s


_PICKS = (("TTFT", _ttft), ("end-to-end", _e2e))


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    return ordered, [(i + 1) / len(ordered) for i in range(len(ordered))]


def _figures(records: Sequence[RequestRecord], width_s: float) -> list[Any]:
    import plotly.graph_objects as go  # plotly is needed only to draw

    buckets = time_buckets(records, width_s)
    xs = list(buckets)
    figures = []

    latency = go.Figure()
    for label, pick in _PICKS:
        for q in (50, 95, 99):
            ys = []
            for part in buckets.values():
                values = [v * 1e3 for r in part if r.ok and (v := pick(r)) is not None]
                ys.append(percentile(values, q) if values else None)
            latency.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{label} p{q}"))
    latency.update_layout(title="Latency percentiles over time", xaxis_title="s", yaxis_title="ms")
    figures.append(latency)

    for label, pick in _PICKS:
        cdf = go.Figure()
        groups: dict[str, list[float]] = {"all": []}
        for r in records:
            value = pick(r)
            if r.ok and value is not None:
                groups["all"].append(value * 1e3)
                groups.setdefault(f"tier {r.tier}", []).append(value * 1e3)
                groups.setdefault(f"cache {r.cache}", []).append(value * 1e3)
        for name, values in groups.items():
            if values:
                x, y = _cdf(values)
                cdf.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name))
        cdf.update_layout(title=f"{label} CDF", xaxis_title="ms", yaxis_title="fraction of requests", xaxis_type="log")
        figures.append(cdf)

    rps = go.Figure()
    rps.add_trace(go.Bar(x=xs, y=[sum(r.ok for r in p) / width_s for p in buckets.values()], name="ok"))
    rps.add_trace(go.Bar(x=xs, y=[sum(not r.ok for r in p) / width_s for p in buckets.values()], name="errors"))
    users = [max((r.users for r in p), default=0) for p in buckets.values()]
    rps.add_trace(go.Scatter(x=xs, y=users, name="users (per process)", yaxis="y2", mode="lines"))
    rps.update_layout(
        title="Requests/s (by completion) and users",
        barmode="stack",
        xaxis_title="s",
        yaxis_title="requests/s",
        yaxis2={"overlaying": "y", "side": "right", "title": "users"},
    )
    figures.append(rps)

    hits = go.Figure()
    ratios = []
    for part in buckets.values():
        looked = [r for r in part if r.cache in ("hit", "miss")]
        ratios.append(sum(r.cache == "hit" for r in looked) / len(looked) if looked else None)
    hits.add_trace(go.Scatter(x=xs, y=ratios, mode="lines+markers", name="hit ratio"))
    hits.update_layout(title="Cache hit ratio (hits / lookups)", xaxis_title="s", yaxis_range=[0, 1.05])
    figures.append(hits)

    mix = go.Figure()
    tiers = sorted({r.tier for r in records})
    for tier in tiers:
        mix.add_trace(go.Bar(x=xs, y=[sum(r.tier == tier for r in p) for p in buckets.values()], name=tier))
    mix.update_layout(title="Tier mix (requests per bucket)", barmode="stack", xaxis_title="s")
    figures.append(mix)
    return figures


def _slo_table(verdict: Verdict) -> str:
    rows = []
    for r in verdict.results:
        bound = "≤" if r.direction == "max" else "≥"
        measured = "—" if r.measured is None else f"{r.measured:,.4g}"
        status = "pass" if r.passed else f"FAIL {r.note}".strip()
        css = "pass" if r.passed else "fail"
        rows.append(
            f"<tr class={css}><td>{html.escape(r.name)}</td><td>{bound} {r.target:,.4g}</td>"
            f"<td>{measured}</td><td>{html.escape(status)}</td></tr>"
        )
    return "<table><tr><th>SLO</th><th>target</th><th>measured</th><th>result</th></tr>" + "".join(rows) + "</table>"


def _group_table(verdict: Verdict) -> str:
    columns = ["requests", "error_rate", "rps", "goodput_rps", "ttft_p50_ms", "ttft_p95_ms", "itl_p95_ms"]
    columns += ["e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "output_tokens_per_s"]
    head = "".join(f"<th>{c}</th>" for c in ("scope", *columns))
    rows = []
    for group in verdict.stats.groups():
        cells = "".join(
            f"<td>{'—' if group.metric(c) is None else format(group.metric(c), ',.4g')}</td>" for c in columns
        )
        rows.append(f"<tr><td>{html.escape(group.scope)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_report(path: Path, verdict: Verdict, records: Sequence[RequestRecord]) -> None:
    from plotly.offline import get_plotlyjs

    width = max(1.0, round(verdict.stats.duration_s / 30))  # about 30 points per line
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=False) for f in _figures(records, width))
    errors = Counter(r.error_kind for r in records if not r.ok)
    error_list = "".join(f"<li>{html.escape(k)}: {v}</li>" for k, v in errors.most_common()) or "<li>none</li>"
    verdict_text = "PASS: every SLO met" if verdict.passed else f"FAIL: {len(verdict.breaches)} SLO(s) missed"
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>tierserve load test: {html.escape(verdict.scenario)}</title>
<script>{get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} td:first-child{{text-align:left}}
tr.pass td:last-child{{color:#080}} tr.fail td:last-child{{color:#c00;font-weight:bold}}</style></head><body>
<h1>tierserve load test: {html.escape(verdict.scenario)}</h1>
<p><b>{verdict_text}</b> — {verdict.records} requests over {verdict.stats.duration_s:.0f} s</p>
<h2>SLOs</h2>{_slo_table(verdict)}
<h2>By scope</h2>{_group_table(verdict)}
<h2>Errors</h2><ul>{error_list}</ul>
<h2>Plots</h2>{plots}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
