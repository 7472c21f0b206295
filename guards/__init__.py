"""Input and output guards: a prompt-injection classifier, PII (Presidio's recognizers), secrets (detect-secrets'
patterns) and system-prompt leakage. Knows nothing of Ray or HTTP; the gateway's guard stages use it."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from guards.config import GuardPolicy, GuardsConfig, ResolvedPolicy
from guards.findings import Finding, merged, redact
from guards.injection import Classifier, InjectionClassifier, load_classifier
from guards.leakage import LeakDetector, canary_for, with_canary
from guards.pii import PiiDetector
from guards.screen import Scan, TextScreen, screen_whole
from guards.secrets import SecretDetector

__all__ = [
    "Classifier",
    "Embed",
    "Finding",
    "GuardPolicy",
    "Guards",
    "GuardsConfig",
    "InjectionClassifier",
    "LeakDetector",
    "ResolvedPolicy",
    "Scan",
    "TextScreen",
    "canary_for",
    "load_classifier",
    "merged",
    "redact",
    "screen_whole",
    "with_canary",
]


Embed = Callable[[str], Awaitable[Any]]
_SCREENING = 1  # the input screening's own logic (which texts, how scored): bump it when that changes


class Guards:
    """The detectors of one gateway replica, built once from config (Presidio and the weights load here)."""

    def __init__(self, config: GuardsConfig, classifier: Classifier | None = None, embed: Embed | None = None) -> None:
        self.config = config
        self.classifier: Classifier = classifier or load_classifier(config.injection.weights)
        # The sentence embedding the classifier reads (the gateway passes its cache's batched embedder).
        self.embed = embed
        self.pii = PiiDetector(config.pii.entities, config.pii.min_score) if config.pii.enabled else None
        self.secrets = SecretDetector() if config.output.secrets else None
        # What the input screening of a text depends on besides the text: the classifier's weights and the PII
        # settings. A request screened under the same fingerprint gets the same verdict (cached answers carry it).
        weights = getattr(self.classifier, "fingerprint", None) or uuid.uuid4().hex  # unknown: never the same
        screening = json.dumps([_SCREENING, weights, config.pii.model_dump(mode="json")], sort_keys=True)
        self.fingerprint = hashlib.sha256(screening.encode()).hexdigest()[:16]

    def pii_in(self, text: str) -> list[Finding]:
        return self.pii.find(text) if self.pii is not None else []

    def output_scan(self, system_prompts: Sequence[str]) -> Scan:
        """What the output guard looks for in one request's answer."""
        out = self.config.output
        leaks = LeakDetector(system_prompts, out.overlap_words) if out.leakage else None
        pii = self.pii if out.pii else None

        def scan(text: str) -> list[Finding]:
            found = self.secrets.find(text) if self.secrets is not None else []
            if pii is not None:
                found += pii.find(text)
            if leaks is not None and leaks.active:
                found += leaks.find(text)
            return found

        return scan
