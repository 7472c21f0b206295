"""The role-swap check: the same words, but two of them trade places around the word that relates them.

Blind-written trap sets kept passing every word-level check with the direction traps: "merge main into my
feature branch" vs "merge my feature branch into main", "can my landlord sue me" vs "can I sue my landlord",
"3pm London time in New York" vs "3pm New York time in London". Every word is shared; what changed is who
does what to whom. The shape is general: two role words X and Y, and a pivot word P between them in both
texts, with X before P in one text and after it in the other. Paraphrases reorder words too ("plot a
histogram with matplotlib" vs "matplotlib histogram, how to draw one"), but they rarely keep one relating
word *between* the same two words while flipping their sides, so that is what is rejected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher

from cache.lexicon import words
from cache.substitution import NEUTRAL

# The speaker and the addressee are roles ("can I sue my landlord" vs "can my landlord sue me").
PRONOUN_ROLES = {"i": "@self", "me": "@self", "myself": "@self", "we": "@we", "us": "@we", "you": "@you"}

# Words that relate two things symmetrically ("cats and dogs", "X vs Y", "between X and Y"), or only glue
# a question together: never a pivot.
NOT_PIVOTS = words("""
    and or vs versus plus with between both either neither nor than
    how what which why when where who whom whose do does did is are was were be been am
    can could should would will shall may might must if so just please
""")


# How alike the two texts must become once X and Y trade back (difflib ratio over role tokens).
RESTORED_AT_LEAST = 0.8
# Longer texts are not checked: a swap trap is a short question (the longest trap in eight blind rounds has 18
# words), and the search over word pairs would cost seconds on a reordered copy of a long document.
MAX_WORDS = 48


def _roles(sequence: Sequence[tuple[str, str]]) -> list[str]:
    """Each word's role token: its stem, the pronoun's role, or '' for words that cannot fill a role."""
    tokens = []
    for word, stem in sequence:
        if word in PRONOUN_ROLES:
            tokens.append(PRONOUN_ROLES[word])
        elif word in NEUTRAL:
            tokens.append("")
        else:
            tokens.append(stem)
    return tokens


def _pivots(sequence: Sequence[tuple[str, str]]) -> list[str]:
    """Each word's pivot token: its stem, or '' for words that relate nothing (see NOT_PIVOTS)."""
    return ["" if word in NOT_PIVOTS or word in PRONOUN_ROLES else stem for word, stem in sequence]


PREPOSITIONS = words("""
    to into onto from in on at for by of over under about against toward towards through via per as than
""")


def _glue(sequence: Sequence[tuple[str, str]]) -> Counter[str]:
    """The function words of a text (articles and possessives are already gone; pronouns are roles)."""
    return Counter(
        word
        for word, _ in sequence
        if (word in NEUTRAL or word in NOT_PIVOTS or word in PREPOSITIONS) and word not in PRONOUN_ROLES
    )


def _single_positions(tokens: Sequence[str]) -> dict[str, int]:
    """Position of every token that occurs exactly once (a repeated word has no single side)."""
    counts = Counter(tokens)
    return {token: position for position, token in enumerate(tokens) if token and counts[token] == 1}


def roles_swapped(a: Sequence[tuple[str, str]], b: Sequence[tuple[str, str]]) -> tuple[str, str, str] | None:
    """(X, pivot, Y) when X and Y sit on opposite sides of the same pivot in a and b, else None.

    Takes the verifier's (word, stem) sequences (articles and possessives already dropped).
    """
    if max(len(a), len(b)) > MAX_WORDS:
        return None  # the pair search grows with the fourth power of the length; traps are short questions
    glue_a, glue_b = _glue(a), _glue(b)
    if glue_a != glue_b:
        # A trap is the same sentence with two words traded: its function words stay. Paraphrases that
        # reorder ("sphere volume formula" / "formula for the volume of a sphere") change them.
        return None
    roles_a, roles_b = _single_positions(_roles(a)), _single_positions(_roles(b))
    shared_roles = [token for token in roles_a if token in roles_b]
    if len(shared_roles) < 2:
        return None
    pivots_a, pivots_b = _single_positions(_pivots(a)), _single_positions(_pivots(b))
    shared_pivots = [(pivots_a[p], pivots_b[p], p) for p in pivots_a if p in pivots_b]
    tokens_a = [t for t in _roles(a) if t]
    tokens_b = [t for t in _roles(b) if t]
    alike = SequenceMatcher(None, tokens_a, tokens_b, autojunk=False).ratio()
    for i, x in enumerate(shared_roles):
        for y in shared_roles[i + 1 :]:
            xa, ya, xb, yb = roles_a[x], roles_a[y], roles_b[x], roles_b[y]
            if (xa < ya) == (xb < yb):
                continue  # same order in both
            pivot = next(
                (
                    p
                    for pa, pb, p in shared_pivots
                    if p not in (x, y) and min(xa, ya) < pa < max(xa, ya) and min(xb, yb) < pb < max(xb, yb)
                ),
                None,
            )
            if pivot is None:
                continue
            # A paraphrase that fronts its topic ("dark souls first boss, how to beat") also moves words
            # across a pivot; only a trap becomes the other text again when the two words trade back.
            swapped_back = [y if t == x else x if t == y else t for t in tokens_b]
            restored = SequenceMatcher(None, tokens_a, swapped_back, autojunk=False).ratio()
            if restored >= RESTORED_AT_LEAST and restored > alike:
                return x, pivot, y
    return None
