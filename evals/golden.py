"""A golden set: one case a line (JSONL), each a conversation, what a right answer looks like and how to grade it.

    {"id": "capital", "messages": [{"role": "user", "content": "..."}], "expected": "Paris",
     "grader": "contains", "tolerance": 0.0, "request": {"max_tokens": 16}}

Graders score 0..1: `exact` (the whole answer, case and outer space ignored), `regex` (a match anywhere),
`contains` (every expected string, case ignored; `expected` may be a list), `number` (the answer's last
number, as in "2 + 2 = 4", within `tolerance`, absolute), `json_schema` (the answer, code fences stripped, is
JSON valid under `expected`), `similarity` (cosine of the sentence embeddings, scored 1 at or above `tolerance`
(default 0.8), else the cosine), `judge` (the largest tier is asked whether the answer matches `expected`: 1 yes,
0 no). `tolerance` is also how far a case's score may drop against a baseline before the run fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Case", "GoldenSetError", "grade", "load_set"]

Grader = Literal["exact", "regex", "contains", "number", "json_schema", "similarity", "judge"]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


class GoldenSetError(ValueError):
    """A golden set that cannot be read: the message names the file and line."""


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    expected: Any
    grader: Grader
    tolerance: float | None = Field(default=None, ge=0)
    request: dict[str, Any] = Field(default_factory=dict, description="Extra body fields (max_tokens, ...).")

    def name(self, index: int) -> str:
        return self.id or f"case-{index + 1}"


def load_set(path: Path) -> list[Case]:
    if not path.is_file():
        raise GoldenSetError(f"{path}: no such file")
    cases: list[Case] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = Case.model_validate(json.loads(line))
        except (ValueError, ValidationError) as error:
            raise GoldenSetError(f"{path}:{number}: {error}") from None
        if case.grader == "regex":
            try:
                re.compile(str(case.expected))
            except re.error as error:
                raise GoldenSetError(f"{path}:{number}: expected is not a regex: {error}") from None
        cases.append(case)
    if not cases:
        raise GoldenSetError(f"{path}: no cases")
    return cases


Similarity = Callable[[str, str], float]
Judge = Callable[[Case, str], bool]


def grade(case: Case, answer: str, similarity: Similarity | None = None, judge: Judge | None = None) -> float:
    text = answer.strip()
    expected = case.expected
    if case.grader == "exact":
        return float(text.casefold() == str(expected).strip().casefold())
    if case.grader == "regex":
        return float(re.search(str(expected), text, re.IGNORECASE | re.DOTALL) is not None)
    if case.grader == "contains":
        wanted: Sequence[Any] = expected if isinstance(expected, list) else [expected]
        return float(all(str(w).casefold() in text.casefold() for w in wanted))
    if case.grader == "number":
        numbers = _NUMBER.findall(text)
        if not numbers:
            return 0.0
        value = float(numbers[-1].replace(",", ""))
        return float(abs(value - float(expected)) <= (case.tolerance or 0.0))
    if case.grader == "json_schema":
        return _json_schema(text, expected)
    if case.grader == "similarity":
        if similarity is None:
            raise GoldenSetError("the similarity grader needs an embedder")
        cosine = similarity(text, str(expected))
        return 1.0 if cosine >= (case.tolerance if case.tolerance is not None else 0.8) else max(0.0, cosine)
    if judge is None:
        raise GoldenSetError("the judge grader needs a judge tier")
    return float(judge(case, text))


def _json_schema(text: str, schema: Any) -> float:
    import jsonschema

    try:
        document = json.loads(_FENCE.sub("", text))
        jsonschema.validate(document, schema)
    except (ValueError, jsonschema.ValidationError):
        return 0.0
    return 1.0
