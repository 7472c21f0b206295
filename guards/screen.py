"""The output guard over one answer's text, whole or as it streams.

A stream is released in order but `window` characters behind what the model has written, so a secret or an e-mail
address split across chunks is seen whole before any of it leaves; a finding still growing at the edge of the
window holds the text back from its start. `redact` replaces each finding by a placeholder; `block` ends the
answer just before the first one (the caller then reports finish_reason content_filter)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from guards.findings import Finding, merged, redact

__all__ = ["Scan", "TextScreen", "screen_whole"]

Scan = Callable[[str], list[Finding]]


class TextScreen:
    def __init__(self, scan: Scan, action: Literal["redact", "block"], window: int) -> None:
        self._scan = scan
        self._action = action
        self._window = window
        self._text = ""
        self._released = 0  # offset in the model's text up to which output has been decided
        self._seen: dict[tuple[int, str], Finding] = {}
        self.blocked = False

    @property
    def findings(self) -> list[Finding]:
        return sorted(self._seen.values())

    def feed(self, piece: str) -> str:
        """The text that may leave now, after `piece` was written."""
        self._text += piece
        return self._release(len(self._text) - self._window)

    def finish(self) -> str:
        """The rest, once the model has finished this answer."""
        return self._release(len(self._text))

    def _release(self, limit: int) -> str:
        if self.blocked or limit <= self._released:
            return ""
        origin = max(0, self._released - self._window)  # earlier text was scanned with enough context already
        found = [
            Finding(f.start + origin, f.end + origin, f.kind, f.category, f.score)
            for f in self._scan(self._text[origin:])
        ]
        found = [f for f in merged(found) if f.end > self._released]
        for f in found:
            self._seen.setdefault((f.start, f.kind), f)
            if f.start < limit < f.end:
                limit = max(self._released, f.start)  # it reaches into the window, may still grow: hold it whole
        start = self._released
        if self._action == "block" and found:
            self.blocked = True
            cut = max(start, found[0].start)
            self._released = cut
            return self._text[start:cut]
        inside = [
            Finding(max(f.start, start) - start, f.end - start, f.kind, f.category, f.score)
            for f in found
            if f.start < limit and f.end <= limit
        ]
        # A finding held back at the edge is left for a later release; the text up to its start leaves now.
        self._released = limit
        return redact(self._text[start:limit], inside)


def screen_whole(scan: Scan, text: str, action: Literal["redact", "block"]) -> tuple[str, Sequence[Finding], bool]:
    """(the text as it may leave, the findings, whether it was cut short)."""
    screen = TextScreen(scan, action, window=0)
    out = screen.feed(text) + screen.finish()
    return out, screen.findings, screen.blocked
