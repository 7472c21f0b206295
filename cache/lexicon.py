"""Word lists and rewrite rules of the look-alike verifier (cache/verify.py): the data, kept apart from the logic."""

from __future__ import annotations

import re
from collections.abc import Sequence


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class Rewriter:
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

NUMBER_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
    "eleventh": 11, "twelfth": 12, "dozen": 12, "twice": 2, "thrice": 3,
}  # fmt: skip
NUMBER_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
NUMBER_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
# "one" is a pronoun as often as a count: "which one", "this one", "one of", "no one".
ONE_NOT_A_COUNT_BEFORE = words(
    "which this that the each every any no some another a an other last right wrong same new little favorite "
    "favourite first second only quick"
)
ONE_NOT_A_COUNT_AFTER = words("of another by thing")

NEGATIONS = words("not no never without none nothing nobody nowhere neither nor cannot unable noone")

MONTHS = {
    "january": "jan", "february": "feb", "march": "mar", "april": "apr", "june": "jun", "july": "jul",
    "august": "aug", "september": "sep", "october": "oct", "november": "nov", "december": "dec",
    "jan": "jan", "feb": "feb", "apr": "apr", "jun": "jun", "jul": "jul", "aug": "aug", "sep": "sep",
    "sept": "sep", "oct": "oct", "nov": "nov", "dec": "dec",
}  # fmt: skip
MONTH_NUMBERS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
    "saturday": "sat", "sunday": "sun", "mon": "mon", "tue": "tue", "tues": "tue", "thu": "thu",
    "thur": "thu", "thurs": "thu", "fri": "fri", "weekend": "weekend", "weekday": "weekday", "weekdays": "weekday",
    "weekends": "weekend", "mondays": "mon", "tuesdays": "tue", "wednesdays": "wed", "thursdays": "thu",
    "fridays": "fri", "saturdays": "sat", "sundays": "sun",
}  # fmt: skip
DAY_WORDS = {
    "today": "today", "tonight": "tonight", "tomorrow": "tomorrow", "yesterday": "yesterday",
    "morning": "morning", "mornings": "morning", "afternoon": "afternoon", "afternoons": "afternoon",
    "evening": "evening", "evenings": "evening", "night": "night", "nights": "night", "overnight": "night",
    "noon": "12:00", "midday": "12:00", "midnight": "00:00", "christmas": "christmas", "xmas": "christmas",
    "easter": "easter", "thanksgiving": "thanksgiving", "halloween": "halloween", "ramadan": "ramadan",
    "diwali": "diwali", "hanukkah": "hanukkah", "summer": "summer", "winter": "winter", "autumn": "autumn",
}  # fmt: skip
AMBIGUOUS_SEASONS = {"spring": "spring", "fall": "autumn"}
RELATIVE = words("this next last previous past coming following")
PERIODS = words("week month year quarter weekend decade century")
DATE_CONTEXT = words("in on of since until till by from through during early late mid before after")

