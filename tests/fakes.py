"""Fakes for unit tests only: a tier that streams canned answers and a deterministic embedder.

`FakeTier` speaks the `serving.gateway.TierClient` protocol with the typed tier contract that
`serving.deployments.ModelServer.generate` yields; `HashingEmbedder` is a `cache.embedder.Embedder`
that needs no model: a bag of hashed lowercase words, so identical texts have similarity 1 and texts
without shared words have similarity near 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from serving.contract import ProbeResult, TierDelta, TierEvent, TierFailed, TierFinished, TierRequest, TierStarted
from serving.formatting import ResponseFormatter

__all__ = ["FakeTier", "FakeTierDown", "HashingEmbedder"]

_WORD = re.compile(r"\w+")


class FakeTierDown(RuntimeError):
    """What a FakeTier raises when told to fail, like a replica that is gone."""


def _payload(chunk: str) -> str:
    return chunk.removeprefix("data: ").strip()


class FakeTier:
    """A tier answering every request with the same pieces of text, in the tier contract's events and in the
    shapes vLLM's server writes (a role chunk, one chunk per piece, a finishing chunk, a usage chunk on request;
    or one whole response when the request does not stream).

    - `pieces`: the deltas of the answer (one completion token each); `finish_reason`: "stop" or "length".
    - `fail="start"` raises before any event, `fail="opening"` after the start event and the role chunk (before any
      text), `fail="midway"` after the first delta; `fail_first=k` raises before any event on the first k calls
      only (a replica that died and was replaced).
    - `error`: yield this failure (e.g. context_length_exceeded) right after being called, or, with
      `error_after=k`, after the start event and k deltas (an engine failing mid-answer).
    - `hold_after`: after that many deltas, set `holding` and wait until `release()` (a slow model).
    - `probe_ok` / `probe_raises`: what `probe()` reports.
    Counters: `calls` (generate calls), `requests` (what the gateway sent; `payloads` the same as dicts),
    `finished` (streams that reached their end event), `closed` (streams closed or cancelled before their end).
    """

    def __init__(
        self,
        pieces: Sequence[str] = ("Hello", " from", " fake."),
        *,
        prompt_tokens: int = 7,
        finish_reason: str = "stop",
        replica: str = "fake-1",
        fail: str | None = None,
        fail_first: int = 0,
        error: TierFailed | None = None,
        error_after: int | None = None,
        hold_after: int | None = None,
        probe_ok: bool = True,
        probe_raises: bool = False,
    ) -> None:
        if fail not in (None, "start", "opening", "midway"):
            raise ValueError(f"unknown failure mode {fail!r}")
        self.pieces = list(pieces)
        self.prompt_tokens = prompt_tokens
        self.finish_reason = finish_reason
        self.replica = replica
        self.fail = fail
        self.fail_first = fail_first
        self.error = error
        self.error_after = error_after
        self.hold_after = hold_after
        self.probe_ok = probe_ok
        self.probe_raises = probe_raises
        self.calls = 0
        self.probes = 0
        self.requests: list[TierRequest] = []
        self.finished = 0
        self.closed = 0
        self._gate = asyncio.Event()
        self.holding = asyncio.Event()

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """Each request's body, with the contract's other fields beside it (those that were set)."""
        out = []
        for request in self.requests:
            payload = {**json.loads(request.body), "request_id": request.request_id}
            if request.cache_salt is not None:
                payload["cache_salt"] = request.cache_salt
            if request.trace_headers:
                payload["trace_headers"] = dict(request.trace_headers)
            out.append(payload)
        return out

    def release(self) -> None:
        self._gate.set()

    def rearm(self) -> None:
        """Hold the next generations again (after a release)."""
        self._gate.clear()
        self.holding.clear()

    @staticmethod
    def context_length_error(
        message: str = "This model's maximum context length is 2048 tokens.",
    ) -> TierFailed:
        return TierFailed(kind="client", status=400, code="context_length_exceeded", message=message)

    async def generate(self, request: TierRequest) -> AsyncIterator[TierEvent]:
        self.calls += 1
        self.requests.append(request)
        body = json.loads(request.body)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        formatter = ResponseFormatter(request.endpoint, request.request_id, self.replica.split("-")[0])
        done = False
        try:
            if self.fail == "start" or self.calls <= self.fail_first:
                raise FakeTierDown("replica is gone")
            if self.error is not None and self.error_after is None:
                yield self.error
                done = True
                return
            yield TierStarted(replica=self.replica)
            if stream:
                for chunk in formatter.opening():
                    yield TierDelta(data=_payload(chunk))
            if self.fail == "opening":
                raise FakeTierDown("replica died before its first token")
            for count, piece in enumerate(self.pieces, start=1):
                if self.error is not None and count > (self.error_after or 0):
                    yield self.error
                    done = True
                    return
                if self.hold_after is not None and count > self.hold_after:
                    self.holding.set()
                    await self._gate.wait()
                if stream:
                    yield TierDelta(data=_payload(formatter.content(piece)), text=piece)
                if self.fail == "midway":
                    raise FakeTierDown("replica died while generating")
            completion_tokens = len(self.pieces)
            if stream:
                closing = formatter.closing(self.finish_reason, self.prompt_tokens, completion_tokens, include_usage)
                for number, chunk in enumerate(closing[:-1]):  # the last is [DONE], which the gateway writes
                    yield TierDelta(data=_payload(chunk), finishes=number == 0)
                yield TierFinished(self.finish_reason, self.prompt_tokens, completion_tokens)
            else:
                whole = formatter.full(self.text, self.finish_reason, self.prompt_tokens, completion_tokens)
                yield TierFinished(
                    self.finish_reason, self.prompt_tokens, completion_tokens, body=json.dumps(whole), text=self.text
                )
            done = True
            self.finished += 1
        finally:
            if not done:
                self.closed += 1

    async def probe(self) -> ProbeResult:
        self.probes += 1
        if self.probe_raises:
            raise FakeTierDown("probe failed: replica is gone")
        return ProbeResult(ok=self.probe_ok, replica=self.replica, generate_ms=1.0)


class HashingEmbedder:
    """Deterministic bag-of-words embedder: each lowercase word adds +-1 to one of `dimension` slots."""

    def __init__(self, dimension: int = 384) -> None:
        self._dimension = dimension
        self.calls = 0

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return 16

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(text)) + 2 for text in texts]  # words plus the two special tokens

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        rows = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                rows[row, value % self._dimension] += 1.0 if (value >> 32) & 1 else -1.0
            norm = float(np.linalg.norm(rows[row]))
            if norm == 0.0:
                rows[row, 0] = 1.0  # empty text: still a unit vector
            else:
                rows[row] /= norm
        return rows
