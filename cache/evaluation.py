"""Measure the semantic cache's hit decision on labelled question pairs: paraphrases must hit, look-alikes must not.

For each pair the cache stores `a` and is then asked `b`. With one stored entry per (fresh) namespace the
cache's decision reduces to: hit iff cosine(embed(a), embed(b)) >= threshold and, when a verifier is used,
`verifier.compatible(b, a)` (query first, cached question second). The HNSW search cannot change that
decision: with a single vector in the namespace it returns that vector, and hnswlib's inner-product
"distance" is 1 - dot, so its similarity equals the dot product of the two normalised rows up to float32
rounding (tests/integration/test_cache_eval_real.py checks this against a real SemanticCache and Redis).
So this module computes the decision directly, without Redis, which is what makes sweeping thresholds cheap:
one batch embedding, then numpy.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cache.embedder import Embedder
from cache.verify import LookalikeVerifier, VerifierConfig

__all__ = [
    "TUNED_THRESHOLD",
    "CategoryStats",
    "EvalReport",
    "LatencyReport",
    "Pair",
    "PairResult",
    "PairsError",
    "SweepPoint",
    "default_sweep",
    "evaluate_pairs",
    "load_pairs",
    "pair_similarities",
    "pick_threshold",
    "verifier_latency",
]

# Chosen on tests/data/cache_pairs_dev.jsonl with all-MiniLM-L6-v2 and the verifier on (see
# docs/cache-verification.md); CacheConfig.similarity_threshold's default should equal it.
TUNED_THRESHOLD = 0.86


class PairsError(ValueError):
    """A pairs file that cannot be read: missing, or a line that is not a valid pair (the line is named)."""


class Pair(BaseModel):
    """One labelled case: the cache holds `a`, a user asks `b`; `same` says whether a's answer fits b."""

    model_config = ConfigDict(extra="forbid")

    a: str = Field(min_length=1, description="The cached question.")
    b: str = Field(min_length=1, description="The new question looked up.")
    same: bool = Field(description="True when the cached answer to `a` is a correct answer to `b`.")
    category: str = Field(
        min_length=1, description="paraphrase, or the trap kind: negation, antonym, number, date, name, unit, scope."
    )


class CategoryStats(BaseModel):
    n: int = Field(description="Pairs in the category.")
    hits: int = Field(description="Pairs served from the cache.")
    rate: float = Field(description="hits / n.")


class SweepPoint(BaseModel):
    threshold: float
    hit_rate: float = Field(description="Share of same=true pairs that hit, similarity alone.")
    false_hit_rate: float = Field(description="Share of same=false pairs that hit, similarity alone.")
    verified_hit_rate: float | None = Field(default=None, description="Same, with the verifier.")
    verified_false_hit_rate: float | None = Field(default=None, description="Same, with the verifier.")


class PairResult(BaseModel):
    a: str
    b: str
    same: bool
    category: str
    similarity: float
    compatible: bool = Field(description="The verifier's verdict (True when no verifier was used).")
    reason: str | None = Field(default=None, description="Why the verifier rejected the pair.")
    hit: bool


class EvalReport(BaseModel):
    """What the cache would do on a pair set at one threshold, plus an optional sweep over thresholds."""

    threshold: float
    verified: bool = Field(description="Whether the look-alike verifier gated the hits.")
    pairs: int
    same_pairs: int
    different_pairs: int
    hit_rate: float = Field(description="Hits among same=true pairs (higher is better).")
    false_hit_rate: float = Field(description="Hits among same=false pairs (wrong answers served; lower is better).")
    per_category: dict[str, CategoryStats]
    rejections: dict[str, int] = Field(
        default_factory=dict, description="Verifier rejections by reason, among pairs above the threshold."
    )
    sweep: list[SweepPoint] | None = None
    results: list[PairResult] = Field(default_factory=list, description="Per-pair outcome.")

    def to_json(self, *, include_pairs: bool = False, indent: int | None = 2) -> str:
        exclude = None if include_pairs else {"results"}
        return self.model_dump_json(indent=indent, exclude=exclude)


class LatencyReport(BaseModel):
    """Verifier cost per pair, in microseconds; cold: both texts new, warm: facts of both texts cached."""

    pairs: int
    cold_mean_us: float
    cold_p50_us: float
    cold_p99_us: float
    warm_mean_us: float


