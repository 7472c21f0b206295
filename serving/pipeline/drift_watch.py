"""The drift stage: when a request ends, its signals go to this replica's drift detector (drift/): the query's
embedding (the one the cache and the router used), the router's score, the tier that answered, whether the cache
answered, the answer's length, whether it was empty or a refusal, and whether it failed. Each check updates
`tierserve_drift_score{signal}` (1 = at the alarm line) and `tierserve_drift_alarm{signal}`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from drift import DriftDetector
from serving.pipeline.context import RequestContext

_REFUSAL = re.compile(r"^\W*(i'?m sorry|i can(?:no|')t|i am unable|as an ai\b)", re.IGNORECASE)


class DriftWatch:
    name = "drift"

    def __init__(self, detector: DriftDetector, tiers: Sequence[str]) -> None:
        self.detector = detector
        self._tiers = list(tiers)

    async def run(self, ctx: RequestContext) -> None:
        ctx.closers.append(self._observe)

    async def _observe(self, ctx: RequestContext) -> None:
        if ctx.status == 499:
            return  # the client went away: says nothing about the traffic or the answers
        job, answer = ctx.job, ctx.answer
        scalars: dict[str, float] = {"error": float(ctx.status >= 500)}
        if ctx.decision is not None:
            scalars["route_score"] = ctx.decision.score
        if answer is not None and ctx.status == 200:
            text = answer.text.strip()
            scalars |= {
                "cache_hit": float(ctx.answered_by == "cache"),
                "answer_chars": float(len(text)),
                "empty": float(not text),
                "refusal": float(bool(_REFUSAL.match(text))),
            }
            tier = answer.tier or ctx.tier
            scalars |= {f"share_{name}": float(name == tier) for name in self._tiers}
        vector = ctx.visit.vector if ctx.visit.vector is not None else ctx.embedded.get(job.query)
        self.detector.observe(vector, scalars)
        if self.detector.ready:
            for name, state in self.detector.states.items():
                ctx.metrics.drift_score.labels(name).set(state.score)
                ctx.metrics.drift_alarm.labels(name).set(float(state.alarm))
