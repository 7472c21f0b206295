"""Difficulty scorers: one number in [0, 1] per request ("how hard"), CPU only, no LLM call."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from router.config import FeatureWeights

_CODE = re.compile(
    r"```|\bdef |\bclass |\breturn\b|;\s*$|\{\s*$|#include|\bfunction\b|\bSELECT\b|=>|\bimport\b|"
    r"\b(code|python|javascript|typescript|rust|golang|java|sql|regex|function|compile|debug|algorithm)\b",
    re.IGNORECASE | re.MULTILINE,
)
_MATH = re.compile(
    r"\d+\s*[-+*/^=]\s*\d+|\\frac|\\sum|\\int|∫|∑|√|\b(integral|derivative|prove|proof|theorem|equation|"
    r"solve|calculate|compute|probability|matrix|eigen\w*|lemma)\b",
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"\b(why|explain|step[- ]by[- ]step|compare|analy[sz]e|trade-?offs?|justify|derive|design|evaluate|"
    r"reason|implications?|pros and cons|what would happen)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RouteInput:
    """What a scorer may look at: the text to judge, the requested length, the conversation depth and
    the request's embedding (computed once by the cache; None when the cache was bypassed)."""

    text: str
    max_tokens: int | None = None
    earlier_turns: int = 0
    embedding: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class Features:
    length: float
    code: float
    math: float
    reasoning: float
    output_length: float
    turns: float


class Scorer(Protocol):
    def score(self, request: RouteInput) -> float: ...


def extract_features(request: RouteInput) -> Features:
    words = len(request.text.split())
    return Features(
        length=max(0.0, math.log2(max(words, 1) / 16)),
        code=1.0 if _CODE.search(request.text) else 0.0,
        math=1.0 if _MATH.search(request.text) else 0.0,
        reasoning=min(2.0, float(len(_REASONING.findall(request.text)))),
        output_length=max(0.0, math.log2(request.max_tokens / 256)) if request.max_tokens else 0.0,
        turns=float(request.earlier_turns),
    )


class HeuristicScorer:
    """A logistic over hand-weighted surface features; a trained scorer replaces it behind the same Protocol."""

    def __init__(self, weights: FeatureWeights) -> None:
        self._weights = weights

    def logit(self, features: Features) -> float:
        w = self._weights
        return (
            w.bias
            + w.length * features.length
            + w.code * features.code
            + w.math * features.math
            + w.reasoning * features.reasoning
            + w.output_length * features.output_length
            + w.turns * features.turns
        )

    def score(self, request: RouteInput) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(extract_features(request))))
