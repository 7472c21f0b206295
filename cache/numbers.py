"""Numbers, the units written after them, clock times and years: the facts the verifier reads from digits and
number words ("48,213" == "48213", "twenty-five" == 25, "10k" == 10,000, "3pm" == "15:00")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from cache import lexicon as lx


def extract_numbers(low: str) -> tuple[frozenset[str], frozenset[str], set[int], set[str], set[str]]:
    """Numbers (digits and number words), units written after them, word positions they occupy, times, years."""
    spaced = re.sub(r"(?<=[a-z0-9])-(?=[a-z0-9])", " ", low)
    tokens = lx.NUMERIC_TOKEN.findall(spaced)
    numbers: set[str] = set()
    units: set[str] = set()
    times: set[str] = set()
    years: set[str] = set()
    # Word positions (in the hyphen-joined word list) are approximated by counting alphabetic tokens,
    # which is all units_bare needs: it must not count a unit already attached to a number.
    unit_words: set[str] = set()
    i = 0
    pending_currency: str | None = None
    while i < len(tokens):
        token = tokens[i]
        if token in lx.CURRENCY_SYMBOLS:
            pending_currency = lx.CURRENCY_SYMBOLS[token]
            i += 1
            continue
        value: Decimal | None = None
        text_value: str | None = None
        scaled = False
        if token[0].isdigit():
            if ":" in token:
                hour, _, minute = token.partition(":")
                if hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60:
                    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                    times.add(clock(int(hour), int(minute), nxt))
                    i += 2 if nxt in ("am", "pm") else 1
                    pending_currency = None
                    continue
                token = token.replace(":", ".")
            try:
                text_value = _digits_value(token)
            except ValueError:
                text_value = token
            if text_value.count(".") <= 1:
                try:
                    value = Decimal(text_value)
                except InvalidOperation:
                    value = None
            i += 1
            if i < len(tokens) and tokens[i] in ("st", "nd", "rd", "th"):
                i += 1
        elif token in lx.NUMBER_UNITS or token in lx.NUMBER_TENS or token in lx.NUMBER_SCALES:
            parsed, consumed = _parse_number_words(tokens, i)
            if consumed == 0:
                i += 1
                pending_currency = None
                continue
            if parsed == 1 and consumed == 1 and token == "one":
                before = tokens[i - 1] if i > 0 else ""
                after = tokens[i + 1] if i + 1 < len(tokens) else ""
                if (
                    before in lx.ONE_NOT_A_COUNT_BEFORE
                    or after in lx.ONE_NOT_A_COUNT_AFTER
                    or "at a time" in " ".join(tokens[i + 1 : i + 6])  # "one line at a time"
                ):
                    i += 1
                    continue
            value = Decimal(parsed)
            i += consumed
        else:
            i += 1
            pending_currency = None
            continue
        # A multiplier written after the number: 10k, 1.5 million, 3 thousand.
        nxt = tokens[i] if i < len(tokens) else ""
        if value is not None and nxt in ("k", "thousand", "million", "billion", "bn"):
            value *= {"k": 1_000, "thousand": 1_000, "million": 1_000_000, "billion": 10**9, "bn": 10**9}[nxt]
            scaled = True
            i += 1
            nxt = tokens[i] if i < len(tokens) else ""
        if value is not None and nxt in ("am", "pm") and value == value.to_integral_value() and 1 <= value <= 12:
            times.add(clock(int(value), 0, nxt))
            i += 1
            pending_currency = None
            continue
        # Digits keep their written decimals ("3.10" is not "3.1"); spelled or scaled numbers are computed.
        number = text_value if text_value is not None and not scaled else _number_text(value or Decimal(0))
        numbers.add(number)
        if (
            value is not None
            and value == value.to_integral_value()
            and 1900 <= value <= 2099
            and "." not in (text_value or "")
        ):
            years.add(number)
        if pending_currency is not None:
            units.add(pending_currency)
            pending_currency = None
        if nxt == "°":
            i += 1
            nxt = tokens[i] if i < len(tokens) else ""
            units.add({"c": "celsius", "f": "fahrenheit"}.get(nxt, "deg"))
            if nxt in ("c", "f"):
                i += 1
            continue
        if nxt in lx.CURRENCY_SYMBOLS:
            units.add(lx.CURRENCY_SYMBOLS[nxt])
            i += 1
        elif nxt in lx.UNITS_AFTER_NUMBER and lx.UNITS_AFTER_NUMBER[nxt] not in ("thousand", "billion", "times"):
            unit = lx.UNITS_AFTER_NUMBER[nxt]
            i += 1
            if unit == "deg" and i < len(tokens) and tokens[i] in ("celsius", "fahrenheit", "c", "f", "kelvin"):
                unit = {"c": "celsius", "f": "fahrenheit"}.get(tokens[i], tokens[i])
                unit_words.add(tokens[i])
                i += 1
            units.add(unit)
            unit_words.add(nxt)
    positions: set[int] = set()
    # units_bare skips words that were consumed as a unit after a number (identified by their text).
    words = lx.WORD.findall(re.sub(r"(?<=[a-z])-(?=[a-z])", "", low).replace("'", " "))
    remaining = set(unit_words)
    for index, word in enumerate(words):
        if word in remaining:
            positions.add(index)
    return frozenset(numbers), frozenset(units), positions, times, years


def _number_text(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _digits_value(token: str) -> str:
    """Canonical text of a digit token: thousands separators dropped, leading zeros dropped, decimals kept.

    Decimal trailing zeros are kept on purpose: "Python 3.10" and "Python 3.1" are different versions.
    """
    if lx.THOUSANDS.match(token):
        token = token.replace(",", "")
    if token.count(".") == 1:
        whole, fraction = token.split(".")
        return f"{int(whole)}.{fraction}"
    if "." in token:
        return ".".join(str(int(part)) for part in token.split("."))  # a version: 1.2.3
    return str(int(token))


# ------------------------------------------------------------------------------------------------ facts


def clock(hour: int, minute: int, meridiem: str) -> str:
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    return f"{hour:02d}:{minute:02d}"


def is_number(word: str) -> bool:
    return bool(word) and (word[0].isdigit() or word in lx.NUMBER_UNITS or word in lx.NUMBER_TENS)


def _parse_number_words(tokens: Sequence[str], start: int) -> tuple[int, int]:
    """Value and token count of a spelled-out number at `start` ("twenty five", "two hundred and ten")."""
    total = 0
    current = 0
    consumed = 0
    seen = False
    i = start
    while i < len(tokens):
        token = tokens[i]
        if token == "dozen":
            current = max(current, 1) * 12
        elif token in lx.NUMBER_UNITS:
            current += lx.NUMBER_UNITS[token]
        elif token in lx.NUMBER_TENS:
            current += lx.NUMBER_TENS[token]
        elif token in lx.NUMBER_SCALES:
            scale = lx.NUMBER_SCALES[token]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
        elif (
            token == "and"
            and seen
            and i + 1 < len(tokens)
            and (tokens[i + 1] in lx.NUMBER_UNITS or tokens[i + 1] in lx.NUMBER_TENS)
        ):
            i += 1
            continue
        else:
            break
        seen = True
        i += 1
        consumed = i - start
    return total + current, consumed
