"""One scrape for the whole stack: every gateway replica and every tier replica publishes its Prometheus exposition
to Redis every few seconds (with a short TTL, so a dead replica drops out), and `GET /metrics` on any gateway
replica merges them.

- Gateway counters and histograms are summed over the replicas (a counter is the stack's total, whichever replica
  the load balancer sent the scrape to); gauges keep one series per replica (`replica` label), since the sum of
  two breaker states or two queue depths means nothing.
- Tier replicas publish vLLM's own engine metrics (`vllm:*`: running and waiting requests, KV-cache use,
  preemptions, TTFT and time-per-output-token histograms), labelled here with `tier` and `replica`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "Exposition",
    "MetricsPublisher",
    "engine_exposition",
    "merge_expositions",
    "metrics_key",
    "read_expositions",
]

logger = logging.getLogger(__name__)

_SUMMED = {"counter", "histogram", "summary"}


@dataclass(frozen=True)
class Exposition:
    """One replica's published metrics."""

    role: str  # gateway | tier | stack
    replica: str
    text: str
    tier: str | None = None


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else f"{value:.1f}"


def merge_expositions(expositions: Iterable[Exposition]) -> str:
    """The merged exposition text (Prometheus text format 0.0.4)."""
    families: dict[str, _Family] = {}
    for exposition in expositions:
        extra: dict[str, str] = {}
        if exposition.role == "tier":
            extra = {"tier": exposition.tier or "", "replica": exposition.replica}
        for family in text_string_to_metric_families(exposition.text):
            summed = exposition.role == "gateway" and family.type in _SUMMED
            # "stack": one value for the whole stack (read from Redis by whichever replica is scraped).
            own = summed or exposition.role == "stack"
            labels_extra = extra if exposition.role == "tier" else ({} if own else {"replica": exposition.replica})
            merged = families.setdefault(family.name, _Family(family.name, family.type, family.documentation))
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # a per-process creation time: no meaning summed or across replicas
                labels = {**sample.labels, **labels_extra}
                key = (sample.name, tuple(sorted(labels.items())))
                merged.samples[key] = merged.samples.get(key, 0.0) + sample.value if summed else sample.value
    return render(families.values())


def render(families: Iterable[_Family]) -> str:
    lines: list[str] = []
    for family in sorted(families, key=lambda f: f.name):
        lines.append(f"# HELP {family.name} {_escape(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for (name, labels), value in sorted(family.samples.items()):
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def parse_key(key: str, prefix: str) -> Mapping[str, str] | None:
    """`<prefix>:metrics:<role>:<tier or ->:<replica>` -> its parts."""
    parts = key.removeprefix(f"{prefix}:metrics:").split(":", 2)
    if len(parts) != 3:
        return None
    role, tier, replica = parts
    return {"role": role, "tier": tier, "replica": replica}


def metrics_key(prefix: str, role: str, replica: str, tier: str | None = None) -> str:
    return f"{prefix}:metrics:{role}:{tier or '-'}:{replica}"


class MetricsPublisher:
    """Writes one replica's exposition to Redis every `interval_s` with a TTL of a few intervals: a replica that
    dies drops out of the merged scrape within `ttl_s`. A Redis that is down is skipped quietly (the replica's
    own /metrics still answers)."""

    def __init__(
        self,
        redis_url: str,
        key: str,
        render: Callable[[], str],
        interval_s: float = 2.0,
        ttl_s: float = 10.0,
        presence: tuple[str, Callable[[], dict[str, Any]]] | None = None,
    ) -> None:
        self._url = redis_url
        self._key = key
        self._render = render
        self._presence = presence  # (key, record): where the replica runs, for `tierserve status`
        self._interval_s = interval_s
        self._ttl_ms = int(ttl_s * 1000)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        from cache import connect_async

        client = connect_async(self._url, socket_timeout=2, socket_connect_timeout=2)
        try:
            while True:
                try:
                    await client.set(self._key, self._render(), px=self._ttl_ms)
                    if self._presence is not None:
                        key, record = self._presence
                        await client.set(key, json.dumps(record()), px=self._ttl_ms)
                except Exception as error:  # Redis away: the merged scrape misses this replica for a while
                    logger.debug("publishing metrics to %s failed: %r", self._key, error)
                await asyncio.sleep(self._interval_s)
        finally:
            await client.aclose()


async def read_expositions(client: Any, prefix: str) -> list[Exposition]:
    """Every replica's latest exposition in Redis."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:metrics:*", count=500)]
    if not keys:
        return []
    texts = await client.mget(keys)
    found = []
    for key, text in zip(keys, texts, strict=True):
        parts = parse_key(key.decode() if isinstance(key, bytes) else str(key), prefix)
        if parts is None or text is None:
            continue
        body = text.decode() if isinstance(text, bytes) else str(text)
        tier = parts["tier"] if parts["tier"] != "-" else None
        found.append(Exposition(parts["role"], parts["replica"], body, tier))
    return found


def engine_exposition() -> str:
    """vLLM's own metrics of this process (`vllm:*`, in prometheus_client's default registry)."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.registry import CollectorRegistry

    class _Engine(CollectorRegistry):
        def collect(self) -> Any:
            return (family for family in REGISTRY.collect() if family.name.startswith("vllm:"))

    return generate_latest(_Engine()).decode()
