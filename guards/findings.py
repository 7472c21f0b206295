"""What a detector reports: a kind and where in the text it is; and how a text is redacted from such spans."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    start: int
    end: int
    kind: str  # EMAIL_ADDRESS, "AWS Access Key", SYSTEM_PROMPT, ...
    category: str = "pii"  # pii | secret | leak
    score: float = 1.0


def merged(findings: Iterable[Finding]) -> list[Finding]:
    """Overlapping spans become one (the earlier-starting one's kind): a text is redacted once, left to right."""
    out: list[Finding] = []
    for f in sorted(findings):
        if out and f.start < out[-1].end:
            last = out[-1]
            out[-1] = Finding(last.start, max(last.end, f.end), last.kind, last.category, max(last.score, f.score))
        else:
            out.append(f)
    return out


def placeholder(finding: Finding) -> str:
    return f"[REDACTED:{finding.kind.upper().replace(' ', '_')}]"


def redact(text: str, findings: Sequence[Finding]) -> str:
    """`text` with every finding's span replaced by its placeholder."""
    parts: list[str] = []
    at = 0
    for f in merged(findings):
        parts += [text[at : f.start], placeholder(f)]
        at = f.end
    parts.append(text[at:])
    return "".join(parts)
