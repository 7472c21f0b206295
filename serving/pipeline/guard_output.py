"""The output guard: secrets, PII and the request's system prompt (its canary, long verbatim runs) in an answer.

Per tenant: `flag` records what was found (the answer leaves untouched, streams are not held back); `redact`
replaces each finding by `[REDACTED:KIND]`; `block` ends the answer just before the first finding with
finish_reason `content_filter`. A redacting or blocking stream is released `holdback_chars` behind the model, one
window per choice, so nothing of a finding leaves before it is whole. An answer with findings is never cached,
and requests waiting on the same generation (single-flight) make their own."""

from __future__ import annotations

import json
from typing import Any, Literal

from cache import CachedAnswer
from guards import Guards, Scan, TextScreen, redact, screen_whole
from serving.pipeline.context import RequestContext

_CONTENT_FILTER = "content_filter"


def _content_slot(choice: dict[str, Any], endpoint: str) -> tuple[dict[str, Any], str]:
    """Where a choice's text is: (the dict holding it, its key)."""
    if endpoint == "chat":
        return choice.setdefault("delta", {}) if "message" not in choice else choice["message"], "content"
    return choice, "text"


class ChunkScreen:
    """A stream's chunks (vLLM's JSON) with each choice's text passed through its own TextScreen."""

    def __init__(self, scan: Scan, action: Literal["redact", "block"], window: int, endpoint: str) -> None:
        self._scan, self._action, self._window, self._endpoint = scan, action, window, endpoint
        self._screens: dict[int, TextScreen] = {}

    def chunk(self, data: str) -> str:
        parsed = json.loads(data)
        choices = parsed.get("choices") or []
        if not choices:
            return data
        for choice in choices:
            screen = self._screens.get(choice.get("index", 0))
            if screen is None:
                screen = self._screens[choice.get("index", 0)] = TextScreen(self._scan, self._action, self._window)
            holder, key = _content_slot(choice, self._endpoint)
            piece = holder.get(key)
            out = screen.feed(piece) if isinstance(piece, str) else None
            if choice.get("finish_reason") is not None:
                out = (out or "") + screen.finish()
                if screen.blocked:
                    choice["finish_reason"] = _CONTENT_FILTER
            if out is not None:
                holder[key] = out
        return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)

    @property
    def kinds(self) -> list[tuple[str, str]]:
        return sorted({(f.kind, f.category) for s in self._screens.values() for f in s.findings})


class OutputGuard:
    name = "guard_output"

    def __init__(self, guards: Guards) -> None:
        self._guards = guards

    def _policy(self, ctx: RequestContext) -> str:
        return self._guards.config.policy(ctx.job.tenant).output_action

    def _scan(self, ctx: RequestContext) -> Scan:
        return self._guards.output_scan(ctx.guard.system_prompts)

    def stream_screen(self, ctx: RequestContext) -> ChunkScreen | None:
        """A screen for a stream that must be held back (redact, block); None when chunks pass as they come."""
        action = self._policy(ctx)
        if action not in ("redact", "block"):
            return None
        ctx.guard.output_action = action
        window = self._guards.config.output.holdback_chars
        return ChunkScreen(self._scan(ctx), action, window, ctx.job.endpoint)  # type: ignore[arg-type]

    def whole(self, ctx: RequestContext, body: str) -> str:
        """A whole answer's JSON, redacted or cut short where the policy says."""
        action = self._policy(ctx)
        if action not in ("redact", "block"):
            return body
        ctx.guard.output_action = action
        parsed = json.loads(body)
        scan, changed = self._scan(ctx), False
        for choice in parsed.get("choices") or []:
            holder, key = _content_slot(choice, ctx.job.endpoint)
            text = holder.get(key)
            if not isinstance(text, str) or not text:
                continue
            with ctx.stage("guard_output"):
                out, findings, cut = screen_whole(scan, text, action)  # type: ignore[arg-type]
            if findings:
                self._found(ctx, [(f.kind, f.category) for f in findings])
                holder[key], changed = out, True
                if cut:
                    choice["finish_reason"] = _CONTENT_FILTER
        return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False) if changed else body

    def streamed(self, ctx: RequestContext, screen: ChunkScreen | None) -> None:
        if screen is not None and screen.kinds:
            self._found(ctx, screen.kinds)

    async def on_answer(self, ctx: RequestContext, answer: CachedAnswer) -> None:
        """A flagging policy scans the complete answer (streams were not held back); every policy keeps the
        redacted answer for an audit record that carries texts."""
        policy = self._guards.config.policy(ctx.job.tenant)
        if policy.output_action == "off" or (policy.output_action != "flag" and not policy.audit_texts):
            return
        with ctx.stage("guard_output"):
            findings = self._scan(ctx)(answer.text)
        if policy.output_action == "flag":
            ctx.guard.output_action = "flag"
            self._found(ctx, [(f.kind, f.category) for f in findings])
        if policy.audit_texts:
            ctx.guard.answer_text = redact(answer.text, findings)

    def _found(self, ctx: RequestContext, kinds: list[tuple[str, str]]) -> None:
        new = sorted({kind for kind, _ in kinds} - set(ctx.guard.output))
        ctx.guard.output += new
        for category in sorted({category for _, category in kinds}):
            ctx.metrics.guard_findings.labels("output", category).inc()
        if new:
            ctx.headers["x-tierserve-output-guard"] = ",".join(ctx.guard.output)
            ctx.trace.set(output_guard=",".join(ctx.guard.output))
