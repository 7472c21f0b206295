"""Streaming users for the tests that change a running stack under load (scaling, node loss): each user sends
uncached streamed requests until stopped, and every outcome is kept with whether any answer text had arrived
before it failed (a request that had not started may be retried; one cut mid-stream cannot be)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import httpx

from loadtest.sse import has_content, sse_chunks


@dataclass(frozen=True)
class Outcome:
    status: int | None
    failed: bool
    started: bool  # answer text had arrived before the end (a failure after it is a cut stream)
    replica: str
    tail: str


class StreamingLoad:
    """`users` threads streaming to `model` at `url` with `key` until the `with` block ends."""

    def __init__(self, url: str, key: str, model: str = "small", users: int = 2, max_tokens: int = 16) -> None:
        self.outcomes: list[Outcome] = []
        self._url, self._key, self._model, self._max_tokens = url, key, model, max_tokens
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user) for _ in range(users)]

    def __enter__(self) -> StreamingLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=300)

    def _user(self) -> None:
        with httpx.Client(timeout=300, headers={"authorization": f"Bearer {self._key}"}) as client:
            while not self._stop.is_set():
                self.outcomes.append(self._one(client))

    def _one(self, client: httpx.Client) -> Outcome:
        body = {
            "model": self._model,
            "messages": [{"role": "user", "content": f"Write a line about rivers. {uuid.uuid4().hex[:8]}"}],
            "max_tokens": self._max_tokens,
            "temperature": 1.0,
            "stream": True,
        }
        lines: list[str] = []
        started = False
        try:
            with client.stream("POST", f"{self._url}/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    lines.append(line)
                    started = started or any(has_content(chunk) for chunk in sse_chunks([line]))
                text = "".join(lines)
                failed = response.status_code != 200 or '"error"' in text or "[DONE]" not in text
                replica = response.headers.get("x-tierserve-replica", "")
                return Outcome(response.status_code, failed, started, replica, text[-300:])
        except httpx.HTTPError as error:
            return Outcome(None, True, started, "", repr(error))