def load_pairs(path: Path) -> list[Pair]:
    """Read a JSONL pairs file; raises PairsError naming the file and the 1-based line of the first bad one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PairsError(f"{path}: no such file") from None
    except OSError as error:
        raise PairsError(f"{path}: cannot read: {error.strerror or error}") from None
    pairs: list[Pair] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pairs.append(Pair.model_validate(json.loads(line)))
        except json.JSONDecodeError as error:
            raise PairsError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "line"
            raise PairsError(f"{path}:{number}: {where}: {first['msg']}") from None
    if not pairs:
        raise PairsError(f"{path}: no pairs")
    return pairs


def default_sweep() -> list[float]:
    """0.70, 0.72, ..., 0.98."""
    return [round(0.70 + 0.02 * step, 2) for step in range(15)]


def pair_similarities(pairs: Sequence[Pair], embedder: Embedder) -> NDArray[np.float32]:
    """Cosine similarity of each pair, every distinct text embedded once, in one batch."""
    texts = list(dict.fromkeys(text for pair in pairs for text in (pair.a, pair.b)))
    row = {text: index for index, text in enumerate(texts)}
    vectors = embedder.embed(texts)
    a = vectors[[row[pair.a] for pair in pairs]]
    b = vectors[[row[pair.b] for pair in pairs]]
    similarities: NDArray[np.float32] = np.einsum("ij,ij->i", a, b).astype(np.float32)
    return similarities


def evaluate_pairs(
    pairs: Sequence[Pair],
    embedder: Embedder,
    threshold: float,
    verifier: LookalikeVerifier | None,
    *,
    sweep: Iterable[float] | None = None,
    similarities: NDArray[np.float32] | None = None,
) -> EvalReport:
    """The cache's decision on every pair at `threshold` (and, if given, at each `sweep` threshold).

    `similarities` may be passed to reuse one embedding run across calls (from `pair_similarities`).
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    sims = similarities if similarities is not None else pair_similarities(pairs, embedder)
    if sims.shape != (len(pairs),):
        raise ValueError(f"expected {len(pairs)} similarities, got shape {sims.shape}")
    verdicts = [verifier.compatible(p.b, p.a) if verifier is not None else (True, None) for p in pairs]
    compatible = np.array([ok for ok, _ in verdicts], dtype=bool)
    same = np.array([p.same for p in pairs], dtype=bool)

    hits = (sims >= threshold) & compatible
    results = [
        PairResult(
            a=p.a,
            b=p.b,
            same=p.same,
            category=p.category,
            similarity=round(float(s), 6),
            compatible=ok,
            reason=reason,
            hit=bool(hit),
        )
        for p, s, (ok, reason), hit in zip(pairs, sims, verdicts, hits, strict=True)
    ]
    per_category: dict[str, CategoryStats] = {}
    for category in sorted({p.category for p in pairs}):
        members = [r for r in results if r.category == category]
        category_hits = sum(r.hit for r in members)
        per_category[category] = CategoryStats(
            n=len(members), hits=category_hits, rate=_ratio(category_hits, len(members))
        )
    rejections = Counter(r.reason for r in results if r.similarity >= threshold and r.reason is not None)

    points: list[SweepPoint] | None = None
    if sweep is not None:
        points = []
        for t in sweep:
            above = sims >= t
            point = SweepPoint(
                threshold=round(float(t), 4),
                hit_rate=_rate(above, same),
                false_hit_rate=_rate(above, ~same),
            )
            if verifier is not None:
                point.verified_hit_rate = _rate(above & compatible, same)
                point.verified_false_hit_rate = _rate(above & compatible, ~same)
            points.append(point)

    return EvalReport(
        threshold=threshold,
        verified=verifier is not None,
        pairs=len(pairs),
        same_pairs=int(same.sum()),
        different_pairs=int((~same).sum()),
        hit_rate=_rate(hits, same),
        false_hit_rate=_rate(hits, ~same),
        per_category=per_category,
        rejections=dict(sorted(rejections.items())),
        sweep=points,
        results=results,
    )


def pick_threshold(sweep: Sequence[SweepPoint], *, max_false_hit_rate: float = 0.01, verified: bool = True) -> float:
    """The threshold with the best hit rate whose false-hit rate stays within the budget.

    Ties go to the higher threshold (more margin against false hits). Raises ValueError when no swept
    threshold meets the budget.
    """
    best: tuple[float, float] | None = None
    for point in sweep:
        hit_rate = point.verified_hit_rate if verified else point.hit_rate
        false_rate = point.verified_false_hit_rate if verified else point.false_hit_rate
        if hit_rate is None or false_rate is None or false_rate > max_false_hit_rate:
            continue
        if best is None or (hit_rate, point.threshold) > best:
            best = (hit_rate, point.threshold)
    if best is None:
        raise ValueError(f"no threshold keeps the false-hit rate at or below {max_false_hit_rate}")
    return best[1]


def verifier_latency(pairs: Sequence[Pair], config: VerifierConfig | None = None, *, repeat: int = 3) -> LatencyReport:
    """Time `compatible(b, a)` per pair: cold (no cached facts; the worst case) and warm (both texts cached)."""
    cold: list[float] = []
    for _ in range(repeat):
        verifier = LookalikeVerifier(config, cache_size=0)
        for pair in pairs:
            started = time.perf_counter_ns()
            verifier.compatible(pair.b, pair.a)
            cold.append((time.perf_counter_ns() - started) / 1_000)
    warm_verifier = LookalikeVerifier(config)
    for pair in pairs:
        warm_verifier.compatible(pair.b, pair.a)
    started = time.perf_counter_ns()
    for _ in range(repeat):
        for pair in pairs:
            warm_verifier.compatible(pair.b, pair.a)
    warm_mean = (time.perf_counter_ns() - started) / 1_000 / (repeat * len(pairs))
    ordered = sorted(cold)
    return LatencyReport(
        pairs=len(pairs),
        cold_mean_us=round(sum(cold) / len(cold), 1),
        cold_p50_us=round(ordered[len(ordered) // 2], 1),
        cold_p99_us=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        warm_mean_us=round(warm_mean, 2),
    )


def _rate(hits: NDArray[np.bool_], members: NDArray[np.bool_]) -> float:
    return _ratio(int((hits & members).sum()), int(members.sum()))


def _ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0
