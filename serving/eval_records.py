"""Golden-set eval runs recorded with the stack (`tierserve eval --record` posts them to `/admin/evals`): kept in
Redis, newest first, so every gateway replica exports the latest scores as metrics and the drift report says when
a run scored under its baseline (the newest run recorded as one, else the first recorded for that set)."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EvalRecord", "eval_drift", "eval_exposition", "read_evals", "record_eval"]

_KEEP = 500  # runs kept (all sets together)


class EvalRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    set: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$", description="The golden set.")
    mean_score: float = Field(ge=0, le=1)
    by_tier: dict[str, float] = Field(default_factory=dict, description="Mean score per tier that answered.")
    cases: int = Field(ge=1)
    errors: int = Field(default=0, ge=0)
    model: str = Field(default="auto", max_length=200)
    baseline: bool = Field(default=False, description="This run is the set's baseline from now on.")
    at: float = Field(default_factory=time.time, description="When it ran (Unix time).")


def _key(prefix: str) -> str:
    return f"{prefix}:evals"


async def record_eval(redis: Any, prefix: str, record: EvalRecord) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush(_key(prefix), record.model_dump_json())
        pipe.ltrim(_key(prefix), 0, _KEEP - 1)
        await pipe.execute()


async def read_evals(redis: Any, prefix: str, limit: int = _KEEP) -> list[EvalRecord]:
    """Recorded runs, newest first."""
    rows = await redis.lrange(_key(prefix), 0, limit - 1)
    return [EvalRecord.model_validate(json.loads(row)) for row in rows]


def eval_drift(records: list[EvalRecord], max_drop: float) -> dict[str, dict[str, Any]]:
    """Per set: its latest run against its baseline; `alarm` when the mean dropped more than `max_drop`."""
    report: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(record.set for record in records):
        runs = [record for record in records if record.set == name]  # newest first
        latest = runs[0]
        marked = [record for record in runs if record.baseline]
        baseline = marked[0] if marked else runs[-1]
        drop = round(baseline.mean_score - latest.mean_score, 4)
        report[name] = {
            "latest": latest.mean_score,
            "latest_at": latest.at,
            "baseline": baseline.mean_score,
            "baseline_at": baseline.at,
            "drop": drop,
            "runs": len(runs),
            "by_tier": latest.by_tier,
            "alarm": drop > max_drop,
        }
    return report


def eval_exposition(records: list[EvalRecord], max_drop: float) -> str:
    """The latest scores as Prometheus text: `tierserve_eval_score{set,tier}` (tier "all": the whole set),
    `tierserve_eval_baseline_score{set}`, `tierserve_eval_alarm{set}` and the last run's time."""
    registry = CollectorRegistry()
    score = Gauge("tierserve_eval_score", "Latest recorded golden-set score.", ["set", "tier"], registry=registry)
    baseline = Gauge("tierserve_eval_baseline_score", "The set's baseline score.", ["set"], registry=registry)
    alarm = Gauge(
        "tierserve_eval_alarm", "1 when the latest run dropped past drift.eval_drop.", ["set"], registry=registry
    )
    last = Gauge("tierserve_eval_last_run_timestamp_seconds", "When the set last ran.", ["set"], registry=registry)
    for name, row in eval_drift(records, max_drop).items():
        score.labels(name, "all").set(row["latest"])
        for tier, value in row["by_tier"].items():
            score.labels(name, tier).set(value)
        baseline.labels(name).set(row["baseline"])
        alarm.labels(name).set(float(row["alarm"]))
        last.labels(name).set(row["latest_at"])
    return generate_latest(registry).decode()
