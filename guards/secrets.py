"""Credentials in a text, by detect-secrets' own patterns (every regex-based plugin it ships: AWS, Azure, GitHub,
GitLab, JWT, OpenAI, private keys, Slack, Stripe, ...) plus the key formats it predates (OpenAI project keys) and
tierserve's own API keys. Its entropy plugins are left out: on prose and code answers they flag every hash and
UUID, and their line-oriented checks give no span to redact."""

from __future__ import annotations

import re
from typing import Any

from guards.findings import Finding

__all__ = ["SecretDetector"]

# Public IPs are PII here (the PII detector finds them, private and public alike), not secrets.
_SKIPPED_PLUGINS = {"IPPublicDetector"}
_EXTRA = {
    "OpenAI Token": re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"),
    "tierserve API Key": re.compile(r"\btsk-[0-9a-f]{12}-[A-Za-z0-9_-]{43}"),
}
# A private key's header is what detect-secrets matches; the whole block up to its END line is the secret.
_KEY_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY( BLOCK)?-----")


def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[tuple[str, re.Pattern[str]]] = []
    plugin_class: Any
    for kind, plugin_class in get_mapping_from_secret_type_to_class().items():
        if not issubclass(plugin_class, RegexBasedDetector) or plugin_class.__name__ in _SKIPPED_PLUGINS:
            continue
        plugin: Any = plugin_class()
        patterns += [(kind, pattern) for pattern in plugin.denylist]
    return patterns + list(_EXTRA.items())


class SecretDetector:
    def __init__(self) -> None:
        self._patterns = _patterns()

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for kind, pattern in self._patterns:
            for match in pattern.finditer(text):
                # Patterns with a group (key=value forms) name the secret by it; the key name stays readable.
                start, end = match.span(match.lastindex) if match.lastindex else match.span()
                if kind == "Private Key":
                    line_start = text.rfind("\n", 0, start) + 1
                    tail = _KEY_END.search(text, end)
                    start, end = line_start, tail.end() if tail else len(text)
                if end > start:
                    found.append(Finding(start, end, kind, "secret"))
        return found
