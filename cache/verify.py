"""Look-alike verification: a cache candidate found by similarity must also agree on the facts that decide the answer.

Sentence embeddings place "How do I enable 2FA?" and "How do I disable 2FA?" almost on top of each other
(cosine ~0.9 with all-MiniLM-L6-v2), and "order 48213" next to "order 48231" even closer: the model
encodes what a question is *about*, not the small tokens that flip *which* answer is right. No single
similarity threshold separates such look-alikes from true paraphrases, so the cache gates every candidate
through this verifier after the threshold: both texts are reduced to their "critical facts" (numbers,
negation, polarity words, dates, names, units, scope words, comparatives, question type, direction) and the
candidate is reused only when those facts agree.

Design choices, and why:

- Pure Python and regular expressions, no model call: it runs on every lookup that passed the threshold, so
  it must stay far below the embedding's cost (measured ~0.3 ms per pair of new texts, ~35 µs once both
  texts' facts are cached, against ~11 ms for one embedding), and it must be explainable: every rejection
  names its reason, which ends up in logs and metrics.
- Asymmetric strictness per fact kind. A number, negation, date or "only" present on one side and absent on
  the other changes the question ("Where is my order?" vs "Where is order 48213?"), so those must match
  exactly. Polarity, comparative, unit, scope and name facts are compared only when *both* texts carry one of
  the same kind ("enable" vs "disable", "miles" vs "km", "all" vs "some", "Paris" vs "London"): a paraphrase
  often drops or adds such a word ("set up 2FA" vs "enable 2FA"), so one-sided presence is left to the
  similarity threshold.
- Rejecting is cheap (a miss costs one generation), serving a wrong answer is not: where unsure, the
  verifier prefers to reject. The measured cost on paraphrases is in docs/cache-verification.md.
- Names tolerate case ("docker" vs "Docker"), reordering and small typos in long words; a name is a
  mismatch only when each side has a name the other text lacks entirely (a substitution).

Known limits: it does not understand synonyms outside its word lists ("cancel" vs "pause" is left to the
threshold), swapped roles without a from/to or than-pattern, or sarcasm; it is English-only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Facts", "LookalikeVerifier", "VerifierConfig"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class VerifierConfig(BaseModel):
    """Which look-alike checks run on a cache candidate (all on by default)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True, description="Verify cache candidates at all; off means similarity alone decides a hit."
    )
    numbers: bool = Field(
        default=True,
        description="Numbers must match exactly (48,213 == 48213, two == 2, 10k == 10000; order ids, versions).",
    )
    negation: bool = Field(
        default=True, description="Both texts negated or neither (not, no, never, n't, without, unable ...)."
    )
    antonyms: bool = Field(
        default=True,
        description="No opposite polarity words (enable/disable, add/remove, upload/download, un-/dis- prefixes ...).",
    )
    comparatives: bool = Field(
        default=True, description="No opposite comparatives (more/less, higher/lower, better/worse, max/min ...)."
    )
    dates: bool = Field(
        default=True,
        description="Dates and times must match (months, weekdays, years, today/tomorrow, next week, 3pm ...).",
    )
    names: bool = Field(
        default=True, description="No substituted proper names (Paris vs London, AWS vs GCP); case-insensitive."
    )
    units: bool = Field(
        default=True, description="No different units (km/miles, celsius/fahrenheit, MB/GB, USD/EUR, hours/days ...)."
    )
    scope: bool = Field(
        default=True, description="Same quantifier scope (all/some/none/any/both/either/most/few) and 'only' parity."
    )
    question: bool = Field(
        default=True, description="Same question type where both state one (why vs when vs where vs who)."
    )
    direction: bool = Field(
        default=True, description="No swapped roles in 'from X to Y', 'convert X to Y' or 'X ... than Y'."
    )
    extra_names: list[str] = Field(
        default_factory=list,
        description="Extra entity names (products, plans, cities) recognised even when typed in lowercase.",
    )
    extra_antonyms: list[tuple[str, str]] = Field(
        default_factory=list, description="Extra pairs of opposite words, e.g. [['gold', 'silver']] for plan names."
    )


class _Rewriter:
    """Ordered regex rewrites, each skipped unless one of its trigger substrings occurs in the lowercased text.

    The verifier runs on every lookup that passed the threshold; a `str in str` test is ~50x cheaper than a
    failing regex scan, so most rules cost almost nothing on a typical question.
    """

    def __init__(self, rules: Sequence[tuple[str, str, str]]) -> None:
        self._rules = [
            (tuple(triggers.split("|")), re.compile(pattern), replacement) for triggers, pattern, replacement in rules
        ]

    def __call__(self, text: str) -> str:
        lowered = text.lower()
        for triggers, pattern, replacement in self._rules:
            for trigger in triggers:
                if trigger in lowered:
                    text = pattern.sub(replacement, text)
                    lowered = text.lower()
                    break
        return text


# ------------------------------------------------------------------------------------------------ word lists

_NUMBER_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
    "eleventh": 11, "twelfth": 12, "dozen": 12, "twice": 2, "thrice": 3,
}  # fmt: skip
_NUMBER_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_NUMBER_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
# "one" is a pronoun as often as a count: "which one", "this one", "one of", "no one".
_ONE_NOT_A_COUNT_BEFORE = _words(
    "which this that the each every any no some another a an other last right wrong same new little favorite "
    "favourite first second only quick"
)
_ONE_NOT_A_COUNT_AFTER = _words("of another by thing")

_NEGATIONS = _words("not no never without none nothing nobody nowhere neither nor cannot unable noone")

_MONTHS = {
    "january": "jan", "february": "feb", "march": "mar", "april": "apr", "june": "jun", "july": "jul",
    "august": "aug", "september": "sep", "october": "oct", "november": "nov", "december": "dec",
    "jan": "jan", "feb": "feb", "apr": "apr", "jun": "jun", "jul": "jul", "aug": "aug", "sep": "sep",
    "sept": "sep", "oct": "oct", "nov": "nov", "dec": "dec",
}  # fmt: skip
_MONTH_NUMBERS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun", "mon": "mon", "tue": "tue", "tues": "tue", "thu": "thu",
    "thur": "thu", "thurs": "thu", "fri": "fri", "weekend": "weekend", "weekday": "weekday", "weekdays": "weekday",
    "weekends": "weekend", "mondays": "mon", "tuesdays": "tue", "wednesdays": "wed", "thursdays": "thu",
    "fridays": "fri", "saturdays": "sat", "sundays": "sun",
}  # fmt: skip
_DAY_WORDS = {
    "today": "today", "tonight": "tonight", "tomorrow": "tomorrow", "yesterday": "yesterday",
    "morning": "morning", "mornings": "morning", "afternoon": "afternoon", "afternoons": "afternoon",
    "evening": "evening", "evenings": "evening", "night": "night", "nights": "night", "overnight": "night",
    "noon": "12:00", "midday": "12:00", "midnight": "00:00", "christmas": "christmas", "xmas": "christmas",
    "easter": "easter", "thanksgiving": "thanksgiving", "halloween": "halloween", "ramadan": "ramadan",
    "diwali": "diwali", "hanukkah": "hanukkah", "summer": "summer", "winter": "winter", "autumn": "autumn",
}  # fmt: skip
_AMBIGUOUS_SEASONS = {"spring": "spring", "fall": "autumn"}
_RELATIVE = _words("this next last previous past coming following")
_PERIODS = _words("week month year quarter weekend decade century")
_DATE_CONTEXT = _words("in on of since until till by from through during early late mid before after")

