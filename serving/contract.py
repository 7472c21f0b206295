"""The typed contract between the gateway and a tier: one request type and one union of events.

It crosses Ray (pickled), so it holds only plain immutable data. The OpenAI body travels as the JSON the
client sent: the tier parses it with vLLM's own request models, so every field vLLM's server accepts works
and none is dropped on the way. Events say what happened in the tier's terms; a client error keeps its 4xx
status across the hop, and only a dead or unreachable engine is `unavailable` (503).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

Endpoint = Literal["chat", "completion"]

# Why a tier refused or stopped: `client` = the request's fault (4xx, the same on any tier); `unavailable` = the
# engine is dead or unreachable (503, another tier may answer); `internal` = the engine failed this request (5xx).
FailureKind = Literal["client", "unavailable", "internal"]


@dataclass(frozen=True)
class TierRequest:
    endpoint: Endpoint
    body: bytes  # the OpenAI request body (JSON) as the gateway accepted it
    request_id: str
    cache_salt: str | None = None  # prefix-cache isolation: prompts share KV blocks only with the same salt
    trace_headers: Mapping[str, str] = field(default_factory=dict)  # W3C context of the gateway's span

    @cached_property
    def prompt(self) -> str:
        """The text the prompt-prefix replica router (`request_router: prefix_aware`) matches on: the tenant's
        prefix-cache salt (prompts of tenants that vLLM keeps apart must not count as shared), then the chat turns in
        order, or the completion prompt. Ray Serve LLM's router reads a `prompt` attribute of the call's argument
        (several times per request: parsed once) and divides by its length, so this is never empty. Only that
        router reads it; the default one never parses the body."""
        salt = f"{self.cache_salt}\n" if self.cache_salt else ""
        return salt + self._conversation()

    def _conversation(self) -> str:
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return "\0"
        if not isinstance(parsed, dict):
            return "\0"
        if self.endpoint == "completion":
            prompt = parsed.get("prompt")
            text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        else:
            messages = parsed.get("messages")
            turns = messages if isinstance(messages, list) else []
            text = "".join(_turn_text(turn) for turn in turns)
        return text or "\0"

    def __getstate__(self) -> dict[str, object]:
        # The parsed prompt stays with the gateway: the replica gets the body it parses itself.
        return {key: value for key, value in self.__dict__.items() if key != "prompt"}


def _turn_text(turn: object) -> str:
    if not isinstance(turn, dict):
        return ""
    content = turn.get("content")
    if not isinstance(content, str):  # content parts: their text, in order
        parts = content if isinstance(content, list) else []
        content = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
    return f"{turn.get('role', '')}: {content}\n"


@dataclass(frozen=True)
class TierStarted:
    """The engine accepted the request (it parsed, fits the context and is scheduled)."""

    replica: str


@dataclass(frozen=True)
class TierDelta:
    """One stream chunk as vLLM's server wrote it (`data`, JSON, forwarded verbatim) and the text it adds to the
    first choice's content (what the cache stores and the trace counts)."""

    data: str
    text: str = ""
    finishes: bool = False  # the first choice's finish_reason is in this chunk: the answer's closing chunks begin


@dataclass(frozen=True)
class TierFinished:
    """The end of a successful answer. `body` is the whole response JSON when the request did not stream;
    `text` is then the first choice's content."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    body: str | None = None
    text: str = ""


@dataclass(frozen=True)
class TierFailed:
    kind: FailureKind
    status: int
    message: str
    code: str | None = None
    param: str | None = None


TierEvent = TierStarted | TierDelta | TierFinished | TierFailed


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    replica: str
    generate_ms: float