# Canonical unit per spelling. Short spellings that are also common words only count right after a number.
UNITS_ANYWHERE = {
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
    # Canonical tokens written by the compound-unit rewrites in PHRASES.
    "nmi": "nmi", "lightyear": "lightyear", "mps": "mps", "ftps": "ftps", "sqm": "sqm", "sqkm": "sqkm",
    "sqmi": "sqmi", "sqin": "sqin", "cum": "cum", "cuft": "cuft", "cuin": "cuin", "floz": "floz",
    "longton": "longton", "ozt": "ozt", "impgallon": "impgallon", "imppint": "imppint", "cuyd": "cuyd",
    "sqyd": "sqyd", "kj": "kj", "kilojoule": "kj", "kilojoules": "kj",
}  # fmt: skip
UNITS_AFTER_NUMBER = {
    **UNITS_ANYWHERE,
    "m": "m", "g": "g", "mi": "mile", "sec": "s", "min": "min", "h": "h", "hr": "h",
    "ms": "ms", "l": "l", "c": "celsius", "f": "fahrenheit", "k": "thousand", "w": "w", "v": "v", "db": "db",
    "em": "em", "yd": "yard", "gal": "gallon", "bn": "billion", "mins": "min", "deg": "deg",
    "degree": "deg", "degrees": "deg", "°": "deg", "x": "times", "bar": "bar", "kpa": "kpa", "pa": "pa",
    "cc": "ml", "mpg": "mpg",
}  # fmt: skip
CURRENCIES = words("usd eur gbp jpy inr cad aud chf cny peso btc eth")
MONEY_WORDS = words("price prices cost costs pay paid worth money exchange cash salary rent fee fees charge spend")
MASS_WORDS = words("weigh weighs weight heavy mass kg kilograms kilogram grams ounces stone")
# Codes mixing letters and digits (seat 22A, apartment 4B, model S23) are compared whole ...
IDENTIFIER = re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]+")
# ... unless the letters are only a unit, multiplier or ordinal suffix (16gb, 10k, 21st, 3pm, 1990s); single
# letters other than k/s/x stay identifiers: "22c" is a seat more often than 22 degrees Celsius.
UNIT_SUFFIX = re.compile(
    r"\d+(?:st|nd|rd|th|s|k|x|am|pm|gb|mb|kb|tb|km|kg|mg|cm|mm|ml|hr|hrs|min|mins|ms|sec|secs|mph|kph|"
    r"mbps|gbps|kbps|px|pt|em|rem|dpi|fps|hz|khz|mhz|ghz|wh|kwh|mah|kw|lb|lbs|oz|ft|mi|bn|cc|psi)"
)
CURRENCY_SYMBOLS = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy", "₹": "inr"}
TIME_UNITS = words("s min h day week month year ms us")
# Bare units ("how many calories per day") only contradict a unit of the same dimension ("per week").
DIMENSIONS = {
    **dict.fromkeys(words("km mile m cm mm inch ft yard nmi lightyear"), "length"),
    **dict.fromkeys(words("kg g mg lb oz ton tonne stone longton ozt"), "mass"),
    **dict.fromkeys(words("celsius fahrenheit kelvin deg"), "temperature"),
    **dict.fromkeys(words("byte kb mb gb tb kib mib gib tib bit mbit gbit"), "data"),
    **dict.fromkeys(words("kbps mbps gbps"), "bandwidth"),
    **dict.fromkeys(words("usd eur gbp jpy inr cad aud chf cny peso btc eth"), "currency"),
    **dict.fromkeys(TIME_UNITS, "time"),
    **dict.fromkeys(words("l ml gallon cup tbsp tsp pint quart cum cuft cuin cuyd floz impgallon imppint"), "volume"),
    **dict.fromkeys(words("mph kph knot mps ftps"), "speed"),
    **dict.fromkeys(words("w kw"), "power"),
    **dict.fromkeys(words("kwh wh mah kcal j kj"), "energy"),
    **dict.fromkeys(words("psi bar kpa pa"), "pressure"),
    **dict.fromkeys(words("hz khz mhz ghz rpm"), "frequency"),
    **dict.fromkeys(words("px pt rem em dpi"), "screen"),
    **dict.fromkeys(words("acre hectare sqft sqm sqkm sqmi sqin sqyd"), "area"),
}

