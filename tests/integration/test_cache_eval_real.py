"""The issue's goal on the held-out pairs with the real embedder, and the pure evaluation agreeing with the real cache.

Goal ("Semantic cache you can trust"): on held-out pairs, at most 1% false hits while at least 60% of true
paraphrases hit, at the tuned default threshold with the look-alike verifier. The held-out file in the repository
(round 9, 293 pairs) was written blind by an author who never saw the verifier or earlier pair files, and measured
once at the tuned threshold 0.86: 52.8% hits and 8.7% false hits (13/149), so both halves of the goal are missed and
that test is a strict xfail: it turns into a failure, to be un-marked, the day the goal is met. Improve the verifier
on the dev file only, and measure a held-out file only once (docs/cache-verification.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cache import CacheConfig, CachedAnswer, CacheStore, Outcome, SemanticCache, namespace_key
from cache.config import RedisConfig
from cache.embedder import SentenceTransformerEmbedder
from cache.evaluation import TUNED_THRESHOLD, Pair, evaluate_pairs, load_pairs, pair_similarities
from cache.verify import LookalikeVerifier

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def wrong_hits(pairs: list[Pair], embedder: SentenceTransformerEmbedder) -> tuple[float, float, str]:
    report = evaluate_pairs(pairs, embedder, TUNED_THRESHOLD, LookalikeVerifier())
    wrong = [f"{r.similarity:.3f} [{r.category}] {r.a} | {r.b}" for r in report.results if r.hit and not r.same]
    return report.hit_rate, report.false_hit_rate, "\n".join(wrong)


@pytest.mark.xfail(
    strict=True,
    reason="goal not met: held-out (blind round 9) at threshold 0.86 gives 52.8% hits and 8.7% false hits (13/149: "
    "qualifiers one side adds, antonym pairs outside the word lists, role swaps the check misses); see "
    "docs/cache-verification.md",
)
def test_held_out_goal_at_the_tuned_threshold(embedder: SentenceTransformerEmbedder) -> None:
    hit_rate, false_hit_rate, wrong = wrong_hits(load_pairs(DATA / "cache_pairs_heldout.jsonl"), embedder)
    assert false_hit_rate <= 0.01, wrong
    assert hit_rate >= 0.60


def test_held_out_stays_at_the_measured_level(embedder: SentenceTransformerEmbedder) -> None:
    # Regression guard at what was measured once on the held-out set (hits 76/144, false hits 13/149), with one
    # pair of slack each way: another CPU's float rounding can move a pair that sits right at the threshold.
    hit_rate, false_hit_rate, wrong = wrong_hits(load_pairs(DATA / "cache_pairs_heldout.jsonl"), embedder)
    assert false_hit_rate <= round(14 / 149, 4), wrong  # the report rounds to 4 digits
    assert hit_rate >= round(75 / 144, 4)


def test_dev_set_stays_at_its_measured_level(embedder: SentenceTransformerEmbedder) -> None:
    # The tuning data (eight earlier rounds folded in, 2,681 pairs): this pins that the rules keep working on every
    # trap class seen so far (dev: 51.5% hits, 2.2% false hits at 0.86; rounds 6-8 brought traps no rule catches).
    hit_rate, false_hit_rate, wrong = wrong_hits(load_pairs(DATA / "cache_pairs_dev.jsonl"), embedder)
    assert false_hit_rate <= 34 / 1490 + 1e-9, wrong  # measured 33 of 1,490; one pair of slack, as above
    assert hit_rate >= round(612 / 1191, 4)


def test_verifier_is_what_makes_the_goal_reachable(embedder: SentenceTransformerEmbedder) -> None:
    pairs = load_pairs(DATA / "cache_pairs_heldout.jsonl")
    report = evaluate_pairs(pairs, embedder, TUNED_THRESHOLD, None)
    assert report.false_hit_rate > 0.10  # similarity alone serves many look-alikes at this threshold


def answer(text: str) -> CachedAnswer:
    return CachedAnswer(pieces=[text], finish_reason="stop", prompt_tokens=5, completion_tokens=5, tier="small")


def sample_pairs(pairs: list[Pair], sims: np.ndarray, threshold: float) -> list[int]:
    """Five pairs above and five below the threshold, none within float32 rounding of it, mixed categories."""
    clear = [i for i, s in enumerate(sims) if abs(float(s) - threshold) > 1e-3]
    above = [i for i in clear if sims[i] >= threshold]
    below = [i for i in clear if sims[i] < threshold]
    chosen: list[int] = []
    for group in (above, below):
        seen: set[str] = set()
        for i in group:
            if pairs[i].category not in seen and len([j for j in chosen if j in group]) < 5:
                seen.add(pairs[i].category)
                chosen.append(i)
    return chosen


async def test_pure_evaluation_matches_semantic_cache_on_real_redis(
    embedder: SentenceTransformerEmbedder, redis_url: str, key_prefix: str
) -> None:
    pairs = load_pairs(DATA / "cache_pairs_dev.jsonl")
    threshold = TUNED_THRESHOLD
    sims = pair_similarities(pairs, embedder)
    chosen = sample_pairs(pairs, sims, threshold)
    assert len(chosen) == 10
    subset = [pairs[i] for i in chosen]
    verifier = LookalikeVerifier()
    pure = evaluate_pairs(subset, embedder, threshold, None, similarities=sims[chosen])
    pure_verified = evaluate_pairs(subset, embedder, threshold, verifier, similarities=sims[chosen])
    assert 0 < sum(r.hit for r in pure.results) < 10  # both outcomes are exercised

    config = CacheConfig(redis=RedisConfig(key_prefix=key_prefix), similarity_threshold=threshold)
    plain = SemanticCache(config, embedder, CacheStore(config.redis, redis_url))
    # Its own key prefix: each cache holds exactly the stored question, with no replica syncing in between.
    verified_config = CacheConfig(redis=RedisConfig(key_prefix=f"{key_prefix}-v"), similarity_threshold=threshold)
    verified = SemanticCache(verified_config, embedder, CacheStore(verified_config.redis, redis_url), verifier)
    try:
        for number, (pair, expected, expected_verified) in enumerate(
            zip(subset, pure.results, pure_verified.results, strict=True)
        ):
            # A namespace of its own per pair: the cache holds exactly `a` when `b` is looked up.
            namespace = namespace_key(
                tenant="eval", model_alias="auto", endpoint="chat", context=(("user", f"pair {number}"),), params={}
            )
            assert await plain.store("eval", namespace, pair.a, plain.embed(pair.a), answer(pair.a))
            found = await plain.lookup("eval", namespace, plain.embed(pair.b))
            assert (found.outcome is Outcome.HIT) == expected.hit, (pair, expected.similarity)
            if found.outcome is Outcome.HIT:
                assert found.similarity == pytest.approx(expected.similarity, abs=1e-4)
                assert found.answer is not None and found.answer.text == pair.a
            # The same pair through a cache that verifies the cached question after the threshold.
            assert await verified.store("eval", namespace, pair.a, verified.embed(pair.a), answer(pair.a))
            checked = await verified.lookup("eval", namespace, verified.embed(pair.b), pair.b)
            assert (checked.outcome is Outcome.HIT) == expected_verified.hit, (pair, expected_verified.reason)
            if expected.hit and not expected_verified.hit:
                assert checked.rejected == expected_verified.reason
    finally:
        await plain.close()
        await verified.close()
