"""The observe stage: the request's trace from start to end, and its metrics, tokens and cost once it is answered
(or refused). The trace ends here, in one place, whatever way the request ends."""

from __future__ import annotations

import time

from opentelemetry.trace import Tracer

from cache import CachedAnswer
from serving.config import StackConfig
from serving.errors import ServingError
from serving.jobs import Job
from serving.metrics import GatewayMetrics
from serving.pipeline.context import RequestContext
from serving.status import RecentAnswers
from serving.tenancy.pricing import Prices
from serving.tenancy.windows import to_usd
from serving.tracing import RequestTrace


class Observe:
    def __init__(
        self,
        config: StackConfig,
        metrics: GatewayMetrics,
        tracer: Tracer,
        prices: Prices,
        replica: str | None = None,
        recent: RecentAnswers | None = None,
    ) -> None:
        self._replica = replica  # the gateway replica, named in x-tierserve-gateway
        self._recent = recent  # the last minute's answers, for `tierserve status`
        self._config = config
        self._metrics = metrics
        self._tracer = tracer
        self._prices = prices

    def start(self, job: Job) -> RequestContext:
        operation = "chat" if job.endpoint == "chat" else "text_completion"
        attributes: dict[str, str | bool | int | float] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": job.model,
            "gen_ai.request.temperature": job.temperature,
            "tierserve.request_id": job.request_id,
            "tierserve.tenant": job.tenant,
            "tierserve.stream": job.stream,
        }
        if job.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = job.max_tokens
        trace = RequestTrace(self._tracer, f"{operation} {job.model}", job.trace_headers, attributes)
        ctx = RequestContext(job=job, trace=trace, metrics=self._metrics)
        ctx.headers["x-request-id"] = job.request_id
        if self._replica is not None:
            ctx.headers["x-tierserve-gateway"] = self._replica
        if trace.trace_id is not None:
            ctx.headers["x-tierserve-trace-id"] = trace.trace_id
        return ctx

    def answered(self, ctx: RequestContext, answer: CachedAnswer, *, tier: str, cache: str) -> None:
        """A complete answer, live (`tier`) or replayed (`tier="cache"`): metrics, cost, and the trace's end."""
        elapsed = time.perf_counter() - ctx.started
        ttft = elapsed if tier == "cache" or ctx.ttft is None else ctx.ttft
        prompt_tokens, completion_tokens = answer.prompt_tokens, answer.completion_tokens
        ctx.trace.set_raw(
            {
                "gen_ai.response.model": tier,
                "gen_ai.usage.input_tokens": prompt_tokens,
                "gen_ai.usage.output_tokens": completion_tokens,
                "tierserve.ttft_ms": round(ttft * 1e3, 2),
            }
        )
        ctx.trace.end(200)
        m, job = self._metrics, ctx.job
        m.requests.labels(job.endpoint, tier, cache, "200").inc()
        m.latency.labels(job.endpoint, tier, cache).observe(elapsed)
        m.ttft.labels(tier, cache).observe(ttft)
        if self._recent is not None:
            self._recent.record(tier, job.tenant, ttft, completion_tokens)
        m.tokens.labels(tier, "prompt").inc(prompt_tokens)
        m.tokens.labels(tier, "completion").inc(completion_tokens)
        charge = self._prices.answered(tier, prompt_tokens, completion_tokens)
        ctx.status, ctx.answered_by, ctx.usage, ctx.charge = 200, tier, (prompt_tokens, completion_tokens), charge
        ctx.answer = answer
        m.cost.labels(tier, job.tenant).inc(to_usd(charge.cost_micro))
        if charge.saved_cache_micro:
            m.saved.labels(job.tenant, "cache").inc(to_usd(charge.saved_cache_micro))
        if charge.saved_routing_micro:
            m.saved.labels(job.tenant, "routing").inc(to_usd(charge.saved_routing_micro))

    def count_failure(self, ctx: RequestContext, error: ServingError) -> None:
        """A request that failed after its tier was chosen: counted with that tier (the HTTP edge counts the
        others, refused before a tier was chosen)."""
        tier = ctx.call.tier if ctx.call is not None else ctx.tier or "none"
        self._metrics.requests.labels(ctx.job.endpoint, tier, ctx.cache_label, str(error.status)).inc()
        error.counted = True
        ctx.status = error.status