# Polarity groups: words in one group with different poles contradict each other. Verbs are inflected
# automatically (enable -> enables, enabled, enabling).
ANTONYM_GROUPS: dict[str, dict[str, str]] = {
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
    "crypt": {"+": "encrypt encode compress zip archive", "-": "decrypt decode decompress unzip extract unarchive"},
    "tension": {"+": "tighten tight", "-": "loosen loose slack"},
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
COMPARATIVE_GROUPS: dict[str, dict[str, str]] = {
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
NEEDS_NUMBER_AFTER = frozenset({"over", "under"})

# Prefix pairs that flip meaning on the same stem: upload/download, encrypt/decrypt, import/export ...
PREFIX_PAIRS: tuple[tuple[str, str, int], ...] = (
    ("up", "down", 3), ("in", "out", 3), ("over", "under", 3), ("pre", "post", 3), ("en", "de", 3),
    ("en", "dis", 3), ("im", "ex", 4), ("in", "ex", 4), ("in", "de", 4), ("super", "sub", 3),
    ("upper", "lower", 3), ("start", "end", 3), ("max", "min", 3),
)  # fmt: skip
# Negating prefixes: valid/invalid, install/uninstall, connect/disconnect, possible/impossible ...
NEGATING_PREFIXES: tuple[tuple[str, int], ...] = (
    ("un", 3), ("dis", 3), ("non", 3), ("in", 5), ("im", 5), ("il", 5), ("ir", 5), ("de", 4), ("anti", 3),
)  # fmt: skip

SCOPE: dict[str, str] = {
    **dict.fromkeys(words("all every each everything everyone everybody always entire whole everywhere"), "all"),
    **dict.fromkeys(
        words("any some anything something anyone someone anybody somebody sometimes somewhere anywhere"), "some"
    ),
    **dict.fromkeys(words("none nothing nobody noone neither"), "none"),
    **dict.fromkeys(words("both"), "both"),
    **dict.fromkeys(words("either"), "either"),
    **dict.fromkeys(words("most majority mostly"), "most"),
    **dict.fromkeys(words("few rarely seldom"), "few"),
    **dict.fromkeys(words("several many often usually"), "many"),
}
ONLY = words("only solely exclusively")
SCOPE_IDIOMS = re.compile(
    r"\b(?:at all|all right|all set|first of all|after all|all in all|once and for all|any more|anymore|"
    r"how many|how much|how often|by any chance|any idea|in any case|some help)\b"
)

QUESTION = {"why": "why", "where": "where", "when": "when", "who": "who", "whom": "who", "whose": "who"}
ASKING = words("me know wondering wonder explain understand curious ask asking about and or")
QUESTION_PHRASES = re.compile(
    r"\b(?:how come|what causes|what caused|what is the reason|what's the reason|reason why|for what reason)\b"
    r"|\b(?:what time|what day|what date|how soon|by when)\b|\b(?:what place|which location)\b"
    r"|\bhow (?:much time|many (?:seconds|minutes|hours|days|weeks|months|years|times))\b"
    r"|\bhow (?:far|big|large|small|tall|high|old|heavy|fast|quickly|often|frequently|deep|wide|hot|cold|warm"
    r"|many|much|expensive|cheap|long|likely)\b"
)
QUESTION_PHRASE_KIND = {
    "how come": "why", "what causes": "why", "what caused": "why", "what is the reason": "why",
    "what's the reason": "why", "reason why": "why", "for what reason": "why", "what time": "when",
    "what day": "when", "what date": "when", "how soon": "when", "by when": "when", "what place": "where",
    "which location": "where",
    # "How <adjective>" names the quantity asked about: "how far" and "how big" are different questions.
    "how far": "how:distance", "how big": "how:size", "how large": "how:size", "how small": "how:size",
    "how tall": "how:height", "how high": "how:height", "how old": "how:age", "how heavy": "how:weight",
    "how fast": "how:speed", "how quickly": "how:speed", "how often": "how:frequency",
    "how frequently": "how:frequency", "how deep": "how:depth", "how wide": "how:width",
    "how hot": "how:temperature", "how cold": "how:temperature", "how warm": "how:temperature",
    "how many": "how:amount", "how much": "how:amount", "how expensive": "how:amount", "how cheap": "how:amount",
    "how long": "how:long", "how likely": "how:likelihood",
    # ... but "how much time" and "how many days" ask how long, and "how many times" how often.
    "how much time": "how:long", "how many times": "how:frequency",
    **{f"how many {unit}": "how:long" for unit in ("seconds", "minutes", "hours", "days", "weeks", "months", "years")},
}  # fmt: skip

# Entities users often type in lowercase. Capitalised words mid-sentence are names anyway.
LEXICON = words("""
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
ALIASES = Rewriter(
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
SPECIALS = Rewriter(
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
NOT_NAMES = words(
    "i i'm i've i'd i'll ok okay hi hello hey thanks thank please mr mrs ms dr sir madam faq asap fyi btw pls plz "
    "am pm tl;dr imo imho q a id eta diy dataframe dataframes nan readme todo"
)

CONTRACTIONS = Rewriter(
    (
        ("can", r"\bcan't\b|\bcant\b|\bcannot\b", "can not"),
        ("wo", r"\bwon't\b|\bwont\b", "will not"),
        ("shan't", r"\bshan't\b", "shall not"),
        ("n't", r"n't\b", " not"),
        ("nt", r"\b(do|does|did|is|are|was|were|has|have|had|could|should|would|must|need)nt\b", r"\1 not"),
        # "fail to pay" / "forget to pay" assert that something did not happen.
        ("fail|forg", r"\b(?:fail|fails|failed|failing|forget|forgets|forgot|forgetting) to\b", " not "),
        ("'s", r"'s\b", ""),
        ("'", r"'(?:re|ve|ll|d|m)\b", ""),
    )
)
# "I'm not sure how to ...", "I don't know how to ..." are politeness, not a negated question.
FILLER = re.compile(
    r"\b(?:i am |i )?(?:not sure|do not know|do not understand|have no idea|no idea|can not figure out|"
    r"can not remember|can not work out|not certain)(?= (?:how|what|why|where|when|which|who|if|whether)\b)"
    r"|^(?:hi|hello|hey|good (?:morning|afternoon|evening))\b[ ,!.]*|\bthanks?(?: you)?(?: in advance)?\b"
    r"|\bor not\b"
)
WORD = re.compile(r"[a-z0-9%°]+(?:\.[0-9]+)*")
NUMERIC_TOKEN = re.compile(r"[$€£¥₹%°]|\d+(?:[.,:]\d+)*|[a-z]+")
THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
ISO_DATE = re.compile(r"\b((?:19|20)\d{2})-(\d{1,2})-(\d{1,2})\b")
BREAKS = frozenset('.!?;:\n"(')
NAME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9&+']*")
PHRASES = Rewriter(
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
        # A modifier or a "per" turns a unit into another one: nautical miles are not miles, m/s is not m.
        ("nautical", r"\bnautical miles?\b", " nmi "),
        ("light", r"\blight ?years?\b", " lightyear "),
        ("per |/", r"\b(?:meters?|metres?|m) ?(?:per|/) ?(?:second|sec|s)\b", " mps "),
        ("per |/", r"\b(?:feet|foot|ft) ?(?:per|/) ?(?:second|sec|s)\b", " ftps "),
        ("per |/", r"\b(?:kilometers?|kilometres?|km) ?(?:per|/) ?(?:hour|hr|h)\b", " kph "),
        ("per |/", r"\b(?:miles?|mi) ?(?:per|/) ?(?:hour|hr|h)\b", " mph "),
        ("square|sq ", r"\b(?:square|sq) ?(?:feet|foot|ft)\b", " sqft "),
        ("square|sq ", r"\b(?:square|sq) ?(?:meters?|metres?|m)\b", " sqm "),
        ("square|sq ", r"\b(?:square|sq) ?(?:kilometers?|kilometres?|km)\b", " sqkm "),
        ("square|sq ", r"\b(?:square|sq) ?(?:miles?|mi)\b", " sqmi "),
        ("square|sq ", r"\b(?:square|sq) ?(?:inch|inches|in)\b", " sqin "),
        ("square|sq ", r"\b(?:square|sq) ?(?:yards?|yd)\b", " sqyd "),
        ("cubic", r"\bcubic (?:meters?|metres?|m)\b", " cum "),
        ("cubic", r"\bcubic (?:feet|foot|ft)\b", " cuft "),
        ("cubic", r"\bcubic (?:inch|inches|in)\b", " cuin "),
        ("cubic", r"\bcubic (?:yards?|yd)\b", " cuyd "),
        ("cubic", r"\bcubic (?:centimeters?|centimetres?|cm)\b", " ml "),
        ("fl", r"\b(?:fluid ounces?|fl\.? ?oz)\b", " floz "),
        ("metric ton", r"\bmetric tons?\b", " tonne "),
        ("long ton", r"\blong tons?\b", " longton "),
        ("troy", r"\btroy ounces?\b", " ozt "),
        ("imperial", r"\bimperial (?:gallons?)\b", " impgallon "),
        ("imperial", r"\bimperial (?:pints?)\b", " imppint "),
        ("current", r"\bcurrent (?:date|day)\b", " today date "),
    )
)
DIRECTION_VERBS = words("convert converting translate translating migrate migrating switch switching")
FILLER_WORDS = words("the a an my our your this that these those some its their his her")
THAN_SKIP = words("is are was were be been much far a lot way even more less any slightly significantly really")


# ------------------------------------------------------------------------------------------------ helpers
