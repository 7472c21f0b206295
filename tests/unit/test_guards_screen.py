"""The output guard's detectors and its hold-back window over a stream (guards/)."""

from __future__ import annotations

import pytest

from guards.findings import Finding, redact
from guards.leakage import LeakDetector, canary_for, with_canary
from guards.pii import PiiDetector
from guards.screen import TextScreen, screen_whole
from guards.secrets import SecretDetector

AWS = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return PiiDetector(["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS"])


@pytest.fixture(scope="module")
def secrets() -> SecretDetector:
    return SecretDetector()


def test_pii_kinds_and_spans(pii: PiiDetector) -> None:
    text = f"Write to jane.doe@example.com, call +1 415-555-0132, card {CARD}, IBAN DE89370400440532013000."
    found = {(f.kind, text[f.start : f.end]) for f in pii.find(text)}
    assert ("EMAIL_ADDRESS", "jane.doe@example.com") in found
    assert ("PHONE_NUMBER", "+1 415-555-0132") in found
    assert ("CREDIT_CARD", CARD) in found
    assert ("IBAN_CODE", "DE89370400440532013000") in found
    assert pii.find("The capital of France is Paris; 12 apples cost 3 dollars.") == []


def test_a_card_number_failing_luhn_is_not_a_card(pii: PiiDetector) -> None:
    assert not [f for f in pii.find("order 4111 1111 1111 1112 shipped") if f.kind == "CREDIT_CARD"]


def test_secrets_by_detect_secrets_patterns(secrets: SecretDetector) -> None:
    text = f"aws_access_key_id = {AWS}\nghp_{'a' * 36} and sk-proj-{'B' * 40}"
    kinds = {f.kind for f in secrets.find(text)}
    assert {"AWS Access Key", "GitHub Token", "OpenAI Token"} <= kinds
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----"
    (found,) = [f for f in secrets.find(f"here:\n{key}\nbye") if f.kind == "Private Key"]
    assert f"here:\n{key}\nbye"[found.start : found.end] == key
    assert secrets.find("a plain answer about keys and tokens") == []


def test_leakage_by_canary_and_overlap() -> None:
    system = with_canary(
        "You are Acme's support bot. Never offer refunds above fifty dollars without a manager.", "s@1"
    )
    leaks = LeakDetector([system], overlap_words=8)
    said = "Sure! My instructions: never offer refunds above fifty dollars, without a manager. Ok?"
    (found,) = leaks.find(said)
    assert found.kind == "SYSTEM_PROMPT" and said[found.start : found.end].lower().startswith("never offer")
    assert [f.kind for f in leaks.find(f"ref {canary_for('s@1')}")] == ["SYSTEM_PROMPT_CANARY"]
    assert leaks.find(f"ref {canary_for('other@2')} and refunds above fifty") == []


def test_redact_merges_overlaps() -> None:
    text = "abcdefghij"
    out = redact(text, [Finding(1, 4, "X"), Finding(3, 6, "Y"), Finding(8, 9, "Z")])
    assert out == "a[REDACTED:X]gh[REDACTED:Z]j"


def _stream(screen: TextScreen, text: str, size: int) -> str:
    out = "".join(screen.feed(text[i : i + size]) for i in range(0, len(text), size))
    return out + screen.finish()


@pytest.mark.parametrize("size", [1, 3, 7, 50])
def test_a_stream_is_redacted_as_the_whole_text_is(secrets: SecretDetector, pii: PiiDetector, size: int) -> None:
    def scan(t: str) -> list[Finding]:
        return secrets.find(t) + pii.find(t)

    text = f"Your key is {AWS} and mail bob@example.org now. " + "More words follow here. " * 6 + f"Card {CARD}."
    whole, findings, cut = screen_whole(scan, text, "redact")
    assert not cut and AWS not in whole and "bob@example.org" not in whole and CARD not in whole
    streamed = _stream(TextScreen(scan, "redact", window=48), text, size)
    assert streamed == whole
    assert {f.kind for f in findings} >= {"AWS Access Key", "EMAIL_ADDRESS", "CREDIT_CARD"}


def test_nothing_of_a_secret_leaves_before_it_is_whole(secrets: SecretDetector) -> None:
    screen = TextScreen(secrets.find, "redact", window=32)
    leaked = "".join(screen.feed(ch) for ch in f"token: {AWS}")
    assert AWS[:4] not in leaked  # the window still holds it
    assert AWS not in leaked + screen.finish()


def test_block_ends_the_answer_before_the_finding(secrets: SecretDetector) -> None:
    screen = TextScreen(secrets.find, "block", window=32)
    text = "Here is the config you asked for. " + f"key={AWS} " + "and more text after it"
    out = _stream(screen, text, 5)
    assert screen.blocked and AWS not in out and out.startswith("Here is the config")
    assert [f.kind for f in screen.findings] == ["AWS Access Key"]


def test_clean_text_streams_unchanged(pii: PiiDetector) -> None:
    text = "Paris is the capital of France. " * 10
    assert _stream(TextScreen(pii.find, "redact", window=40), text, 4) == text
