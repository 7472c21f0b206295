"""router.model and router.train: the trained scorer (numpy inference over JSON weights) and its training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router import RouteInput, RouterConfig, build_router
from router.config import FeatureWeights
from router.data import OutcomeSet
from router.errors import RouterError
from router.features import SURFACE_FEATURES, surface_vector
from router.model import LinearHead, RouterWeights, TrainedScorer, load_weights
from router.train import embed_prompts, split_of, train

DIM = 8


def _weights(emb: list[float] | None = None, feat_scale: float = 1.0) -> RouterWeights:
    n = len(SURFACE_FEATURES)
    return RouterWeights(
        embedder="test",
        dimension=DIM,
        label="P(weak model answers wrongly)",
        features=list(SURFACE_FEATURES),
        feature_mean=[0.0] * n,
        feature_scale=[feat_scale] * n,
        full=LinearHead(coef_embedding=emb or [1.0] + [0.0] * (DIM - 1), coef_features=[0.0] * n, intercept=0.0),
        features_only=LinearHead(coef_features=[0.5] + [0.0] * (n - 1), intercept=-2.0),
    )


def _unit(i: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[i] = 1.0
    return vector


def test_full_head_reads_the_embedding() -> None:
    scorer = TrainedScorer(_weights(), priors=FeatureWeights(output_length=0.0, turns=0.0))
    assert scorer.score(RouteInput("x", embedding=_unit(0))) == pytest.approx(1 / (1 + np.exp(-1)))
    assert scorer.score(RouteInput("x", embedding=-_unit(0))) == pytest.approx(1 / (1 + np.exp(1)))
    assert scorer.score(RouteInput("x", embedding=_unit(1))) == pytest.approx(0.5)


def test_without_an_embedding_the_features_only_head_scores() -> None:
    scorer = TrainedScorer(_weights(), priors=FeatureWeights(output_length=0.0, turns=0.0))
    text = "one two three"
    expected_logit = -2.0 + 0.5 * surface_vector(text)[0]
    assert scorer.score(RouteInput(text)) == pytest.approx(1 / (1 + np.exp(-expected_logit)))
    # Longer prompts score higher under this head (positive weight on log_words).
    assert scorer.score(RouteInput("word " * 200)) > scorer.score(RouteInput(text))


def test_priors_for_output_length_and_conversation_depth() -> None:
    scorer = TrainedScorer(_weights(), priors=FeatureWeights(output_length=0.6, turns=0.3))
    base = RouteInput("x", embedding=_unit(1))
    assert scorer.score(RouteInput("x", embedding=_unit(1), max_tokens=4096)) > scorer.score(base)
    assert scorer.score(RouteInput("x", embedding=_unit(1), earlier_turns=3)) > scorer.score(base)
    assert scorer.logit(RouteInput("x", embedding=_unit(1), max_tokens=1024)) == pytest.approx(0.6 * 2)


def test_explain_adds_up_to_the_score() -> None:
    weights = _weights(emb=[0.3] * DIM)
    weights.full.coef_features = [0.1 * (i + 1) for i in range(len(SURFACE_FEATURES))]
    scorer = TrainedScorer(weights)
    request = RouteInput("Explain why 2 + 2 = 4, step by step?", embedding=_unit(2), max_tokens=2048, earlier_turns=1)
    explanation = scorer.explain(request)
    assert explanation.used_embedding and explanation.embedding_logit == pytest.approx(0.3)
    assert explanation.score == pytest.approx(scorer.score(request))
    total = explanation.intercept + explanation.embedding_logit + sum(c.logit for c in explanation.contributions)
    assert total == pytest.approx(explanation.logit)
    names = [c.name for c in explanation.contributions]
    assert names[: len(SURFACE_FEATURES)] == list(SURFACE_FEATURES)
    assert not scorer.explain(RouteInput("x")).used_embedding


def test_wrong_embedding_size_is_a_router_error() -> None:
    with pytest.raises(RouterError, match="expect 8-d embeddings"):
        TrainedScorer(_weights()).score(RouteInput("x", embedding=np.ones(3, dtype=np.float32)))


def test_scores_stay_in_the_unit_interval_for_extreme_logits() -> None:
    scorer = TrainedScorer(_weights(emb=[1e4] * DIM))
    assert scorer.score(RouteInput("x", embedding=_unit(0))) == 1.0
    assert scorer.score(RouteInput("x", embedding=-_unit(0))) == 0.0


def test_shipped_weights_load_and_route() -> None:
    weights = load_weights()
    assert weights.embedder == "all-MiniLM-L6-v2" and weights.dimension == 384
    assert weights.features == list(SURFACE_FEATURES)
    assert weights.training["test_full"]["apgr"] > 0.5  # recorded held-out figure of the shipped file
    router = build_router(RouterConfig(), ["small", "large"])
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    decision = router.route(RouteInput("What is 2 + 2?", embedding=vector / np.linalg.norm(vector)))
    assert 0.0 <= decision.score <= 1.0 and decision.tier in ("small", "large")
    assert build_router(RouterConfig(scorer="heuristic"), ["small", "large"]).route(RouteInput("hi")).tier == "small"


def test_bad_weight_files_are_router_errors(tmp_path: Path) -> None:
    with pytest.raises(RouterError, match="cannot read"):
        load_weights(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(RouterError, match="invalid"):
        load_weights(tmp_path / "bad.json")
    other = _weights().model_dump()
    other["features"] = ["log_words"]
    (tmp_path / "old.json").write_text(json.dumps(other))
    with pytest.raises(RouterError, match="retrain"):
        load_weights(tmp_path / "old.json")
    (tmp_path / "ok.json").write_text(_weights().model_dump_json())
    assert load_weights(tmp_path / "ok.json").dimension == DIM


def _synthetic(n: int = 1200, seed: int = 0) -> tuple[OutcomeSet, np.ndarray]:
    """Hard prompts sit in one direction of embedding space and ask for proofs; easy ones do not."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.35
    prompts = [
        f"Prove the theorem number {i} step by step and explain why." if h else f"What colour is item {i}?"
        for i, h in enumerate(hard)
    ]
    embeddings = rng.standard_normal((n, DIM)).astype(np.float32)
    embeddings[:, 0] += np.where(hard, 1.0, -1.0)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    weak = ~hard | (rng.random(n) < 0.1)
    strong = weak | (rng.random(n) < 0.7)
    groups = [f"subject{i % 10}" for i in range(n)]
    return OutcomeSet(prompts, weak, strong, groups, "w", "s"), embeddings


