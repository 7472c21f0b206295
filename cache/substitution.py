"""The minimal-edit check: a look-alike is usually the same question with exactly one word swapped.

Blind-written trap sets taught us that word lists never end: "ice" vs "heat", "time complexity" vs "space
complexity", "penalty" vs "process", "first occurrence" vs "every occurrence". What those traps share is their
*shape*: every word is the same except one content word. Real paraphrases rarely keep every other word while
swapping a single one, and when they do, the two words are a spelling variant ("diffrence") or a common synonym
("restart" / "reboot"). So a single content-word substitution is rejected unless it is one of those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cache.lexicon import words

# Words whose swap never changes the answer on their own: function words, question words, politeness, and light
# verbs ("how do I get dark mode" == "how do I enable dark mode").
NEUTRAL = words("""
    a an the my our your this that these those some its their his her i me you u we it is are was were be been am
    do does did can could should would will shall may might must to of in on for with at by from and or how what
    which there here have has had if so just really please pls thanks hey hi ok okay also still even ever yet
    get gets got getting go goes going
""")

# Synonym groups seen in paraphrases: swapping inside a group keeps the question. Same-pole words of the
# antonym groups (remove/delete, add/insert) are synonyms too; the verifier passes that test in.
SYNONYM_GROUPS = (
    "change update modify edit alter amend adjust",
    "restart reboot",
    "invent create make build develop design",
    "buy purchase order",
    "begin start commence",
    "fix repair solve resolve troubleshoot",
    "big large huge",
    "tall high",
    "small little tiny",
    "get obtain receive",
    "show display",
    "pick choose select",
    "cost price charge fee",
    "quick fast rapid speedy",
    "car vehicle automobile auto",
    "phone mobile cellphone smartphone",
    "pc computer laptop desktop",
    "movie film",
    "kid child",
    "job career occupation",
    "doctor physician",
    "shop store",
    "error issue problem bug glitch",
    "use utilize utilise employ",
    "need require",
    "help assist support",
    "tell explain describe",
    "see view check find",
    "way method approach",
    "step procedure process",
    "mean meaning definition",
    "cancel terminate",
    "send transfer",
    "sleep rest",
    "connect link",
    "trip journey travel",
    "cheap inexpensive affordable",
    "reset restore",
    "allowed permitted",
    "refund reimbursement",
)


def _synonym_index() -> dict[str, int]:
    index: dict[str, int] = {}
    for number, group in enumerate(SYNONYM_GROUPS):
        for word in group.split():
            index.setdefault(word, number)
    return index


class SubstitutionCheck:
    """Finds the one swapped content word between two word sequences, if that is all that differs."""

    def __init__(
        self,
        stem: Callable[[str], str],
        close_spelling: Callable[[str, str], bool],
        same_pole: Callable[[str, str], bool],
    ) -> None:
        self._stem = stem
        self._close_spelling = close_spelling
        self._same_pole = same_pole
        self._synonyms = {self._stem(word): group for word, group in _synonym_index().items()}

    def sequence(self, words: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """The comparable form of a text, as (word, stem) pairs: its words, articles and possessives dropped
        ("a flight" == "the flight"). Stemmed here, once per text, because the verifier caches the result.
        Dropping every function word was measured to turn ~30 dev paraphrases into one-word swaps
        ("How old is X" vs "What is the age of X"), so only these go."""
        return tuple((word, self._stem(word)) for word in words if word not in ARTICLES)

    def swapped(self, a: Sequence[tuple[str, str]], b: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
        """(word in a, word in b) when a and b differ by exactly one non-synonymous content word, else None."""
        if len(a) != len(b) or len(a) < 3:
            return None
        differences = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x[1] != y[1]]
        if len(differences) != 1:
            return None
        return self._meaningful(a[differences[0]], b[differences[0]])

    def _meaningful(self, first: tuple[str, str], second: tuple[str, str]) -> tuple[str, str] | None:
        (x, stem_x), (y, stem_y) = first, second
        if x in NEUTRAL or y in NEUTRAL or any(c.isdigit() for c in x + y):
            return None  # numbers and codes have their own check; function words are paraphrase noise
        if self._close_spelling(x, y) or self._close_spelling(stem_x, stem_y):
            return None  # typos and inflections
        if stem_x.startswith(stem_y) or stem_y.startswith(stem_x):
            return None  # "organize" / "organization"
        group_x, group_y = self._synonyms.get(stem_x), self._synonyms.get(stem_y)
        if group_x is not None and group_x == group_y:
            return None
        if self._same_pole(x, y):
            return None
        return x, y


ARTICLES = words("a an the my our your its their his her")
