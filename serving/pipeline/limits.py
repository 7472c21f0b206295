"""The limits stage: the request is admitted against its key's and its tenant's rate limits (requests/min, its
prompt's tokens against tokens/min, a concurrency slot) and reserves its worst-case cost against their budgets,
before the cache or a tier does any work. Its closer settles all of it once the request has ended, whatever way:
an answer at its real cost, a cache hit at the cache's price, a cancelled or failed generation at the tokens it
used, a refusal at nothing."""

from __future__ import annotations

from serving.pipeline.context import RequestContext
from serving.tenancy import Meter, Settlement
from serving.tenancy.pricing import Prices
from serving.tenancy.windows import prompt_token_estimate


class Limits:
    name = "limits"

    def __init__(self, meter: Meter, prices: Prices) -> None:
        self._meter = meter
        self._prices = prices

    async def run(self, ctx: RequestContext) -> None:
        job = ctx.job
        messages = len(job.context) + 1
        ticket = await self._meter.admit(ctx.principal, job.request_id, prompt_token_estimate(len(job.body), messages))
        ctx.ticket = ticket
        ctx.closers.append(self._finish)
        ctx.headers.update(ticket.headers)
        choices = job.params.get("n", 1)
        worst = self._prices.worst_case(
            job.model, len(job.body), messages, job.max_tokens, choices if isinstance(choices, int) else 1
        )
        await self._meter.reserve(ticket, worst)
        meter = self._meter

        async def streamed(count: int) -> None:
            await meter.streamed(ticket, count)

        ctx.on_tokens = streamed

    async def _finish(self, ctx: RequestContext) -> None:
        ticket = ctx.ticket
        assert ticket is not None
        if ctx.usage is not None and ctx.charge is not None:  # answered, live or from the cache
            prompt, completion = ctx.usage
            charge = ctx.charge
            tier = ctx.answered_by or "none"
        elif ctx.call is not None:  # the tier worked, then failed or the client left: the tokens it used
            tier = ctx.call.tier
            prompt, completion = ticket.prompt_estimate, ctx.streamed_tokens
            charge = self._prices.answered(tier, prompt, completion)
        else:  # refused before any work
            tier, prompt, completion = "none", 0, 0
            charge = self._prices.answered(tier, 0, 0)
        await self._meter.finish(
            ticket,
            Settlement(
                tier=tier,
                model=ctx.job.model,
                cache=ctx.visit.outcome.value if ctx.answered_by == "cache" else ctx.cache_label,
                status=ctx.status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_micro=charge.cost_micro,
                saved_cache_micro=charge.saved_cache_micro,
                saved_routing_micro=charge.saved_routing_micro,
            ),
        )
