"""The input guard stage: every user and tool message is scored by the injection classifier, and the tenant's
policy acts on the highest score (flag: served and recorded; block: 400 content_policy_violation; route: served
by the configured tier). PII in the prompt keeps the request out of the cache (nothing with PII is stored in
Redis) and, where the policy says, is redacted from the prompt the model sees as well.

Headers: `x-tierserve-guard: pass|flag|block|route` and `x-tierserve-guard-score`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from cache import CachedAnswer
from guards import Finding, Guards, redact
from serving.errors import ContentPolicyViolation
from serving.pipeline.context import RequestContext

_SCREENED_ROLES = {"user", "tool", "function"}  # what a user or a tool's data can put in front of the model


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _audit_text(messages: list[dict[str, Any]], query: str, redactor: Callable[[str], str]) -> str:
    """The prompt as the audit record keeps it (audit_texts): each message as `role: text`, PII redacted."""
    lines = [f"{m.get('role')}: {redactor(_text_of(m.get('content')))}" for m in messages]
    return "\n".join(lines) if lines else redactor(query)


def _redacted_content(content: Any, redactor: Any) -> Any:
    if isinstance(content, str):
        return redactor(content)
    if isinstance(content, list):
        return [
            {**p, "text": redactor(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
            for p in content
        ]
    return content


class InputGuard:
    name = "guard_input"

    def __init__(self, guards: Guards) -> None:
        self._guards = guards

    def cleared(self, ctx: RequestContext, answer: CachedAnswer) -> bool:
        """An identical repeat of a request screened before by these very detectors (its cached answer carries
        their fingerprint and the score): the same texts get the same score and no PII (an answer to a prompt with
        PII is never cached), so the verdict is the tenant's policy today applied to that score, without embedding
        or scanning again. False when it must be screened anew: other detectors then, no score kept, or a policy
        that routes it (a routed request is not answered from the cache)."""
        policy = self._guards.config.policy(ctx.job.tenant)
        scored = policy.input_action != "off"
        if answer.guard_fingerprint != self._guards.fingerprint or (scored and answer.guard_score is None):
            return False
        limit = policy.input_threshold if policy.input_threshold is not None else self._guards.classifier.threshold
        if policy.input_action == "route" and answer.guard_score is not None and answer.guard_score >= limit:
            return False
        body, record = json.loads(ctx.job.body), ctx.guard
        messages, _ = self._texts(ctx, body)
        record.fingerprint, record.score = self._guards.fingerprint, answer.guard_score if scored else None
        if policy.audit_texts:  # nothing to redact: these detectors found no PII in these texts
            record.prompt_text = _audit_text(messages, ctx.job.query, lambda text: text)
        self._act(ctx, policy.input_action, policy.input_threshold, policy.input_route_tier)
        return True

    def _texts(self, ctx: RequestContext, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        """The request's messages (chat) and the texts screened (user and tool turns, or the prompt); its system
        prompts go to the record (the output guard looks for them in the answer)."""
        if ctx.job.endpoint != "chat":
            prompt = body.get("prompt")
            return [], [p for p in (prompt if isinstance(prompt, list) else [prompt]) if isinstance(p, str)]
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        ctx.guard.system_prompts = [_text_of(m.get("content")) for m in messages if m.get("role") == "system"]
        return messages, [_text_of(m.get("content")) for m in messages if m.get("role") in _SCREENED_ROLES]

    async def run(self, ctx: RequestContext) -> None:
        job, record = ctx.job, ctx.guard
        policy = self._guards.config.policy(job.tenant)
        body = json.loads(job.body)
        messages, screened = self._texts(ctx, body)
        record.fingerprint = self._guards.fingerprint
        scored = policy.input_action != "off" and bool(screened)
        vectors = await self._vectors(ctx, screened) if scored else None
        with ctx.stage("guard_input"):
            if scored:
                record.score = max(self._guards.classifier.score(screened, vectors))
            pii = {text: self._guards.pii_in(text) for text in {*screened, *record.system_prompts}}
        kinds = sorted({f.kind for found in pii.values() for f in found})
        record.input_pii = kinds
        ctx.trace.set(guard_score=record.score, guard_pii=",".join(kinds) or None)

        def redactor(text: str) -> str:
            found: list[Finding] = pii.get(text) or self._guards.pii_in(text)
            return redact(text, found)

        if kinds:
            ctx.metrics.guard_findings.labels("input", "pii").inc(len(kinds))
            # Nothing with PII goes to Redis; a replay of an answer made for someone else's data would be wrong too.
            changes: dict[str, Any] = {"cache_bypass": job.cache_bypass or "pii"}
            if policy.redact_prompt:
                if messages:
                    for m in messages:
                        m["content"] = _redacted_content(m.get("content"), redactor)
                elif isinstance(body.get("prompt"), str):
                    body["prompt"] = redactor(body["prompt"])
                changes |= {"body": json.dumps(body).encode(), "query": redactor(job.query)}
            ctx.job = dataclasses.replace(job, **changes)
        if policy.audit_texts:
            record.prompt_text = _audit_text(messages, job.query, redactor)
        self._act(ctx, policy.input_action, policy.input_threshold, policy.input_route_tier)

    async def _vectors(self, ctx: RequestContext, texts: list[str]) -> list[Any] | None:
        """The texts' embeddings when the classifier uses them: computed once, and kept for the cache and the
        router (the last user turn is the cache's query)."""
        embed = self._guards.embed
        if not self._guards.classifier.embedding_dim or embed is None:
            return None
        missing = [t for t in dict.fromkeys(texts) if t not in ctx.embedded]
        if missing:
            with ctx.stage("embed"):
                vectors = await asyncio.gather(*(embed(t) for t in missing))
            ctx.embedded.update(zip(missing, vectors, strict=True))
        return [ctx.embedded[t] for t in texts]

    def _act(self, ctx: RequestContext, action: str, threshold: float | None, route_tier: str | None) -> None:
        record = ctx.guard
        if action == "off" or record.score is None:
            record.verdict = "off" if action == "off" else "pass"
            ctx.headers["x-tierserve-guard"] = record.verdict
            return
        limit = threshold if threshold is not None else self._guards.classifier.threshold
        flagged = record.score >= limit
        record.verdict = ("block" if action == "block" else action) if flagged else "pass"
        ctx.headers |= {"x-tierserve-guard": record.verdict, "x-tierserve-guard-score": f"{record.score:.4f}"}
        ctx.metrics.guard_verdicts.labels(record.verdict).inc()
        ctx.trace.set(guard=record.verdict)
        if record.verdict == "block":
            raise ContentPolicyViolation(
                f"The input guard blocked this request: a message scored {record.score:.2f} as prompt injection or "
                f"jailbreak (threshold {limit:.2f}).",
                param="messages" if ctx.job.endpoint == "chat" else "prompt",
            )
        if record.verdict == "route":
            record.route_tier = route_tier
            ctx.job = dataclasses.replace(ctx.job, cache_bypass=ctx.job.cache_bypass or "guard")