# Canonical unit per spelling. Short spellings that are also common words only count right after a number.
_UNITS_ANYWHERE = {
    "km": "km", "kms": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "mile": "mile", "miles": "mile", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "centimeter": "cm", "centimeters": "cm", "cm": "cm", "millimeter": "mm", "millimeters": "mm", "mm": "mm",
    "inch": "inch", "inches": "inch", "feet": "ft", "foot": "ft", "ft": "ft", "yard": "yard", "yards": "yard",
    "kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg",
    "gram": "g", "grams": "g", "mg": "mg", "milligram": "mg", "milligrams": "mg",
    "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "ounce": "oz", "ounces": "oz", "oz": "oz",
    "ton": "ton", "tons": "ton", "tonne": "tonne", "tonnes": "tonne", "stone": "stone",
    "celsius": "celsius", "centigrade": "celsius", "fahrenheit": "fahrenheit", "kelvin": "kelvin",
    "byte": "byte", "bytes": "byte", "kb": "kb", "kilobyte": "kb", "kilobytes": "kb", "mb": "mb",
    "megabyte": "mb", "megabytes": "mb", "gb": "gb", "gig": "gb", "gigs": "gb", "gigabyte": "gb", "gigabytes": "gb",
    "tb": "tb", "terabyte": "tb", "terabytes": "tb", "kib": "kib", "mib": "mib", "gib": "gib", "tib": "tib",
    "bit": "bit", "bits": "bit", "kbps": "kbps", "mbps": "mbps", "gbps": "gbps", "megabit": "mbit",
    "megabits": "mbit", "gigabit": "gbit", "gigabits": "gbit",
    "usd": "usd", "dollar": "usd", "dollars": "usd", "bucks": "usd", "eur": "eur", "euro": "eur", "euros": "eur",
    "gbp": "gbp", "sterling": "gbp", "jpy": "jpy", "yen": "jpy", "inr": "inr", "rupee": "inr", "rupees": "inr",
    "cad": "cad", "aud": "aud", "chf": "chf", "franc": "chf", "francs": "chf", "cny": "cny", "yuan": "cny",
    "rmb": "cny", "peso": "peso", "pesos": "peso", "btc": "btc", "bitcoin": "btc", "eth": "eth",
    "seconds": "s", "secs": "s", "minute": "min", "minutes": "min", "mins": "min",
    "hour": "h", "hours": "h", "hrs": "h", "hourly": "h", "day": "day", "days": "day", "daily": "day",
    "week": "week", "weeks": "week", "weekly": "week", "month": "month", "months": "month", "monthly": "month",
    "year": "year", "years": "year", "yearly": "year", "annual": "year", "annually": "year",
    "millisecond": "ms", "milliseconds": "ms", "microsecond": "us", "microseconds": "us",
    "liter": "l", "liters": "l", "litre": "l", "litres": "l", "ml": "ml", "milliliter": "ml", "milliliters": "ml",
    "gallon": "gallon", "gallons": "gallon", "cup": "cup", "cups": "cup", "tablespoon": "tbsp",
    "tablespoons": "tbsp", "tbsp": "tbsp", "teaspoon": "tsp", "teaspoons": "tsp", "tsp": "tsp", "pint": "pint",
    "pints": "pint", "quart": "quart", "quarts": "quart",
    "mph": "mph", "kph": "kph", "kmh": "kph", "knot": "knot", "knots": "knot",
    "watt": "w", "watts": "w", "kw": "kw", "kilowatt": "kw", "kilowatts": "kw", "kwh": "kwh", "wh": "wh", "volt": "v",
    "volts": "v", "amp": "a", "amps": "a", "mah": "mah", "calorie": "kcal", "calories": "kcal", "kcal": "kcal",
    "joule": "j", "joules": "j", "percent": "%", "percentage": "%", "%": "%", "px": "px", "pixel": "px",
    "pixels": "px", "pt": "pt", "rem": "rem", "dpi": "dpi", "fps": "fps", "hz": "hz", "hertz": "hz",
    "khz": "khz", "mhz": "mhz", "ghz": "ghz", "rpm": "rpm", "psi": "psi", "acre": "acre", "acres": "acre",
    "hectare": "hectare", "hectares": "hectare", "sqft": "sqft",
}  # fmt: skip
_UNITS_AFTER_NUMBER = {
    **_UNITS_ANYWHERE,
    "m": "m", "g": "g", "mi": "mile", "sec": "s", "min": "min", "h": "h", "hr": "h",
    "ms": "ms", "l": "l", "c": "celsius", "f": "fahrenheit", "k": "thousand", "w": "w", "v": "v", "db": "db",
    "em": "em", "yd": "yard", "gal": "gallon", "bn": "billion", "mins": "min", "deg": "deg",
    "degree": "deg", "degrees": "deg", "°": "deg", "x": "times", "bar": "bar", "kpa": "kpa", "pa": "pa",
    "cc": "ml", "mpg": "mpg",
}  # fmt: skip
_CURRENCIES = _words("usd eur gbp jpy inr cad aud chf cny peso btc eth")
_MONEY_WORDS = _words("price prices cost costs pay paid worth money exchange cash salary rent fee fees charge spend")
_MASS_WORDS = _words("weigh weighs weight heavy mass kg kilograms kilogram grams ounces stone")
# Codes mixing letters and digits (seat 22A, apartment 4B, model S23) are compared whole ...
_IDENTIFIER = re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]+")
# ... unless the letters are only a unit, multiplier or ordinal suffix (16gb, 10k, 21st, 3pm, 1990s); single
# letters other than k/s/x stay identifiers: "22c" is a seat more often than 22 degrees Celsius.
_UNIT_SUFFIX = re.compile(
    r"\d+(?:st|nd|rd|th|s|k|x|am|pm|gb|mb|kb|tb|km|kg|mg|cm|mm|ml|hr|hrs|min|mins|ms|sec|secs|mph|kph|"
    r"mbps|gbps|kbps|px|pt|em|rem|dpi|fps|hz|khz|mhz|ghz|wh|kwh|mah|kw|lb|lbs|oz|ft|mi|bn|cc|psi)"
)
_CURRENCY_SYMBOLS = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy", "₹": "inr"}
_TIME_UNITS = _words("s min h day week month year ms us")
# Bare units ("how many calories per day") only contradict a unit of the same dimension ("per week").
_DIMENSIONS = {
    **dict.fromkeys(_words("km mile m cm mm inch ft yard"), "length"),
    **dict.fromkeys(_words("kg g mg lb oz ton tonne stone"), "mass"),
    **dict.fromkeys(_words("celsius fahrenheit kelvin deg"), "temperature"),
    **dict.fromkeys(_words("byte kb mb gb tb kib mib gib tib bit mbit gbit"), "data"),
    **dict.fromkeys(_words("kbps mbps gbps"), "bandwidth"),
    **dict.fromkeys(_words("usd eur gbp jpy inr cad aud chf cny peso btc eth"), "currency"),
    **dict.fromkeys(_TIME_UNITS, "time"),
    **dict.fromkeys(_words("l ml gallon cup tbsp tsp pint quart"), "volume"),
    **dict.fromkeys(_words("mph kph knot"), "speed"),
    **dict.fromkeys(_words("w kw"), "power"),
    **dict.fromkeys(_words("kwh wh mah kcal j"), "energy"),
    **dict.fromkeys(_words("psi bar kpa pa"), "pressure"),
    **dict.fromkeys(_words("hz khz mhz ghz rpm"), "frequency"),
    **dict.fromkeys(_words("px pt rem em dpi"), "screen"),
    **dict.fromkeys(_words("acre hectare sqft"), "area"),
}

