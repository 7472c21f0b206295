"""SLO files (configs/slo*.yaml), `--slo NAME=VALUE` overrides and the verdict over a run's statistics.

An SLO is named by scope and metric: `ttft_p95_ms` (overall), `tier:small.e2e_p99_ms`,
`cache:hit.e2e_p95_ms`; `goodput.ttft_ms` sets the per-request target that decides goodput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loadtest.stats import GoodputCriteria, RunStats, metric_direction, metric_names

__all__ = ["ScenarioSlo", "SloError", "SloFile", "SloResult", "apply_override", "evaluate", "load_slo_file"]


class SloError(ValueError):
    """A bad SLO file, scenario name or override; the message says what and where."""


def _check_metrics(targets: dict[str, float]) -> dict[str, float]:
    known = metric_names()
    for name, value in targets.items():
        if name not in known:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(known)}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: target must be a finite number >= 0, got {value}")
    return targets


Targets = dict[str, float]


class GoodputSpec(BaseModel):
    """Per-request targets: a request is `good` when it met all of them at once (DistServe's goodput)."""

    model_config = ConfigDict(extra="forbid")
    ttft_ms: float | None = Field(default=None, gt=0, description="Time to first content chunk (streams).")
    tpot_ms: float | None = Field(default=None, gt=0, description="Time per output token after the first (streams).")
    e2e_ms: float | None = Field(default=None, gt=0, description="Whole request, send to last byte.")

    def criteria(self) -> GoodputCriteria:
        return GoodputCriteria(self.ttft_ms, self.tpot_ms, self.e2e_ms)


class ScenarioSlo(BaseModel):
    """The targets of one scenario: overall, per tier (`tiers.small`), per cache outcome (`cache.hit`)."""

    model_config = ConfigDict(extra="forbid")
    goodput: GoodputSpec = Field(default_factory=lambda: GoodputSpec(), description="Per-request targets of goodput.")
    overall: Targets = Field(default_factory=dict, description="metric -> target over every request.")
    tiers: dict[str, Targets] = Field(default_factory=dict, description="tier -> metric -> target.")
    cache: dict[str, Targets] = Field(default_factory=dict, description="hit/miss/bypass -> metric -> target.")

    _overall = field_validator("overall")(_check_metrics)

    @field_validator("tiers", "cache")
    @classmethod
    def _scoped(cls, value: dict[str, Targets]) -> dict[str, Targets]:
        for targets in value.values():
            _check_metrics(targets)
        return value

    def targets(self) -> list[tuple[str, str, float]]:
        """(scope, metric, target) for every SLO, overall first."""
        rows = [("overall", m, t) for m, t in self.overall.items()]
        rows += [(f"tier:{tier}", m, t) for tier, targets in self.tiers.items() for m, t in targets.items()]
        rows += [(f"cache:{name}", m, t) for name, targets in self.cache.items() for m, t in targets.items()]
        return rows


class SloFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    defaults: ScenarioSlo = Field(default_factory=ScenarioSlo, description="Merged under every scenario.")
    scenarios: dict[str, ScenarioSlo] = Field(default_factory=dict)

    def for_scenario(self, name: str) -> ScenarioSlo:
        """The defaults with the scenario's own targets on top (one level deep: per metric)."""
        own = self.scenarios.get(name)
        if own is None:
            if not self.defaults.targets():
                raise SloError(f"no SLOs for scenario {name!r} (has: {', '.join(self.scenarios) or 'none'})")
            return self.defaults.model_copy(deep=True)
        base, top = self.defaults.model_dump(), own.model_dump(exclude_unset=True)
        merged: dict[str, Any] = dict(base)
        for key, value in top.items():
            if key == "overall" or key == "goodput":
                merged[key] = {**base[key], **value}
            else:
                merged[key] = {s: {**base[key].get(s, {}), **t} for s, t in {**base[key], **value}.items()}
        return ScenarioSlo.model_validate(merged)


def load_slo_file(path: Path) -> SloFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SloError(f"cannot read SLO file {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise SloError(f"{path}: not valid YAML: {error}") from None
    try:
        return SloFile.model_validate(data or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SloError(f"{path}: {where}: {first['msg']}") from None


def apply_override(slo: ScenarioSlo, text: str) -> ScenarioSlo:
    """`NAME=VALUE`: `ttft_p95_ms=500`, `tier:small.e2e_p99_ms=9000`, `cache:hit.e2e_p95_ms=300`,
    `goodput.ttft_ms=800`."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SloError(f"--slo {text!r}: expected NAME=VALUE, e.g. ttft_p95_ms=500")
    try:
        value = float(raw)
    except ValueError:
        raise SloError(f"--slo {text!r}: {raw.strip()!r} is not a number") from None
    scope, dot, metric = name.rpartition(".")
    data = slo.model_dump()
    if scope == "goodput":
        if metric not in GoodputSpec.model_fields:
            raise SloError(f"--slo {name}: goodput targets are {', '.join(GoodputSpec.model_fields)}")
        data["goodput"][metric] = value
    elif not dot or scope == "overall":
        data["overall"][metric] = value
    else:
        kind, colon, key = scope.partition(":")
        if kind not in ("tier", "cache") or not colon or not key:
            raise SloError(f"--slo {name}: scope must be overall, tier:NAME, cache:hit|miss|bypass or goodput")
        data["tiers" if kind == "tier" else "cache"].setdefault(key, {})[metric] = value
    if scope != "goodput" and metric not in metric_names():
        raise SloError(f"--slo {name}: unknown metric {metric!r}; known: {', '.join(metric_names())}")
    try:
        return ScenarioSlo.model_validate(data)
    except ValidationError as error:
        raise SloError(f"--slo {text!r}: {error.errors()[0]['msg']}") from None


@dataclass(frozen=True)
class SloResult:
    name: str  # as written on the command line: ttft_p95_ms, tier:small.e2e_p99_ms
    scope: str
    metric: str
    target: float
    measured: float | None
    passed: bool
    direction: str  # max: measured must be <= target; min: >= target
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "metric": self.metric,
            "target": self.target,
            "measured": self.measured,
            "passed": self.passed,
            "direction": self.direction,
            "note": self.note,
        }


def evaluate(slo: ScenarioSlo, stats: RunStats) -> list[SloResult]:
    """One result per target. A scope that saw no request, or a metric that could not be measured, fails:
    a gate must not pass on missing data."""
    results = []
    for scope, metric, target in slo.targets():
        name = metric if scope == "overall" else f"{scope}.{metric}"
        direction = metric_direction(metric)
        group = stats.group(scope)
        measured = group.metric(metric) if group is not None else None
        if group is None:
            note = "no requests in this scope"
        elif measured is None:
            note = "not measured (no successful request with this figure)"
        else:
            note = ""
        passed = measured is not None and (measured <= target if direction == "max" else measured >= target)
        results.append(SloResult(name, scope, metric, target, measured, passed, direction, note))
    return results
