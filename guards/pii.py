"""PII detection with Microsoft Presidio's pattern recognizers (regexes backed by checksums and parsers: Luhn for
cards, libphonenumber for phones, IBAN check digits). No NLP model is loaded: spaCy's English models are not on
PyPI, and a model fetched at start-up would break the offline promise; names and addresses are therefore not
detected (docs/security.md says so)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guards.findings import Finding

__all__ = ["PiiDetector"]


def _recognizers(entities: Sequence[str]) -> list[Any]:
    # Imported here: presidio pulls in spaCy (seconds), which only a process that guards should pay for.
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UkNinoRecognizer,
        UsItinRecognizer,
        UsSsnRecognizer,
    )

    # tldextract's module-level extractor downloads the public suffix list on first use; this one reads the
    # snapshot it ships, so an e-mail check never reaches for the network.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    known = {
        "EMAIL_ADDRESS": OfflineEmailRecognizer,
        "PHONE_NUMBER": PhoneRecognizer,
        "CREDIT_CARD": CreditCardRecognizer,
        "US_SSN": UsSsnRecognizer,
        "US_ITIN": UsItinRecognizer,
        "UK_NINO": UkNinoRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "IP_ADDRESS": IpRecognizer,
    }
    unknown = sorted(set(entities) - set(known))
    if unknown:
        raise ValueError(f"guards.pii.entities: no pattern recognizer for {unknown}; known: {sorted(known)}")
    return [known[name]() for name in entities]


class PiiDetector:
    """Finds PII spans in a text."""

    def __init__(self, entities: Sequence[str], min_score: float = 0.4) -> None:
        self._recognizers = _recognizers(entities)
        self._min_score = min_score

    def find(self, text: str) -> list[Finding]:
        if not text:
            return []
        found: list[Finding] = []
        for recognizer in self._recognizers:
            for result in recognizer.analyze(text, recognizer.supported_entities, None):
                if result.score >= self._min_score:
                    found.append(Finding(result.start, result.end, result.entity_type, "pii", float(result.score)))
        return found
