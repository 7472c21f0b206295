"""The audit stage: every request that reaches the pipeline leaves one record in the audit log (serving.audit)
when it ends, answered or refused, and the record is on disk before the response completes: the closers of a
whole answer run before it is sent, a stream's before its last byte. The record names who asked (tenant, key id,
never the key), what answered (tier, cache outcome, similarity, and for a replayed answer the request that made it:
lineage), what it cost, the guards' verdicts, and hashes of the prompt and the answer; their texts, redacted,
only where the tenant's guard policy asks for them (audit_texts)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from serving.audit import AuditLog, now_iso
from serving.pipeline.context import RequestContext


class AuditTrail:
    name = "audit"

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def run(self, ctx: RequestContext) -> None:
        ctx.closers.append(self._record)

    async def _record(self, ctx: RequestContext) -> None:
        await self._log.append(request_record(ctx))


def request_record(ctx: RequestContext) -> dict[str, Any]:
    job, answer, guard = ctx.job, ctx.answer, ctx.guard
    replayed = ctx.answered_by == "cache"
    return {
        "kind": "request",
        "time": now_iso(),
        "request_id": job.request_id,
        "trace_id": ctx.trace.trace_id,
        "tenant": job.tenant,
        "key_id": ctx.principal.key_id,
        "endpoint": job.endpoint,
        "model": job.model,
        "stream": job.stream,
        "tier": (answer.tier if answer is not None else None) or ctx.tier,
        "answered_by": ctx.answered_by,
        "fallback_from": ctx.headers.get("x-tierserve-fallback-from"),
        "escalated_from": ctx.escalated_from,
        "prompt_version": ctx.prompt_version,
        "cache": ctx.headers.get("x-tierserve-cache"),
        "route_score": round(ctx.decision.score, 4) if ctx.decision is not None else None,
        "route_reason": ctx.headers.get("x-tierserve-route-reason"),
        "similarity": ctx.visit.similarity,
        "lineage": answer.request_id if replayed and answer is not None else None,
        "status": ctx.status,
        "error": ctx.error,
        "latency_ms": round((time.perf_counter() - ctx.started) * 1e3, 1),
        "ttft_ms": round(ctx.ttft * 1e3, 1) if ctx.ttft is not None else None,
        "stages_ms": {name: round(ms, 2) for name, ms in ctx.timings.items()},
        "prompt_tokens": ctx.usage[0] if ctx.usage else None,
        "completion_tokens": ctx.usage[1] if ctx.usage else ctx.streamed_tokens or None,
        "cost_usd": ctx.charge.cost_micro / 1e6 if ctx.charge is not None else None,
        "prompt_sha256": hashlib.sha256(job.body).hexdigest(),
        "answer_sha256": hashlib.sha256(answer.text.encode()).hexdigest() if answer is not None else None,
        "guard": {
            "input": guard.verdict,
            "score": round(guard.score, 4) if guard.score is not None else None,
            "input_pii": guard.input_pii,
            "output": guard.output,
            "output_action": guard.output_action,
        },
        # Only where the tenant's guard policy says (audit_texts), and redacted of PII, secrets and leaks.
        "prompt_text": guard.prompt_text,
        "answer_text": guard.answer_text,
    }