# Polarity groups: words in one group with different poles contradict each other. Verbs are inflected
# automatically (enable -> enables, enabled, enabling).
_ANTONYM_GROUPS: dict[str, dict[str, str]] = {
    # One axis for "make it exist / run / on" vs "make it go away / stop / off": paraphrases keep their
    # polarity, so enable-vs-remove or create-vs-close are as contradictory as enable-vs-disable.
    "action": {
        "+": "enable activate reactivate turnon switchon setup add insert create append attach start begin launch "
        "boot startup open reopen book reserve subscribe renew connect mount plug install",
        "-": "disable deactivate turnoff switchoff remove delete erase destroy detach drop purge stop end finish "
        "terminate halt kill shutdown quit close cancel unsubscribe disconnect unmount unplug uninstall",
        "p": "pause suspend",
        "r": "resume unpause",
        "~": "reschedule postpone delay",
    },
    "lock": {"+": "lock freeze", "-": "unlock unfreeze"},
    "show": {"+": "show unhide reveal display visible expand", "-": "hide hidden invisible conceal collapse"},
    # Kept apart: "download my data" and "export my data" ask the same thing.
    "load": {"+": "upload", "-": "download"},
    "push": {"+": "push", "-": "pull"},
    "port": {"+": "import", "-": "export"},
    "send": {"+": "send", "-": "receive"},
    "coming": {"+": "incoming inbound", "-": "outgoing outbound"},
    "io": {"+": "read reader readable", "-": "write writer writable"},
    "persist": {"+": "save serialize", "-": "load restore deserialize"},
    "trade": {"+": "buy purchase bought", "-": "sell sold", "~": "rent lease"},
    "money": {"+": "deposit credit", "-": "withdraw withdrawal withdrew debit"},
    "lend": {"+": "lend lent", "-": "borrow"},
    "refund": {"+": "refund reimburse reimbursement", "-": "charge overcharge"},
    "outcome": {
        "+": "win won pass passed succeed success successful gain",
        "-": "lose lost fail failure failed loss",
    },
    "approval": {"+": "accept approve confirm grant", "-": "reject decline deny refuse revoke"},
    "permission": {
        "+": "allow permit whitelist allowlist unblock",
        "-": "block forbid prohibit ban disallow blacklist blocklist restrict",
    },
    "membership": {"+": "join enroll register signup", "-": "leave exit"},
    "auth": {"+": "login logon signin", "-": "logout logoff signout", "r": "signup register registration"},
    "include": {"+": "include inclusive", "-": "exclude exclusive"},
    "crypt": {"+": "encrypt encode compress zip", "-": "decrypt decode decompress unzip"},
    "grade": {"+": "upgrade promote", "-": "downgrade demote"},
    "change": {
        "+": "increase raise boost grow increment extend maximize",
        "-": "decrease reduce lower shrink decrement shorten minimize",
    },
    "undo": {"+": "redo", "-": "undo"},
    "time": {"+": "before prior earlier pre early", "-": "after later post late"},
    "order": {"+": "first earliest", "2": "second", "-": "last final"},
    "span": {"+": "since", "-": "until till"},
    "truth": {"+": "true positive yes", "-": "false negative"},
    "side": {"+": "left", "-": "right"},
    "vertical": {"+": "top upper above up uppercase", "-": "bottom lower below down lowercase"},
    "orientation": {"+": "horizontal horizontally landscape", "-": "vertical vertically portrait"},
    "sort": {"+": "ascending asc", "-": "descending desc"},
    "direction": {"+": "forward forwards", "-": "backward backwards reverse"},
    "compass": {"+": "north northern", "-": "south southern", "e": "east eastern", "w": "west western"},
    "visibility": {"+": "public", "-": "private"},
    "locality": {"+": "local locally", "-": "remote remotely", "g": "global globally"},
    "wire_side": {"+": "client clientside frontend", "-": "server serverside backend"},
    "join_kind": {"+": "inner", "-": "outer"},
    "sync": {"+": "sync synchronous synchronously", "-": "async asynchronous asynchronously"},
    "typing": {"+": "static statically", "-": "dynamic dynamically"},
    "mutability": {"+": "mutable", "-": "immutable"},
    "copy": {"+": "deep", "-": "shallow"},
    "brightness": {"+": "light bright", "-": "dark"},
    "temperature": {"+": "hot heat heating warm boil boiling melt", "-": "cold cool cooling freeze freezing frozen"},
    "gender": {
        "+": "male man men boy boys father dad husband son brother boyfriend",
        "-": "female woman women girl girls mother mom mum wife daughter sister girlfriend",
    },
    "age": {"+": "adult adults", "-": "child children kid kids minor minors infant baby"},
    "mode": {"+": "manual manually", "-": "automatic automatically auto"},
    "wire": {"+": "wired", "-": "wireless"},
    "online": {"+": "online", "-": "offline inperson instore"},
    "price": {"+": "free", "-": "paid premium"},
    "scope_geo": {"+": "domestic", "-": "international abroad overseas"},
    "travel": {"+": "arrive arrival arrivals landing", "-": "depart departure departures takeoff"},
    "fulfilment": {"+": "pickup collect", "-": "deliver delivery shipping"},
    "backup": {"+": "backup", "-": "restore"},
    "zoom": {"+": "zoomin", "-": "zoomout"},
    "round": {"+": "roundup ceil ceiling", "-": "rounddown floor"},
    "speed": {"+": "speedup accelerate", "-": "slowdown decelerate throttle"},
    "opt": {"+": "optin", "-": "optout"},
    "pickdrop": {"+": "pickup", "-": "dropoff"},
    "merge": {"+": "merge combine", "-": "split separate"},
    "pros": {
        "+": "pro pros advantage advantages benefit benefits upside upsides",
        "-": "con cons disadvantage disadvantages drawback drawbacks downside downsides",
    },
    "prefix": {"+": "prefix prepend", "-": "suffix"},
    "grid": {"+": "row rows", "-": "column columns col cols"},
    "dimension": {"+": "width wide", "-": "height tall"},
    "parity": {"+": "odd", "-": "even"},
    "arith": {
        "+": "plus sum addition",
        "-": "minus subtract subtraction difference",
        "*": "multiply multiplication times",
        "/": "divide division",
    },
    "stats": {"+": "mean average", "-": "median"},
    "hierarchy": {"+": "parent parents", "-": "child children"},
    "multiplicity": {"+": "single singular", "-": "multiple plural bulk"},
    "quotes": {"+": "single", "-": "double"},
    "input": {"+": "input inputs", "-": "output outputs"},
    "getter": {"+": "getter", "-": "setter"},
    "mailbox": {"+": "inbox", "-": "outbox sent"},
    "peer": {"+": "sender", "-": "recipient receiver"},
    "profit": {"+": "profit gain income revenue", "-": "loss expense expenses"},
    "health": {"+": "healthy safe legal", "-": "unhealthy dangerous illegal harmful unsafe"},
    "hw": {"+": "hardware", "-": "software"},
    "moisture": {"+": "wet damp humid", "-": "dry"},
    "fill": {"+": "full", "-": "empty"},
    "wealth": {"+": "rich wealthy", "-": "poor"},
    "thickness": {"+": "thick", "-": "thin"},
    "breadth": {"+": "wide broad", "-": "narrow"},
    "volume_level": {"+": "loud", "-": "quiet silent"},
    "frequency": {"+": "common frequent", "-": "rare uncommon"},
    "severity": {"+": "major", "-": "minor"},
    "facing": {"+": "front", "-": "back rear"},
    "pay_basis": {"+": "gross pretax", "-": "net aftertax posttax"},
    "account_kind": {"+": "checking current", "-": "savings"},
    "stock": {"+": "instock available", "-": "outofstock unavailable soldout"},
}

