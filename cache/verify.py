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
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from cache import lexicon as lx
from cache.numbers import extract_numbers, is_number
from cache.roles import roles_swapped
from cache.substitution import SubstitutionCheck

__all__ = ["Facts", "LookalikeVerifier", "VerifierConfig"]


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
    substitution: bool = Field(
        default=True,
        description="Reject a question that differs by exactly one content word unless it is a typo or a synonym "
        "(time vs space complexity, ice vs heat).",
    )
    extra_names: list[str] = Field(
        default_factory=list,
        description="Extra entity names (products, plans, cities) recognised even when typed in lowercase.",
    )
    extra_antonyms: list[tuple[str, str]] = Field(
        default_factory=list, description="Extra pairs of opposite words, e.g. [['gold', 'silver']] for plan names."
    )


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
    sequence: tuple[tuple[str, str], ...]  # (word, stem), for the substitution check


class LookalikeVerifier:
    """Decides whether a cached question (candidate) asks the same thing as a new one (query).

    `compatible(query, candidate)` returns (True, None) or (False, reason) with reason one of
    "negation", "antonym", "comparative", "scope", "question", "date", "unit", "number", "name",
    "direction", "substitution". Facts of each text are cached (LRU), so a hot cached question costs its
    extraction once.
    """

    REASONS = (
        "negation", "antonym", "comparative", "scope", "question", "date", "unit", "number", "name", "direction",
        "substitution",
    )  # fmt: skip

    def __init__(self, config: VerifierConfig | None = None, *, cache_size: int = 4096) -> None:
        self.config = config or VerifierConfig()
        groups = {name: dict(poles) for name, poles in lx.ANTONYM_GROUPS.items()}
        for number, (left, right) in enumerate(self.config.extra_antonyms):
            groups[f"extra{number}"] = {"+": left.lower(), "-": right.lower()}
        self._antonyms = _polarity_index(groups, exact=False)
        self._comparatives = _polarity_index(lx.COMPARATIVE_GROUPS, exact=True)
        self._lexicon = lx.LEXICON | {name.lower() for name in self.config.extra_names}
        self._lowercase_names = (
            self._lexicon - lx.NOT_NAMES - set(lx.MONTHS) - set(lx.WEEKDAYS) - {"may", "march"} - set(lx.UNITS_ANYWHERE)
        )
        self._substitution = SubstitutionCheck(_stem, _edit_distance_at_most_one, self._same_pole)
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
        if config.question and _question_conflict(a.question, b.question):
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
        if config.direction and (
            any((y, x) in b.directions for x, y in a.directions if x != y) or roles_swapped(a.sequence, b.sequence)
        ):
            return False, "direction"
        if config.substitution and self._substitution.swapped(a.sequence, b.sequence) is not None:
            return False, "substitution"
        return True, None

    def _same_pole(self, x: str, y: str) -> bool:
        """Both words sit on the same pole of one polarity group (remove/delete): synonyms, not a swap."""
        poles_y = set(self._antonyms.get(y, ()))
        return any(entry in poles_y for entry in self._antonyms.get(x, ()))

    # -------------------------------------------------------------------------------------------- extraction

    def _extract(self, text: str) -> Facts:
        raw = unicodedata.normalize("NFKC", text)
        raw = raw.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
        raw = raw.replace("–", "-").replace("—", " - ")
        raw = lx.ALIASES(lx.SPECIALS(raw))
        raw = lx.ISO_DATE.sub(
            lambda m: f" {lx.MONTH_NUMBERS[min(max(int(m.group(2)), 1), 12) - 1]} {int(m.group(3))} {m.group(1)} ", raw
        )
        names = self._names(raw)

        low = raw.lower()
        low = lx.PHRASES(lx.FILLER.sub(" ", lx.CONTRACTIONS(low)).strip())

        joined_hyphens = re.sub(r"(?<=[a-z])-(?=[a-z])", "", low)
        words = [w for w in lx.WORD.findall(joined_hyphens.replace("'", " ")) if w]
        word_set = frozenset(words)

        numbers, units_with_number, number_positions, times, years = extract_numbers(low)
        dates = self._dates(words, times, years)
        units_bare = (
            frozenset(
                lx.UNITS_ANYWHERE[w]
                for i, w in enumerate(words)
                if w in lx.UNITS_ANYWHERE and i not in number_positions
            )
            - units_with_number
        )
        # Time words that name a date ("next week") are dates, not units.
        if any(d.startswith("rel:") for d in dates):
            units_bare = units_bare - lx.TIME_UNITS
        # "pounds" next to another currency or a money word is sterling, not weight.
        if (units_with_number | units_bare) & lx.CURRENCIES or (
            word_set & lx.MONEY_WORDS and not word_set & lx.MASS_WORDS
        ):
            units_with_number = _swap(units_with_number, "lb", "gbp")
            units_bare = _swap(units_bare, "lb", "gbp")

        scope_text = lx.SCOPE_IDIOMS.sub(" ", joined_hyphens)
        scope_words = lx.WORD.findall(scope_text)
        # A wh-word asks only near the start or after a verb of asking; "crash when I open it" is a clause.
        question = {
            lx.QUESTION[w] for i, w in enumerate(words) if w in lx.QUESTION and (i < 2 or words[i - 1] in lx.ASKING)
        }
        question |= {lx.QUESTION_PHRASE_KIND[m.group(0)] for m in lx.QUESTION_PHRASES.finditer(low)}

        return Facts(
            words=word_set,
            stems={w: _stem(w) for w in word_set},
            pairs=frozenset(first + second for first, second in zip(words, words[1:], strict=False)),
            negated=any(w in lx.NEGATIONS for w in words),
            antonyms=self._poles(words, self._antonyms),
            comparatives=self._poles(words, self._comparatives, after_how=False),
            scope=frozenset(lx.SCOPE[w] for w in scope_words if w in lx.SCOPE),
            only=any(w in lx.ONLY for w in scope_words),
            question=frozenset(question),
            dates=dates,
            numbers=numbers,
            identifiers=frozenset(w for w in words if lx.IDENTIFIER.fullmatch(w) and not lx.UNIT_SUFFIX.fullmatch(w)),
            units_with_number=units_with_number,
            units_bare=units_bare,
            names=names,
            directions=self._directions(words, names),
            sequence=self._substitution.sequence(words),
        )

    def _names(self, raw: str) -> tuple[str, ...]:
        """Lowercased names in order: lexicon words anywhere; capitalised words that do not open a sentence,
        inner capitals (GitHub, iPhone) and acronyms (AWS, PDF), unless the whole text is Title Case or shouted."""
        tokens: list[tuple[str, bool, str]] = []  # (token, opens a sentence, previous token)
        position = 0
        previous = ""
        for match in lx.NAME_TOKEN.finditer(raw):
            between = raw[position : match.start()]
            opens = not tokens or (between != " " and not lx.BREAKS.isdisjoint(between))
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
                if lower in self._lowercase_names and not (lower in lx.UNITS_AFTER_NUMBER and before[:1].isdigit()):
                    found.append(lower)
                continue
            if len(token) == 1 and token.isupper() and token != "I" and not opens:
                found.append(f"variant:{lower}")  # "Plan A", "Model S", "vitamin D", "size L"
                continue
            if lower in lx.NOT_NAMES or lower in lx.MONTHS or lower in lx.WEEKDAYS or lower in ("may", "march"):
                continue
            if lower in lx.UNITS_ANYWHERE or (lower in lx.UNITS_AFTER_NUMBER and before[:1].isdigit()):
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

    def _dates(self, words: Sequence[str], times: set[str], years: set[str]) -> frozenset[str]:
        dates: set[str] = set(times) | {f"year:{y}" for y in years}
        for index, word in enumerate(words):
            before = words[index - 1] if index > 0 else ""
            after = words[index + 1] if index + 1 < len(words) else ""
            if word in lx.MONTHS:
                if word in ("jan", "mar", "sep", "dec", "oct") and not (is_number(before) or is_number(after)):
                    continue  # too short to trust without a day number: "dec" could be decimal
                dates.add(lx.MONTHS[word])
            elif word == "may" and (is_number(before) or is_number(after) or before in lx.DATE_CONTEXT):
                dates.add("may")
            elif word == "march" or (word == "mar" and (is_number(before) or is_number(after))):
                dates.add("mar")
            elif word in lx.WEEKDAYS:
                dates.add(lx.WEEKDAYS[word])
            elif word in lx.DAY_WORDS:
                dates.add(lx.DAY_WORDS[word])
            elif word in lx.AMBIGUOUS_SEASONS and (
                before in lx.DATE_CONTEXT
                or before in lx.RELATIVE
                or (before == "the" and index > 1 and words[index - 2] in ("in", "during", "until", "by", "since"))
            ):  # "in the fall", not "the fall of Rome"
                dates.add(lx.AMBIGUOUS_SEASONS[word])
            if word in lx.RELATIVE and after.rstrip("s") in lx.PERIODS | set(lx.WEEKDAYS) | set(lx.MONTHS):
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
            if word in lx.NEEDS_NUMBER_AFTER:
                after = words[position + 1] if position + 1 < len(words) else ""
                if not (is_number(after) or after in lx.NUMBER_UNITS or after in lx.NUMBER_TENS):
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
                if words[position] not in lx.FILLER_WORDS and words[position] != "from":
                    return words[position], position
            return None

        for index, word in enumerate(words):
            if word == "from" or word in lx.DIRECTION_VERBS:
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
                if all(w in lx.UNITS_ANYWHERE or w in names for w in (left, right)):
                    found.add((left, right))
            if word == "than" and index >= 2:
                after = next_content(index + 1)
                position = index - 2  # skip the comparative itself
                while position >= 0 and words[position] in lx.THAN_SKIP:
                    position -= 1
                if after is not None and position >= 0:
                    found.add((words[position], after[0]))
        return frozenset(found)


