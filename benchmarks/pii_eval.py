"""Recall and precision of the PII detector on a labelled set: presidio-evaluator's public sentence templates
(presidio-evaluator 0.3.2, MIT; its files are read, the package is never imported) filled with values whose spans
are known. Target kinds are the ones tierserve redacts (e-mail, phone, card, US SSN, IBAN, IP); names, addresses,
dates and the rest are filled too, as the text a detection must not fire on.

    python -m benchmarks.pii_eval [--sentences 2000] [--json-out docs/pii-eval.json]

Values: e-mails and phone numbers of FakeNameGenerator's people (the evaluator's own file, several countries),
card numbers with a valid Luhn digit over the major issuers' prefixes, IBANs with valid check digits, SSNs in
the issued ranges, IPv4 and IPv6 addresses."""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guards.data import package_dir
from guards.pii import PiiDetector

TARGETS = {
    "email": "EMAIL_ADDRESS",
    "phone_number": "PHONE_NUMBER",
    "credit_card_number": "CREDIT_CARD",
    "ssn": "US_SSN",
    "iban": "IBAN_CODE",
    "ip_address": "IP_ADDRESS",
}
_SLOT = re.compile(r"{{(\w+)}}")


@dataclass(frozen=True)
class Sentence:
    text: str
    spans: list[tuple[int, int, str]]  # the target PII in it


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return digits + str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    number = _luhn_complete(prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1)))
    if rng.random() < 0.5 and length == 16:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _iban(rng: random.Random) -> str:
    country, bban_length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    bban = "".join(rng.choice("0123456789") for _ in range(bban_length))
    if country in ("GB", "NL"):
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + bban[4:]
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))


def build_set(count: int, seed: int = 7) -> list[Sentence]:
    raw = package_dir("presidio_evaluator") / "data_generator" / "raw_data"
    templates = [t.strip() for t in (raw / "templates.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
    with (raw / "FakeNameGenerator.com_3000.csv").open(encoding="utf-8-sig", newline="") as handle:
        people = list(csv.DictReader(handle))
    rng = random.Random(seed)
    with_targets = [t for t in templates if any(slot in TARGETS for slot in _SLOT.findall(t))]
    fillers: dict[str, Callable[[dict[str, str]], str]] = {
        "email": lambda p: p["EmailAddress"],
        "phone_number": lambda p: f"+{p['TelephoneCountryCode']} {p['TelephoneNumber']}",
        "credit_card_number": lambda _: _card(rng),
        "ssn": lambda _: _ssn(rng),
        "iban": lambda _: _iban(rng),
        "ip_address": lambda _: _ip(rng),
        "person": lambda p: f"{p['GivenName']} {p['Surname']}",
        "name": lambda p: f"{p['GivenName']} {p['Surname']}",
        "address": lambda p: f"{p['StreetAddress']}, {p['City']} {p['ZipCode']}",
        "city": lambda p: p["City"],
        "country": lambda p: p["CountryFull"],
        "organization": lambda p: p["Company"],
        "zipcode": lambda p: p["ZipCode"],
        "postcode": lambda p: p["ZipCode"],
        "date_of_birth": lambda p: p["Birthday"],
        "age": lambda p: p["Age"],
        "job": lambda p: p["Occupation"],
        "url": lambda p: f"https://www.{p['Domain']}",
    }
    out: list[Sentence] = []
    for i in range(count):
        # Half the sentences carry a target; the rest test precision on names, addresses, dates and numbers.
        template = rng.choice(with_targets if i % 2 == 0 else templates)
        person = rng.choice(people)
        text, spans, at = "", [], 0
        for match in _SLOT.finditer(template):
            slot = match.group(1)
            fill = fillers.get(slot)
            value = fill(person) if fill is not None else person.get(slot.split("_")[0].title()) or person["Surname"]
            text += template[at : match.start()]
            if slot in TARGETS:
                spans.append((len(text), len(text) + len(value), TARGETS[slot]))
            text += value
            at = match.end()
        out.append(Sentence(text + template[at:], spans))
    return out


def evaluate(detector: PiiDetector, sentences: list[Sentence]) -> dict[str, Any]:
    per_kind: dict[str, dict[str, int]] = {}
    for sentence in sentences:
        found = {(f.start, f.end, f.kind) for f in detector.find(sentence.text)}
        truth = set(sentence.spans)
        for start, end, kind in truth:
            row = per_kind.setdefault(kind, {"tp": 0, "fn": 0, "fp": 0})
            # A hit covers the value (a detector may keep or drop a "+" or surrounding space).
            hit = any(fs <= start + 1 and fe >= end - 1 for fs, fe, _ in found)
            row["tp" if hit else "fn"] += 1
        for start, end, kind in found:
            if not any(ts <= start + 1 and te >= end - 1 for ts, te, _ in truth) and not any(
                start <= ts + 1 and end >= te - 1 for ts, te, _ in truth
            ):
                per_kind.setdefault(kind, {"tp": 0, "fn": 0, "fp": 0})["fp"] += 1
    report: dict[str, Any] = {}
    for kind, row in sorted(per_kind.items()):
        tp, fn, fp = row["tp"], row["fn"], row["fp"]
        recall = tp / (tp + fn) if tp + fn else None
        precision = tp / (tp + fp) if tp + fp else None
        report[kind] = {**row, "recall": _round(recall), "precision": _round(precision)}
    tp, fn, fp = (sum(r[k] for r in per_kind.values()) for k in ("tp", "fn", "fp"))
    overall = {"recall": _round(tp / (tp + fn)), "precision": _round(tp / (tp + fp))}
    report["all"] = {"tp": tp, "fn": fn, "fp": fp, **overall}
    return report


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    from guards.config import DEFAULT_PII_ENTITIES

    sentences = build_set(args.sentences)
    report = evaluate(PiiDetector(DEFAULT_PII_ENTITIES), sentences)
    text = json.dumps({"sentences": len(sentences), "by_kind": report}, indent=1)
    print(text)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