# Comparatives (reason "comparative"): the same idea, kept apart so a rejection says which kind it was.
_COMPARATIVE_GROUPS: dict[str, dict[str, str]] = {
    "magnitude": {
        "+": "more most greater greatest larger largest bigger biggest higher highest max maximum maximal over above "
        "exceed exceeds exceeding high big large huge",
        "-": "less least fewer fewest smaller smallest lower lowest min minimum minimal under below low small tiny",
    },
    "speed": {"+": "faster fastest quicker quickest fast quick rapid", "-": "slower slowest slow"},
    "quality": {"+": "better best improve improves improved good", "-": "worse worst worsen worsens worsened bad poor"},
    "age": {"+": "older oldest elder eldest old", "-": "newer newest younger youngest latest recent new young"},
    "cost": {"+": "expensive pricier priciest costlier costliest", "-": "cheaper cheapest inexpensive cheap"},
    "difficulty": {"+": "harder hardest difficult", "-": "easier easiest easy simpler simplest"},
    "length": {"+": "longer longest long", "-": "shorter shortest short"},
    "heat": {"+": "hotter hottest warmer warmest", "-": "colder coldest cooler coolest"},
    "weight": {"+": "heavier heaviest heavy", "-": "lighter lightest light"},
    "strength": {"+": "stronger strongest strong", "-": "weaker weakest weak"},
    "distance": {"+": "farther farthest further furthest far", "-": "closer closest nearer nearest nearby near"},
    "safety": {"+": "safer safest", "-": "riskier riskiest"},
}  # fmt: skip

# "over"/"under" are comparatives only before a number ("over 18", "under $50"), not in "over Wi-Fi".
_NEEDS_NUMBER_AFTER = frozenset({"over", "under"})

# Prefix pairs that flip meaning on the same stem: upload/download, encrypt/decrypt, import/export ...
_PREFIX_PAIRS: tuple[tuple[str, str, int], ...] = (
    ("up", "down", 3), ("in", "out", 3), ("over", "under", 3), ("pre", "post", 3), ("en", "de", 3),
    ("en", "dis", 3), ("im", "ex", 4), ("in", "ex", 4), ("in", "de", 4), ("super", "sub", 3),
    ("upper", "lower", 3), ("start", "end", 3), ("max", "min", 3),
)  # fmt: skip
# Negating prefixes: valid/invalid, install/uninstall, connect/disconnect, possible/impossible ...
_NEGATING_PREFIXES: tuple[tuple[str, int], ...] = (
    ("un", 3), ("dis", 3), ("non", 3), ("in", 5), ("im", 5), ("il", 5), ("ir", 5), ("de", 4), ("anti", 3),
)  # fmt: skip

_SCOPE: dict[str, str] = {
    **dict.fromkeys(_words("all every each everything everyone everybody always entire whole everywhere"), "all"),
    **dict.fromkeys(
        _words("any some anything something anyone someone anybody somebody sometimes somewhere anywhere"), "some"
    ),
    **dict.fromkeys(_words("none nothing nobody noone neither"), "none"),
    **dict.fromkeys(_words("both"), "both"),
    **dict.fromkeys(_words("either"), "either"),
    **dict.fromkeys(_words("most majority mostly"), "most"),
    **dict.fromkeys(_words("few rarely seldom"), "few"),
    **dict.fromkeys(_words("several many often usually"), "many"),
}
_ONLY = _words("only solely exclusively")
_SCOPE_IDIOMS = re.compile(
    r"\b(?:at all|all right|all set|first of all|after all|all in all|once and for all|any more|anymore|"
    r"how many|how much|how often|by any chance|any idea|in any case|some help)\b"
)

_QUESTION = {"why": "why", "where": "where", "when": "when", "who": "who", "whom": "who", "whose": "who"}
_ASKING = _words("me know wondering wonder explain understand curious ask asking about and or")
_QUESTION_PHRASES = re.compile(
    r"\b(?:how come|what causes|what caused|what is the reason|what's the reason|reason why|for what reason)\b"
    r"|\b(?:what time|what day|what date|how soon|by when)\b|\b(?:what place|which location)\b"
)
_QUESTION_PHRASE_KIND = {
    "how come": "why", "what causes": "why", "what caused": "why", "what is the reason": "why",
    "what's the reason": "why", "reason why": "why", "for what reason": "why", "what time": "when",
    "what day": "when", "what date": "when", "how soon": "when", "by when": "when", "what place": "where",
    "which location": "where",
}  # fmt: skip

# Entities users often type in lowercase. Capitalised words mid-sentence are names anyway.
_LEXICON = _words("""
    afghanistan albania algeria argentina australia austria bangladesh belgium bolivia brazil bulgaria cambodia
    cameroon canada chile china colombia croatia cuba cyprus czechia denmark ecuador egypt england estonia
    ethiopia finland france germany ghana greece hungary iceland india indonesia iran iraq ireland israel italy
    jamaica japan jordan kazakhstan kenya korea kuwait latvia lebanon lithuania luxembourg malaysia malta mexico
    morocco nepal netherlands holland nigeria norway pakistan peru philippines poland portugal qatar romania
    russia scotland serbia singapore slovakia slovenia somalia spain sweden switzerland syria taiwan thailand
    tunisia turkey uganda ukraine uruguay venezuela vietnam wales yemen zambia zimbabwe usa uk europe asia africa
    antarctica oceania
    amsterdam athens atlanta auckland austin bangkok barcelona beijing berlin bogota boston brisbane brussels
    budapest cairo calgary chicago copenhagen dallas delhi denver dubai dublin edinburgh frankfurt geneva
    glasgow hamburg helsinki houston istanbul jakarta johannesburg karachi kyiv kiev lagos lima lisbon london
    madrid manchester manila melbourne miami milan montreal moscow mumbai munich nairobi naples oslo ottawa
    paris perth philadelphia phoenix prague rome santiago seattle seoul shanghai singapore stockholm sydney
    taipei tehran tokyo toronto vancouver venice vienna warsaw washington zurich lyon marseille osaka kyoto
    hanoi lahore dhaka riyadh doha
    python javascript typescript java kotlin scala golang rust ruby php perl haskell elixir erlang clojure
    cplusplus csharp fsharp dotnet swift objectivec lua julia matlab fortran cobol bash zsh powershell
    django flask fastapi rails laravel symfony spring springboot react angular vue svelte nextjs nuxt nodejs
    node deno express jquery bootstrap tailwind numpy pandas scipy pytorch tensorflow keras sklearn jupyter
    docker podman kubernetes k8s helm terraform ansible jenkins nginx apache tomcat postgres postgresql mysql
    mariadb sqlite mongodb redis cassandra elasticsearch kafka rabbitmq dynamodb snowflake bigquery
    linux ubuntu debian fedora centos rhel alpine arch windows macos osx ios ipados android chromeos
    chrome firefox safari opera brave aws azure gcp heroku netlify vercel cloudflare github gitlab bitbucket
    jira confluence slack teams discord whatsapp telegram signal zoom skype outlook gmail yahoo hotmail
    excel powerpoint onedrive dropbox gdrive icloud iphone ipad macbook imac airpods pixel galaxy samsung apple
    google microsoft amazon netflix spotify youtube facebook instagram twitter tiktok linkedin reddit uber lyft
    airbnb paypal venmo stripe visa mastercard amex discover klarna shopify wordpress salesforce hubspot
    zendesk intercom notion figma canva photoshop illustrator vscode vim emacs intellij pycharm xcode
    git svn mercurial npm yarn pnpm pip conda poetry maven gradle cargo webpack vite babel eslint prettier
    graphql grpc rest soap json yaml xml csv pdf html css sql nosql http https tcp udp ssh ftp sftp smtp dns
    ssl tls oauth saml jwt ldap vpn wifi bluetooth usb hdmi ethernet lte 5g
    english spanish french german italian portuguese chinese mandarin cantonese japanese korean arabic hindi
    russian dutch swedish norwegian danish finnish polish turkish greek hebrew vietnamese thai indonesian
    ukrainian czech hungarian romanian bengali urdu punjabi tamil swahili persian farsi latin
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho
    illinois indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota mississippi
    missouri montana nebraska nevada ohio oklahoma oregon pennsylvania tennessee texas utah vermont virginia
    wisconsin wyoming
    """)