def _question_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """Wh-kinds (why/when/where/who) and how-kinds (how far, how big ...) are compared each within its family,
    so "How old is X?" and "When was X born?" (a paraphrase across families) are not told apart. "How much" and
    "how many" ask for whatever the next noun names ("how much sleep" == "how many hours"), so they match any kind."""
    for family in (
        lambda kind: not kind.startswith("how:"),
        lambda kind: kind.startswith("how:") and kind != "how:amount",
    ):
        left = {kind for kind in a if family(kind)}
        right = {kind for kind in b if family(kind)}
        if left and right and left != right:
            return True
    return False


def _swap(units: frozenset[str], old: str, new: str) -> frozenset[str]:
    return (units - {old}) | {new} if old in units else units


def _dimension_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both texts name a unit of the same dimension, and not the same units (hours vs minutes, USD vs EUR)."""
    if not a or not b:
        return False
    dimensions_b = {lx.DIMENSIONS.get(unit, unit) for unit in b}
    for dimension in {lx.DIMENSIONS.get(unit, unit) for unit in a} & dimensions_b:
        if {u for u in a if lx.DIMENSIONS.get(u, u) == dimension} != {
            u for u in b if lx.DIMENSIONS.get(u, u) == dimension
        }:
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
        for prefix, minimum in lx.NEGATING_PREFIXES:
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
        for left, right, minimum in lx.PREFIX_PAIRS:
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