def test_training_learns_a_real_signal_and_is_deterministic() -> None:
    data, embeddings = _synthetic()
    first = train(data, embeddings, source="synthetic")
    second = train(data, embeddings, source="synthetic")
    assert first.weights.model_dump_json() == second.weights.model_dump_json()
    assert first.test.apgr > 0.7 and first.test_features_only.apgr > 0.7
    assert first.unseen_subjects is not None and first.unseen_subjects.apgr > 0.7
    assert first.weights.training["data_sha256"] == second.weights.training["data_sha256"]
    # The shipped scorer reproduces the training-time scores of the held-out split.
    scorer = TrainedScorer(first.weights)
    test_rows = [i for i, p in enumerate(data.prompts) if split_of(p) == "test"]
    assert len(test_rows) == first.test.n
    scores = [scorer.score(RouteInput(data.prompts[i], embedding=embeddings[i])) for i in test_rows]
    hard = ~data.weak[test_rows]
    assert np.mean(np.array(scores)[hard]) > np.mean(np.array(scores)[~hard])


def test_split_is_stable_and_roughly_20_10_70() -> None:
    splits = [split_of(f"prompt {i}") for i in range(5000)]
    assert splits == [split_of(f"prompt {i}") for i in range(5000)]
    assert splits.count("test") / 5000 == pytest.approx(0.2, abs=0.02)
    assert splits.count("val") / 5000 == pytest.approx(0.1, abs=0.02)


def test_embeddings_are_cached_by_prompt_set(tmp_path: Path) -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.ones((len(texts), DIM), dtype=np.float32)

    progress: list[tuple[int, int]] = []
    first = embed_prompts(["a", "b", "c"], embed, tmp_path, progress=lambda d, t: progress.append((d, t)))
    again = embed_prompts(["a", "b", "c"], embed, tmp_path)
    assert calls == [3] and np.array_equal(first, again) and progress[-1] == (3, 3)
    embed_prompts(["a", "b"], embed, tmp_path)
    assert calls == [3, 2]


def test_the_default_scorer_blends_trained_and_heuristic_scores() -> None:
    from router import RouterConfig
    from router.factory import build_scorer
    from router.scorer import BlendedScorer, HeuristicScorer

    config = RouterConfig()
    scorer = build_scorer(config)
    assert config.scorer == "blend" and isinstance(scorer, BlendedScorer)
    trained = build_scorer(config.model_copy(update={"scorer": "trained"}))
    heuristic = HeuristicScorer(config.weights)
    for text in ("hi", "Prove that there are infinitely many primes, step by step."):
        request = RouteInput(text, embedding=None)
        expected = 0.75 * trained.score(request) + 0.25 * heuristic.score(request)
        assert scorer.score(request) == pytest.approx(expected)
        assert 0.0 <= scorer.score(request) <= 1.0


def test_blend_weights_are_normalised_and_checked() -> None:
    from router.scorer import BlendedScorer

    class Constant:
        def __init__(self, value: float) -> None:
            self.value = value

        def score(self, request: RouteInput) -> float:
            return self.value

    blend = BlendedScorer([(Constant(1.0), 3.0), (Constant(0.0), 1.0)])
    assert blend.score(RouteInput("x")) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        BlendedScorer([(Constant(1.0), 0.0)])
    with pytest.raises(ValueError):
        BlendedScorer([(Constant(1.0), -1.0), (Constant(0.0), 2.0)])