_ALIASES = _Rewriter(
    (
        (
            "u.s|us|united states",
            r"\b(?:U\.S\.A\.|U\.S\.|USA|US|United States of America|United States)(?![\w.])",
            "USA",
        ),
        ("u.k|uk|britain|united kingdom", r"\b(?:U\.K\.|UK|United Kingdom|Great Britain|Britain)(?![\w.])", "UK"),
        ("kubernetes|k8s", r"(?i)\bkubernetes\b|\bk8s\b", "Kubernetes"),
        ("postgres", r"(?i)\bpostgresql\b|\bpostgres\b", "Postgres"),
        ("golang", r"(?i)\bgolang\b", "Golang"),
        ("js", r"(?i)\bnode\.?js\b", "Nodejs"),
        ("js", r"(?i)(?<![\w.])js\b", "JavaScript"),
        ("mac|os x|osx", r"(?i)\bmac ?os ?x?\b|\bos ?x\b", "macOS"),
        ("mac", r"\bMac\b", "macOS"),
        ("node", r"\bNode\b(?!\.)", "Nodejs"),
        ("code", r"(?i)\bvs ?code\b|\bvisual studio code\b", "VSCode"),
        ("google drive", r"(?i)\bgoogle drive\b", "GDrive"),
        ("wi-fi|wifi", r"(?i)\bwi-?fi\b", "WiFi"),
        ("e-mail", r"(?i)\be-mail\b", "email"),
    )
)
_SPECIALS = _Rewriter(
    (
        ("c++", r"(?i)\bc\+\+", " cplusplus "),
        ("c#", r"(?i)\bc#", " csharp "),
        ("f#", r"(?i)\bf#", " fsharp "),
        (".net", r"(?i)(?<![\w.])\.net\b", " dotnet "),
        ("objective-c", r"(?i)\bobjective-c\b", " objectivec "),
        ("km/h", r"(?i)\bkm/h\b", " kph "),
        ("per cent", r"(?i)\bper cent\b", " percent "),
        ("a.m.", r"(?i)\ba\.m\.", " am "),
        ("p.m.", r"(?i)\bp\.m\.", " pm "),
        ("no.", r"(?i)\bno\.\s*(?=\d)", " number "),  # "order no. 5" is not a negation
        ("expensive", r"(?i)\bless expensive\b", " cheaper "),
        ("expensive", r"(?i)\bmore expensive\b", " pricier "),
        ("person", r"(?i)\bin[- ]person\b", " inperson "),
        ("store", r"(?i)\bin[- ]store\b", " instore "),
    )
)
_NOT_NAMES = _words(
    "i i'm i've i'd i'll ok okay hi hello hey thanks thank please mr mrs ms dr sir madam faq asap fyi btw pls plz "
    "am pm tl;dr imo imho q a id eta diy dataframe dataframes nan readme todo"
)

_CONTRACTIONS = _Rewriter(
    (
        ("can", r"\bcan't\b|\bcant\b|\bcannot\b", "can not"),
        ("wo", r"\bwon't\b|\bwont\b", "will not"),
        ("shan't", r"\bshan't\b", "shall not"),
        ("n't", r"n't\b", " not"),
        ("nt", r"\b(do|does|did|is|are|was|were|has|have|had|could|should|would|must|need)nt\b", r"\1 not"),
        ("'s", r"'s\b", ""),
        ("'", r"'(?:re|ve|ll|d|m)\b", ""),
    )
)
# "I'm not sure how to ...", "I don't know how to ..." are politeness, not a negated question.
_FILLER = re.compile(
    r"\b(?:i am |i )?(?:not sure|do not know|do not understand|have no idea|no idea|can not figure out|"
    r"can not remember|can not work out|not certain)(?= (?:how|what|why|where|when|which|who|if|whether)\b)"
    r"|^(?:hi|hello|hey|good (?:morning|afternoon|evening))\b[ ,!.]*|\bthanks?(?: you)?(?: in advance)?\b"
    r"|\bor not\b"
)
_WORD = re.compile(r"[a-z0-9%°]+(?:\.[0-9]+)*")
_NUMERIC_TOKEN = re.compile(r"[$€£¥₹%°]|\d+(?:[.,:]\d+)*|[a-z]+")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_ISO_DATE = re.compile(r"\b((?:19|20)\d{2})-(\d{1,2})-(\d{1,2})\b")
_BREAKS = frozenset('.!?;:\n"(')
_NAME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9&+']*")
_PHRASES = _Rewriter(
    (
        ("turn|switch|toggle|power", r"\b(?:turn|switch|toggle|power)(?:s|ed|ing)? (?:(?:\w+ ){0,3})on\b", " turnon "),
        (
            "turn|switch|toggle|power",
            r"\b(?:turn|switch|toggle|power)(?:s|ed|ing)? (?:(?:\w+ ){0,3})off\b",
            " turnoff ",
        ),
        ("log|sign", r"\b(?:log|logg|sign)(?:s|ed|ing|ged|ging)? ?(?:in|into|on)\b", " login "),
        ("log|sign", r"\b(?:log|logg|sign)(?:s|ed|ing|ged|ging)? ?(?:out|off)\b", " logout "),
        ("sign", r"\bsign(?:s|ed|ing)? ?up\b", " signup "),
        ("set", r"\bset(?:s|ting)? ?up\b", " setup "),
        ("shut", r"\b(?:shut|shutting|shuts) ?down\b", " shutdown "),
        ("start", r"\bstart(?:s|ed|ing)? ?up\b", " startup "),
        ("opt", r"\bopt(?:s|ed|ing)? ?in\b", " optin "),
        ("opt", r"\bopt(?:s|ed|ing)? ?out\b", " optout "),
        ("zoom", r"\bzoom(?:s|ed|ing)? ?in\b", " zoomin "),
        ("zoom", r"\bzoom(?:s|ed|ing)? ?out\b", " zoomout "),
        ("round", r"\bround(?:s|ed|ing)? (?:(?:\w+ ){0,2})up\b", " roundup "),
        ("round", r"\bround(?:s|ed|ing)? (?:(?:\w+ ){0,2})down\b", " rounddown "),
        ("speed", r"\bspeed(?:s|ed|ing)? (?:(?:\w+ ){0,2})up\b", " speedup "),
        ("slow", r"\bslow(?:s|ed|ing)? (?:(?:\w+ ){0,2})down\b", " slowdown "),
        ("pick", r"\bpick(?:s|ed|ing)? (?:(?:\w+ ){0,2})up\b", " pickup "),
        ("drop", r"\bdrop(?:s|ped|ping)? (?:(?:\w+ ){0,2})off\b", " dropoff "),
        ("back", r"\bback(?:s|ed|ing)? (?:(?:\w+ ){0,2})up\b", " backup "),
        ("rid of", r"\b(?:get|getting|got) rid of\b", " remove "),
        ("prior to", r"\bprior to\b", " before "),
        ("no longer", r"\bno longer\b", " not "),
        ("at least", r"\bat least\b", " minimum "),
        ("at most|up to|no more than", r"\bat most\b|\bup to\b|\bno more than\b", " maximum "),
        ("than", r"\bmore than\b|\bgreater than\b", " above "),
        ("than", r"\bless than\b|\bfewer than\b", " below "),
        ("no one", r"\bno one\b", " noone "),
        ("stock", r"\bout of stock\b", " outofstock "),
        ("stock", r"\bin stock\b", " instock "),
        ("sold out", r"\bsold out\b", " soldout "),
        ("non ", r"\bnon (?=[a-z]{3})", "non"),  # "non refundable" is "nonrefundable"
        ("current", r"\bcurrent (?:date|day)\b", " today date "),
    )
)
_DIRECTION_VERBS = _words("convert converting translate translating migrate migrating switch switching")
_FILLER_WORDS = _words("the a an my our your this that these those some its their his her")
_THAN_SKIP = _words("is are was were be been much far a lot way even more less any slightly significantly really")


