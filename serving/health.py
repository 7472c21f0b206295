"""GET /health: every tier really generates (a one-token probe per tier, in parallel), reused for a few seconds so
a busy load balancer does not turn health checks into load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from cache import SemanticCache
from serving.config import GatewayConfig
from serving.pipeline.dispatch import TierClient
from serving.reliability import Breakers


class TierHealth:
    def __init__(
        self,
        config: GatewayConfig,
        tiers: Mapping[str, TierClient],
        cache: SemanticCache | None,
        breakers: Breakers | None = None,
    ) -> None:
        self._breakers = breakers
        self._config = config
        self._tiers = tiers
        self._cache = cache
        self._last: tuple[float, bool, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> tuple[bool, dict[str, Any]]:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self._config.health_cache_s:
                return self._last[1], self._last[2]
            names = list(self._tiers)
            results = await asyncio.gather(*(self._probe(name) for name in names))
            tiers = dict(zip(names, results, strict=True))
            failing = [name for name, result in tiers.items() if not result["ok"]]
            cache_state = "disabled" if self._cache is None else ("ok" if self._cache.available() else "bypass")
            report = {"status": "unavailable" if failing else "ok", "failing": failing, "tiers": tiers}
            report["cache"] = cache_state
            if self._breakers is not None:  # this replica's view: which tiers it is refusing to call, and how long
                report["breakers"] = self._breakers.report()
            self._last = (now, not failing, report)
            return not failing, report

    async def _probe(self, name: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._config.health_timeout_s):
                result = await self._tiers[name].probe()
        except Exception as error:
            return {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        return {
            "ok": result.ok,
            "replica": result.replica,
            "generate_ms": result.generate_ms,
            "latency_ms": round((time.perf_counter() - started) * 1e3, 1),
        }
