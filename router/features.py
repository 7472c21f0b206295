"""Cheap surface features of a request: length, code, math, multi-step reasoning cues, requested output
length and conversation depth. Pure Python + regexes, a few microseconds for a typical prompt."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["SURFACE_FEATURES", "Features", "RouteInput", "extract_features", "surface_vector"]

# Regexes look at a bounded prefix and suffix: a 100k-character prompt must not cost 100x a short one,
# and the cues that matter (the instruction, the question) sit at the start or the end.
_SCAN_HEAD = 1500
_SCAN_TAIL = 500

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")

# The cues, as word sets over the lower-cased tokens (code, math and multi-step reasoning vocabulary).
_TOKEN = re.compile(r"[a-z]+")
_CODE_WORDS = frozenset(
    [
        "code",
        "python",
        "javascript",
        "typescript",
        "rust",
        "golang",
        "java",
        "sql",
        "regex",
        "function",
        "compile",
        "debug",
        "algorithm",
        "return",
        "import",
        "select",
    ]
)
_MATH_WORDS = frozenset(
    [
        "integral",
        "derivative",
        "prove",
        "proof",
        "theorem",
        "equation",
        "solve",
        "calculate",
        "compute",
        "probability",
        "matrix",
        "lemma",
    ]
)
_REASONING_WORDS = frozenset(
    [
        "why",
        "explain",
        "compare",
        "analyze",
        "analyse",
        "tradeoff",
        "tradeoffs",
        "justify",
        "derive",
        "design",
        "evaluate",
        "reason",
        "implication",
        "implications",
    ]
)
_REASONING_PHRASES = ("step by step", "step-by-step", "trade-off", "pros and cons", "what would happen")
# "Which of the following is NOT ...", "all of the above": questions that ask to reject, or to combine.
_NEGATION_WORDS = frozenset(["not", "except", "false", "incorrect", "least", "never"])
_NEGATION_PHRASES = ("none of", "all of the")
_CODE_MARKS = ("```", "def ", "class ", "#include", "=>")
_MATH_MARKS = ("\\frac", "\\sum", "\\int", "∫", "∑", "√")
_OPERATOR = re.compile(r"[-+*/^=]")
_DROP_DIGITS = str.maketrans("", "", "0123456789")

# The order of the trained model's surface features (the weights file names them, and must match).
SURFACE_FEATURES: tuple[str, ...] = (
    "log_words",
    "log_chars_per_word",
    "log_lines",
    "code",
    "math_cues",
    "reasoning_cues",
    "negation_cues",
    "log_numbers",
    "digit_share",
    "long_word_share",
    "questions",
)


@dataclass(frozen=True)
class RouteInput:
    """What a scorer may look at: the text to judge, the requested length, the conversation depth and
    the request's embedding (computed once per request; None when no embedder ran)."""

    text: str
    max_tokens: int | None = None
    earlier_turns: int = 0
    embedding: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class Features:
    """The heuristic scorer's features (also the priors the trained scorer adds for output length and depth)."""

    length: float
    code: float
    math: float
    reasoning: float
    output_length: float
    turns: float


def _scanned(text: str) -> str:
    if len(text) <= _SCAN_HEAD + _SCAN_TAIL:
        return text
    return text[:_SCAN_HEAD] + "\n" + text[-_SCAN_TAIL:]


def output_length_feature(max_tokens: int | None) -> float:
    """log2 of the requested completion length beyond 256 tokens (0 when unset or shorter)."""
    return max(0.0, math.log2(max_tokens / 256)) if max_tokens else 0.0


def extract_features(request: RouteInput) -> Features:
    """The heuristic scorer's features, from the same single scan as the trained scorer's (cached per text, so
    the default blend of both scores pays for one scan)."""
    scan = _scan(request.text)
    return Features(
        length=max(0.0, math.log2(max(scan.words, 1) / 16)),
        code=float(scan.code),
        math=1.0 if scan.math_cues else 0.0,
        reasoning=min(2.0, float(scan.reasoning)),
        output_length=output_length_feature(request.max_tokens),
        turns=float(request.earlier_turns),
    )


def _arithmetic(text: str) -> int:
    """How many operators stand between digits ("17 * 23", "x=2+3"): substring scans, no backtracking."""
    count = 0
    for match in _OPERATOR.finditer(text):
        left = text[: match.start()].rstrip()[-1:]
        right = text[match.end() :].lstrip()[:1]
        if left.isdigit() and right.isdigit():
            count += 1
    return count


@dataclass(frozen=True)
class _Scan:
    """Counts from one pass over a text's scanned part."""

    words: int  # estimated for the whole text
    tokens: int
    code: int
    math_cues: int
    reasoning: int
    negation: int
    long_words: int
    numbers: int
    digits: int
    scanned_chars: int
    questions: int


@lru_cache(maxsize=64)  # the blend asks twice in a row for the same text; prompts can be large
def _scan(text: str) -> _Scan:
    """One lower-casing, one tokenising regex and set look-ups instead of many case-insensitive alternations:
    ~10x faster on long prompts, which is what keeps the decision under a millisecond."""
    scanned = _scanned(text)
    lower = scanned.lower()
    tokens = _TOKEN.findall(lower)
    code = math_cues = reasoning = negation = long_words = 0
    for token in tokens:
        if token in _CODE_WORDS:
            code = 1
        elif token in _MATH_WORDS or token.startswith("eigen"):
            math_cues += 1
        elif token in _REASONING_WORDS:
            reasoning += 1
        elif token in _NEGATION_WORDS:
            negation += 1
        if len(token) >= 9:
            long_words += 1
    reasoning += sum(lower.count(phrase) for phrase in _REASONING_PHRASES)
    negation += sum(lower.count(phrase) for phrase in _NEGATION_PHRASES)
    math_cues += _arithmetic(scanned) + sum(mark in scanned for mark in _MATH_MARKS)
    if not code and (
        any(mark in scanned for mark in _CODE_MARKS)
        or any(line.rstrip().endswith((";", "{")) for line in scanned.splitlines())
    ):
        code = 1
    # Words of a very long prompt are estimated from the scanned part: splitting 100k characters costs more
    # than the rest of the decision.
    words = len(scanned.split())
    if len(scanned) < len(text):
        words = int(words * len(text) / len(scanned))
    return _Scan(
        words=words,
        tokens=len(tokens),
        code=code,
        math_cues=math_cues,
        reasoning=reasoning,
        negation=negation,
        long_words=long_words,
        numbers=len(_NUMBER.findall(scanned)),
        digits=len(scanned) - len(scanned.translate(_DROP_DIGITS)),
        scanned_chars=len(scanned),
        questions=scanned.count("?"),
    )


def surface_vector(text: str) -> NDArray[np.float64]:
    """The trained scorer's surface features of one text, in SURFACE_FEATURES order (unscaled)."""
    scan = _scan(text)
    return np.array(
        [
            math.log1p(scan.words),
            math.log(max(len(text), 1) / max(scan.words, 1)),
            math.log1p(text.count("\n")),
            float(scan.code),
            min(4.0, float(scan.math_cues)),
            min(4.0, float(scan.reasoning)),
            min(4.0, float(scan.negation)),
            math.log1p(scan.numbers),
            scan.digits / max(scan.scanned_chars, 1),
            scan.long_words / max(scan.tokens, 1),
            min(4.0, float(scan.questions)),
        ],
        dtype=np.float64,
    )