# ------------------------------------------------------------------------------------------------ helpers


def _inflections(word: str) -> set[str]:
    """Crude English inflections of a base form (over-generation is harmless: unused forms never match)."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing", word + "er", word + "ers"}
    if word.endswith("e"):
        forms |= {word[:-1] + "ing", word[:-1] + "ion", word[:-1] + "ions"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou" and word[-3] not in "aeiou":
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    if word.endswith("t"):
        forms |= {word + "ion", word + "ions"}
    return forms


def _polarity_index(groups: dict[str, dict[str, str]], exact: bool) -> dict[str, list[tuple[str, str]]]:
    index: dict[str, list[tuple[str, str]]] = {}
    for group, poles in groups.items():
        for pole, words in poles.items():
            for word in words.split():
                for form in {word} if exact else _inflections(word):
                    entry = (group, pole)
                    if entry not in index.setdefault(form, []):
                        index[form].append(entry)
    return index


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    """True when a and b differ by one insertion, deletion, substitution or adjacent transposition."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1 :]


def _number_text(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _digits_value(token: str) -> str:
    """Canonical text of a digit token: thousands separators dropped, leading zeros dropped, decimals kept.

    Decimal trailing zeros are kept on purpose: "Python 3.10" and "Python 3.1" are different versions.
    """
    if _THOUSANDS.match(token):
        token = token.replace(",", "")
    if token.count(".") == 1:
        whole, fraction = token.split(".")
        return f"{int(whole)}.{fraction}"
    if "." in token:
        return ".".join(str(int(part)) for part in token.split("."))  # a version: 1.2.3
    return str(int(token))


# ------------------------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class Facts:
    """What one text asserts that a paraphrase must keep; extracted once per text and cached."""

    words: frozenset[str]
    stems: dict[str, str]
    pairs: frozenset[str]
    negated: bool
    antonyms: dict[str, frozenset[str]]
    comparatives: dict[str, frozenset[str]]
    scope: frozenset[str]
    only: bool
    question: frozenset[str]
    dates: frozenset[str]
    numbers: frozenset[str]
    identifiers: frozenset[str]
    units_with_number: frozenset[str]
    units_bare: frozenset[str]
    names: tuple[str, ...]
    directions: frozenset[tuple[str, str]]


class LookalikeVerifier:
    """Decides whether a cached question (candidate) asks the same thing as a new one (query).

    `compatible(query, candidate)` returns (True, None) or (False, reason) with reason one of
    "negation", "antonym", "comparative", "scope", "question", "date", "unit", "number", "name",
    "direction". Facts of each text are cached (LRU), so a hot cached question costs its extraction once.
    """

    REASONS = (
        "negation", "antonym", "comparative", "scope", "question", "date", "unit", "number", "name", "direction",
    )  # fmt: skip

    def __init__(self, config: VerifierConfig | None = None, *, cache_size: int = 4096) -> None:
        self.config = config or VerifierConfig()
        groups = {name: dict(poles) for name, poles in _ANTONYM_GROUPS.items()}
        for number, (left, right) in enumerate(self.config.extra_antonyms):
            groups[f"extra{number}"] = {"+": left.lower(), "-": right.lower()}
        self._antonyms = _polarity_index(groups, exact=False)
        self._comparatives = _polarity_index(_COMPARATIVE_GROUPS, exact=True)
        self._lexicon = _LEXICON | {name.lower() for name in self.config.extra_names}
        self._lowercase_names = (
            self._lexicon - _NOT_NAMES - set(_MONTHS) - set(_WEEKDAYS) - {"may", "march"} - set(_UNITS_ANYWHERE)
        )
        self._facts = lru_cache(maxsize=cache_size)(self._extract)

    def facts(self, text: str) -> Facts:
        """The critical facts of one text (cached)."""
        return self._facts(text)

    def compatible(self, query: str, candidate: str) -> tuple[bool, str | None]:
        """(True, None) when `candidate` may answer `query`; else (False, the first failed check)."""
        config = self.config
        if not config.enabled:
            return True, None
        a, b = self._facts(query), self._facts(candidate)
        if config.negation and a.negated != b.negated:
            return False, "negation"
        if config.antonyms and (_poles_conflict(a.antonyms, b.antonyms) or _prefix_conflict(a, b)):
            return False, "antonym"
        if config.comparatives and _poles_conflict(a.comparatives, b.comparatives):
            return False, "comparative"
        if config.scope and (a.only != b.only or (a.scope and b.scope and a.scope != b.scope)):
            return False, "scope"
        if config.question and a.question and b.question and a.question != b.question:
            return False, "question"
        if config.dates and a.dates != b.dates:
            return False, "date"
        if config.units and (
            (a.units_with_number and b.units_with_number and a.units_with_number != b.units_with_number)
            or _dimension_conflict(a.units_bare, b.units_bare)
        ):
            return False, "unit"
        if config.numbers and (
            a.numbers != b.numbers or (a.identifiers and b.identifiers and a.identifiers != b.identifiers)
        ):
            return False, "number"
        if config.names and _names_conflict(a, b):
            return False, "name"
        if config.direction and any((y, x) in b.directions for x, y in a.directions if x != y):
            return False, "direction"
        return True, None

    # -------------------------------------------------------------------------------------------- extraction

    def _extract(self, text: str) -> Facts:
        raw = unicodedata.normalize("NFKC", text)
        raw = raw.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
        raw = raw.replace("–", "-").replace("—", " - ")
        raw = _ALIASES(_SPECIALS(raw))
        raw = _ISO_DATE.sub(
            lambda m: f" {_MONTH_NUMBERS[min(max(int(m.group(2)), 1), 12) - 1]} {int(m.group(3))} {m.group(1)} ", raw
        )
        names = self._names(raw)

        low = raw.lower()
        low = _PHRASES(_FILLER.sub(" ", _CONTRACTIONS(low)).strip())

        joined_hyphens = re.sub(r"(?<=[a-z])-(?=[a-z])", "", low)
        words = [w for w in _WORD.findall(joined_hyphens.replace("'", " ")) if w]
        word_set = frozenset(words)

        numbers, units_with_number, number_positions, times, years = self._numbers(low)
        dates = self._dates(words, times, years)
        units_bare = (
            frozenset(
                _UNITS_ANYWHERE[w] for i, w in enumerate(words) if w in _UNITS_ANYWHERE and i not in number_positions
            )
            - units_with_number
        )
        # Time words that name a date ("next week") are dates, not units.
        if any(d.startswith("rel:") for d in dates):
            units_bare = units_bare - _TIME_UNITS
        # "pounds" next to another currency or a money word is sterling, not weight.
        if (units_with_number | units_bare) & _CURRENCIES or (word_set & _MONEY_WORDS and not word_set & _MASS_WORDS):
            units_with_number = _swap(units_with_number, "lb", "gbp")
            units_bare = _swap(units_bare, "lb", "gbp")

        scope_text = _SCOPE_IDIOMS.sub(" ", joined_hyphens)
        scope_words = _WORD.findall(scope_text)
        # A wh-word asks only near the start or after a verb of asking; "crash when I open it" is a clause.
        question = {_QUESTION[w] for i, w in enumerate(words) if w in _QUESTION and (i < 2 or words[i - 1] in _ASKING)}
        question |= {_QUESTION_PHRASE_KIND[m.group(0)] for m in _QUESTION_PHRASES.finditer(low)}

        return Facts(
            words=word_set,
            stems={w: _stem(w) for w in word_set},
            pairs=frozenset(first + second for first, second in zip(words, words[1:], strict=False)),
            negated=any(w in _NEGATIONS for w in words),
            antonyms=self._poles(words, self._antonyms),
            comparatives=self._poles(words, self._comparatives, after_how=False),
            scope=frozenset(_SCOPE[w] for w in scope_words if w in _SCOPE),
            only=any(w in _ONLY for w in scope_words),
            question=frozenset(question),
            dates=dates,
            numbers=numbers,
            identifiers=frozenset(w for w in words if _IDENTIFIER.fullmatch(w) and not _UNIT_SUFFIX.fullmatch(w)),
            units_with_number=units_with_number,
            units_bare=units_bare,
            names=names,
            directions=self._directions(words, names),
        )

    def _names(self, raw: str) -> tuple[str, ...]:
        """Lowercased names in order: lexicon words anywhere; capitalised words that do not open a sentence,
        inner capitals (GitHub, iPhone) and acronyms (AWS, PDF), unless the whole text is Title Case or shouted."""
        tokens: list[tuple[str, bool, str]] = []  # (token, opens a sentence, previous token)
        position = 0
        previous = ""
        for match in _NAME_TOKEN.finditer(raw):
            between = raw[position : match.start()]
            opens = not tokens or (between != " " and not _BREAKS.isdisjoint(between))
            token = match.group(0).removesuffix("'s").removesuffix("'")
            tokens.append((token, opens, previous))
            previous = token
            position = match.end()
        words = [t for t, _, _ in tokens if t[:1].isalpha()]
        # "How To Reset My Password": capitals carry no information when (nearly) every word has one.
        title_case = len(words) >= 5 and sum(t[0].isupper() for t in words[1:]) >= 0.8 * (len(words) - 1)
        shouted = len(words) >= 3 and sum(t.isupper() and len(t) > 1 for t in words) >= 0.6 * len(words)
        found: list[str] = []
        for token, opens, before in tokens:
            lower = token.lower()
            if token == lower:  # the common case: only the lexicon can make a lowercase word a name
                if lower in self._lowercase_names and not (lower in _UNITS_AFTER_NUMBER and before[:1].isdigit()):
                    found.append(lower)
                continue
            if len(token) == 1 and token.isupper() and token != "I" and not opens:
                found.append(f"variant:{lower}")  # "Plan A", "Model S", "vitamin D", "size L"
                continue
            if lower in _NOT_NAMES or lower in _MONTHS or lower in _WEEKDAYS or lower in ("may", "march"):
                continue
            if lower in _UNITS_ANYWHERE or (lower in _UNITS_AFTER_NUMBER and before[:1].isdigit()):
                continue
            if lower in self._lexicon:
                found.append(lower)
                continue
            if shouted or not token[:1].isalpha():
                continue
            inner_capital = any(c.isupper() for c in token[1:]) and not token.isupper()
            acronym = len(token) >= 2 and token.isupper()
            capitalised = token[0].isupper() and not opens and not title_case
            if inner_capital or acronym or capitalised:
                found.append(lower)
        return tuple(dict.fromkeys(found))

    def _numbers(self, low: str) -> tuple[frozenset[str], frozenset[str], set[int], set[str], set[str]]:
        """Numbers (digits and number words), units written after them, word positions they occupy, times, years."""
        spaced = re.sub(r"(?<=[a-z0-9])-(?=[a-z0-9])", " ", low)
        tokens = _NUMERIC_TOKEN.findall(spaced)
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
            if token in _CURRENCY_SYMBOLS:
                pending_currency = _CURRENCY_SYMBOLS[token]
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
                        times.add(_clock(int(hour), int(minute), nxt))
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
            elif token in _NUMBER_UNITS or token in _NUMBER_TENS or token in _NUMBER_SCALES:
                parsed, consumed = _parse_number_words(tokens, i)
                if consumed == 0:
                    i += 1
                    pending_currency = None
                    continue
                if parsed == 1 and consumed == 1 and token == "one":
                    before = tokens[i - 1] if i > 0 else ""
                    after = tokens[i + 1] if i + 1 < len(tokens) else ""
                    if (
                        before in _ONE_NOT_A_COUNT_BEFORE
                        or after in _ONE_NOT_A_COUNT_AFTER
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
                times.add(_clock(int(value), 0, nxt))
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
            if nxt in _CURRENCY_SYMBOLS:
                units.add(_CURRENCY_SYMBOLS[nxt])
                i += 1
            elif nxt in _UNITS_AFTER_NUMBER and _UNITS_AFTER_NUMBER[nxt] not in ("thousand", "billion", "times"):
                unit = _UNITS_AFTER_NUMBER[nxt]
                i += 1
                if unit == "deg" and i < len(tokens) and tokens[i] in ("celsius", "fahrenheit", "c", "f", "kelvin"):
                    unit = {"c": "celsius", "f": "fahrenheit"}.get(tokens[i], tokens[i])
                    unit_words.add(tokens[i])
                    i += 1
                units.add(unit)
                unit_words.add(nxt)
        positions: set[int] = set()
        # units_bare skips words that were consumed as a unit after a number (identified by their text).
        words = _WORD.findall(re.sub(r"(?<=[a-z])-(?=[a-z])", "", low).replace("'", " "))
        remaining = set(unit_words)
        for index, word in enumerate(words):
            if word in remaining:
                positions.add(index)
        return frozenset(numbers), frozenset(units), positions, times, years

    def _dates(self, words: Sequence[str], times: set[str], years: set[str]) -> frozenset[str]:
        dates: set[str] = set(times) | {f"year:{y}" for y in years}
        for index, word in enumerate(words):
            before = words[index - 1] if index > 0 else ""
            after = words[index + 1] if index + 1 < len(words) else ""
            if word in _MONTHS:
                if word in ("jan", "mar", "sep", "dec", "oct") and not (_is_number(before) or _is_number(after)):
                    continue  # too short to trust without a day number: "dec" could be decimal
                dates.add(_MONTHS[word])
            elif word == "may" and (_is_number(before) or _is_number(after) or before in _DATE_CONTEXT):
                dates.add("may")
            elif word == "march" or (word == "mar" and (_is_number(before) or _is_number(after))):
                dates.add("mar")
            elif word in _WEEKDAYS:
                dates.add(_WEEKDAYS[word])
            elif word in _DAY_WORDS:
                dates.add(_DAY_WORDS[word])
            elif word in _AMBIGUOUS_SEASONS and (
                before in _DATE_CONTEXT
                or before in _RELATIVE
                or (before == "the" and index > 1 and words[index - 2] in ("in", "during", "until", "by", "since"))
            ):  # "in the fall", not "the fall of Rome"
                dates.add(_AMBIGUOUS_SEASONS[word])
            if word in _RELATIVE and after.rstrip("s") in _PERIODS | set(_WEEKDAYS) | set(_MONTHS):
                relative = {"previous": "last", "past": "last", "coming": "next", "following": "next"}.get(word, word)
                dates.add(f"rel:{relative}:{after.rstrip('s')}")
        return frozenset(dates)

    @staticmethod
    def _poles(
        words: Sequence[str], index: dict[str, list[tuple[str, str]]], *, after_how: bool = True
    ) -> dict[str, frozenset[str]]:
        poles: dict[str, set[str]] = {}
        for position, word in enumerate(words):
            entries = index.get(word)
            if not entries:
                continue
            if not after_how and position > 0 and words[position - 1] == "how":
                continue  # "how long", "how big": a question form, not a claim about size
            if word in _NEEDS_NUMBER_AFTER:
                after = words[position + 1] if position + 1 < len(words) else ""
                if not (_is_number(after) or after in _NUMBER_UNITS or after in _NUMBER_TENS):
                    continue
            for group, pole in entries:
                poles.setdefault(group, set()).add(pole)
        return {group: frozenset(found) for group, found in poles.items()}

    @staticmethod
    def _directions(words: Sequence[str], names: Sequence[str]) -> frozenset[tuple[str, str]]:
        """(source, target) of 'from X to Y', 'convert X to Y' and (bigger, smaller) of 'X ... than Y'."""
        found: set[tuple[str, str]] = set()

        def next_content(start: int) -> tuple[str, int] | None:
            for position in range(start, min(start + 4, len(words))):
                if words[position] not in _FILLER_WORDS and words[position] != "from":
                    return words[position], position
            return None

        for index, word in enumerate(words):
            if word == "from" or word in _DIRECTION_VERBS:
                source = next_content(index + 1)
                if source is None:
                    continue
                for position in range(source[1] + 1, min(source[1] + 6, len(words))):
                    if words[position] in ("to", "into"):
                        target = next_content(position + 1)
                        if target is not None:
                            found.add((source[0], target[0]))
                        break
            elif word in ("to", "into") and 0 < index < len(words) - 1:
                # "USD to EUR", "Python to Go": a bare pair of units or names around "to".
                left, right = words[index - 1], words[index + 1]
                if all(w in _UNITS_ANYWHERE or w in names for w in (left, right)):
                    found.add((left, right))
            if word == "than" and index >= 2:
                after = next_content(index + 1)
                position = index - 2  # skip the comparative itself
                while position >= 0 and words[position] in _THAN_SKIP:
                    position -= 1
                if after is not None and position >= 0:
                    found.add((words[position], after[0]))
        return frozenset(found)


def _clock(hour: int, minute: int, meridiem: str) -> str:
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    return f"{hour:02d}:{minute:02d}"


def _is_number(word: str) -> bool:
    return bool(word) and (word[0].isdigit() or word in _NUMBER_UNITS or word in _NUMBER_TENS)


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
        elif token in _NUMBER_UNITS:
            current += _NUMBER_UNITS[token]
        elif token in _NUMBER_TENS:
            current += _NUMBER_TENS[token]
        elif token in _NUMBER_SCALES:
            scale = _NUMBER_SCALES[token]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
        elif (
            token == "and"
            and seen
            and i + 1 < len(tokens)
            and (tokens[i + 1] in _NUMBER_UNITS or tokens[i + 1] in _NUMBER_TENS)
        ):
            i += 1
            continue
        else:
            break
        seen = True
        i += 1
        consumed = i - start
    return total + current, consumed


def _swap(units: frozenset[str], old: str, new: str) -> frozenset[str]:
    return (units - {old}) | {new} if old in units else units


def _dimension_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both texts name a unit of the same dimension, and not the same units (hours vs minutes, USD vs EUR)."""
    if not a or not b:
        return False
    dimensions_b = {_DIMENSIONS.get(unit, unit) for unit in b}
    for dimension in {_DIMENSIONS.get(unit, unit) for unit in a} & dimensions_b:
        if {u for u in a if _DIMENSIONS.get(u, u) == dimension} != {u for u in b if _DIMENSIONS.get(u, u) == dimension}:
            return True
    return False


def _poles_conflict(a: dict[str, frozenset[str]], b: dict[str, frozenset[str]]) -> bool:
    """Both texts use a word of the same polarity group, with different poles."""
    return any(group in b and poles != b[group] for group, poles in a.items())


def _prefix_conflict(a: Facts, b: Facts) -> bool:
    """A word on one side and its flipped form on the other: install/uninstall, upload/download, input/output.

    Hash lookups instead of comparing every word pair: this runs on every candidate that passed the threshold.
    """
    only_a = {w: a.stems[w] for w in a.words - b.words if w.isalpha()}
    only_b = {w: b.stems[w] for w in b.words - a.words if w.isalpha()}
    if not only_a or not only_b:
        return False
    return _flips_into(only_a, only_b) or _flips_into(only_b, only_a) or _prefix_pairs(only_a, set(only_b.values()))


def _flips_into(words: dict[str, str], others: dict[str, str]) -> bool:
    """Some word of `others` is a word of `words` with a negating prefix or suffix added."""
    by_stem: dict[str, list[str]] = {}
    for word, stem in words.items():
        by_stem.setdefault(stem, []).append(word)
    for other in others:
        for prefix, minimum in _NEGATING_PREFIXES:
            if other.startswith(prefix):
                rest = other[len(prefix) :]
                candidates = ([rest] if rest in words else []) + by_stem.get(_stem(rest), [])
                if any(len(word) >= minimum for word in candidates):
                    return True
        for suffix in ("free", "less"):
            if other.endswith(suffix) and len(other) - len(suffix) >= 4:
                rest = other[: -len(suffix)]
                if rest in words or _stem(rest) in by_stem:
                    return True
    return False


def _prefix_pairs(words: dict[str, str], other_stems: set[str]) -> bool:
    """A stem of `words` and one of `other_stems` differ only by a flipping prefix pair (up/down, en/de ...)."""
    for stem in words.values():
        for left, right, minimum in _PREFIX_PAIRS:
            if stem.startswith(left) and len(stem) - len(left) >= minimum and right + stem[len(left) :] in other_stems:
                return True
            if (
                stem.startswith(right)
                and len(stem) - len(right) >= minimum
                and left + stem[len(right) :] in other_stems
            ):
                return True
    return False


def _same_name(name: str, other: Facts) -> bool:
    """`name` occurs in the other text, allowing case, "git hub" spacing, a typo in a long name, a demonym."""
    if name.startswith("variant:"):
        return name in other.names  # a single letter only matches the same letter used as a label
    key = re.sub(r"[^a-z0-9]", "", name)
    if not key or name in other.words or key in other.words or key in other.pairs:
        return True
    if (key.endswith("s") and key[:-1] in other.words) or key + "s" in other.words:
        return True  # "ATMs" vs "ATM"
    for word in other.words:
        if len(key) >= 6 and len(word) >= 5 and key[0] == word[0] and _edit_distance_at_most_one(key, word):
            return True  # "Kubernets" vs "Kubernetes"
        shorter, longer = (key, word) if len(key) <= len(word) else (word, key)
        root = shorter[:-1] if shorter[-1:] in ("a", "e", "i", "o", "u", "y") else shorter
        if len(root) >= 4 and longer.startswith(root) and longer != shorter and longer.isalpha():
            return True  # "Canada" vs "Canadian", "Japan" vs "Japanese"
    return False


def _names_conflict(a: Facts, b: Facts) -> bool:
    """A substitution: each side has a name the other text does not contain at all."""
    return any(not _same_name(n, b) for n in a.names) and any(not _same_name(n, a) for n in b.names)
