"""Aggregate request records into the figures SLOs are written against: latency percentiles, error rate,
throughput and goodput, overall, per tier and per cache outcome."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from loadtest.records import RequestRecord

__all__ = [
    "PERCENTILES",
    "GoodputCriteria",
    "GroupStats",
    "RunStats",
    "metric_direction",
    "metric_names",
    "percentile",
    "summarize",
]

PERCENTILES = (50, 90, 95, 99)
_LATENCIES = ("ttft", "itl", "tpot", "e2e")
_RATES = ("rps", "goodput_rps", "goodput_ratio", "output_tokens_per_s", "cache_hit_ratio", "requests")
# A soak is judged on whether latency drifts: p95 of the last fifth of the run over p95 of the first fifth.
_DRIFT = "e2e_p95_drift_ratio"


def metric_names() -> list[str]:
    """Every metric an SLO can name."""
    names = [f"{m}_p{p}_ms" for m in _LATENCIES for p in PERCENTILES] + [f"{m}_mean_ms" for m in _LATENCIES]
    return [*names, "error_rate", *_RATES, _DRIFT]


def metric_direction(name: str) -> str:
    """`max` when lower is better (the target is a ceiling), `min` when higher is better (a floor)."""
    return "max" if name.endswith("_ms") or name in ("error_rate", _DRIFT) else "min"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class GoodputCriteria:
    """A request counts towards goodput only if it succeeded and met every per-request target at once
    (DistServe). A target that a request cannot be measured against (TTFT of a non-streamed answer) is
    skipped for it; the others still apply."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def met(self, record: RequestRecord) -> bool:
        if not record.ok:
            return False
        checks = ((self.ttft_ms, record.ttft_s), (self.tpot_ms, record.tpot_s), (self.e2e_ms, record.e2e_s))
        return all(target is None or value is None or value * 1e3 <= target for target, value in checks)


@dataclass
class GroupStats:
    """The figures of one slice of the run (overall, one tier, one cache outcome)."""

    scope: str
    requests: int
    failures: int
    errors_by_kind: dict[str, int]
    metrics: dict[str, float | None] = field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return None if value is None or math.isnan(value) else value


@dataclass
class RunStats:
    duration_s: float
    overall: GroupStats
    tiers: dict[str, GroupStats]
    caches: dict[str, GroupStats]

    def group(self, scope: str) -> GroupStats | None:
        """`overall`, `tier:NAME` or `cache:OUTCOME`."""
        if scope == "overall":
            return self.overall
        kind, _, name = scope.partition(":")
        table = {"tier": self.tiers, "cache": self.caches}.get(kind, {})
        return table.get(name)

    def groups(self) -> list[GroupStats]:
        return [self.overall, *self.tiers.values(), *self.caches.values()]


def _ms(values: Iterable[float | None]) -> list[float]:
    return [v * 1e3 for v in values if v is not None]


def _drift(records: Sequence[RequestRecord], start: float, duration: float) -> float | None:
    if duration <= 0:
        return None
    fifth = duration / 5
    early = [r.e2e_s for r in records if r.ok and r.start < start + fifth]
    late = [r.e2e_s for r in records if r.ok and r.start >= start + duration - fifth]
    if len(early) < 3 or len(late) < 3:
        return None
    return percentile(late, 95) / max(percentile(early, 95), 1e-9)


def _group(
    scope: str, records: Sequence[RequestRecord], criteria: GoodputCriteria, duration: float, start: float
) -> GroupStats:
    ok = [r for r in records if r.ok]
    errors = Counter(r.error_kind for r in records if not r.ok)
    series: dict[str, list[float]] = {
        "ttft": _ms(r.ttft_s for r in ok),
        "itl": _ms(gap for r in ok for gap in r.itl_s),  # pooled over every gap, as vLLM's benchmark does
        "tpot": _ms(r.tpot_s for r in ok),
        "e2e": _ms(r.e2e_s for r in ok),
    }
    metrics: dict[str, float | None] = {}
    for name, values in series.items():
        for q in PERCENTILES:
            metrics[f"{name}_p{q}_ms"] = percentile(values, q) if values else None
        metrics[f"{name}_mean_ms"] = sum(values) / len(values) if values else None
    n = len(records)
    good = sum(1 for r in records if criteria.met(r))
    looked_up = [r for r in records if r.cache in ("hit", "miss")]
    per_s = 1 / duration if duration > 0 else math.nan
    metrics |= {
        "requests": float(n),
        "error_rate": (n - len(ok)) / n if n else None,
        "rps": n * per_s,
        "goodput_rps": good * per_s,
        "goodput_ratio": good / n if n else None,
        "output_tokens_per_s": sum(r.output_tokens for r in ok) * per_s,
        "cache_hit_ratio": sum(r.cache == "hit" for r in looked_up) / len(looked_up) if looked_up else None,
        _DRIFT: _drift(records, start, duration),
    }
    return GroupStats(scope, n, n - len(ok), dict(errors), metrics)


def _split(records: Sequence[RequestRecord], key: Callable[[RequestRecord], str]) -> dict[str, list[RequestRecord]]:
    parts: dict[str, list[RequestRecord]] = {}
    for record in records:
        parts.setdefault(key(record), []).append(record)
    return dict(sorted(parts.items()))


def summarize(records: Sequence[RequestRecord], criteria: GoodputCriteria, duration_s: float | None = None) -> RunStats:
    """Rates are per second of the run: `duration_s` when given (the configured run time), else from the
    first request's start to the last one's end."""
    start = min((r.start for r in records), default=0.0)
    end = max((r.end for r in records), default=0.0)
    duration = duration_s if duration_s is not None else max(0.0, end - start)

    def build(scope: str, part: Sequence[RequestRecord]) -> GroupStats:
        return _group(scope, part, criteria, duration, start)

    return RunStats(
        duration_s=duration,
        overall=build("overall", records),
        tiers={n: build(f"tier:{n}", p) for n, p in _split(records, lambda r: r.tier).items()},
        caches={n: build(f"cache:{n}", p) for n, p in _split(records, lambda r: r.cache).items()},
    )
