"""The shipped router weights with the real embedder (all-MiniLM-L6-v2): the CLI end to end on a benchmark the
router was not trained on (GSM8K outcomes from RouteLLM), calibration accuracy, and sane orderings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cache.embedder import SentenceTransformerEmbedder
from commands.main import app
from router import RouteInput, RouterConfig, build_router
from router.data import load_prompts

pytestmark = pytest.mark.slow

GSM8K = Path(__file__).resolve().parents[1] / "data" / "routellm_gsm8k_first164.csv"
GSM8K_FULL = GSM8K.with_name("routellm_gsm8k.csv")
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_eval_on_a_different_benchmark_beats_random(tmp_path: Path) -> None:
    # All of RouteLLM's GSM8K outcomes but the 12 prompts it marks as contaminated, as RouteLLM evaluates them.
    args = ["router", "eval", "--data", str(GSM8K_FULL), "--exclude", "contaminated", "--json"]
    result = CliRunner().invoke(app, [*args, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 1307 and report["scorer"] == "blend"
    # Above random beyond its 95 % bootstrap interval (measured: APGR 0.600, CI 0.561-0.641; docs/router.md).
    assert report["apgr_ci95"][0] > 0.5, report["apgr_ci95"]
    # Latency is reported, not asserted here: the 1 ms goal is checked by `tierserve router bench` (docs/router.md).
    assert report["routing_latency"]["p50_us"] > 0
    assert report["embedding_latency_batch1"]["p50_ms"] > 0


def test_calibration_hits_the_share_on_its_traffic(tmp_path: Path) -> None:
    config = tmp_path / "configs" / "stack.yaml"
    config.parent.mkdir()
    config.write_text(CONFIG.read_text())
    args = ["router", "calibrate", "--prompts", str(GSM8K), "--share", "large=0.3", "-c", str(config)]
    result = CliRunner().invoke(app, [*args, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    thresholds = yaml.safe_load(config.read_text())["router"]["thresholds"]
    router = build_router(RouterConfig(thresholds=thresholds), ["small", "large"])
    texts = load_prompts(GSM8K)
    vectors = SentenceTransformerEmbedder().embed(texts)
    tiers = [router.route(RouteInput(t, embedding=vectors[i])).tier for i, t in enumerate(texts)]
    assert tiers.count("large") / len(tiers) == pytest.approx(0.3, abs=0.05)


def test_questions_a_larger_model_fixes_score_above_small_talk(embedder: SentenceTransformerEmbedder) -> None:
    # The score is P(only the strong model is right): exam questions of the kind GPT-4 gets and Mixtral
    # misses rank above small talk. (A pure proof ranks low: in the training data both models fail those.)
    router = build_router(RouterConfig(), ["small", "large"])
    easy = ["What is the capital of France?", "Say hello to my friend.", "What colour is the sky on a clear day?"]
    hard = [
        "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field. A. 0 B. 1 C. 2 D. 3",
        "Which of the following is NOT a valid defence to a charge of felony murder under the common law?",
    ]
    vectors = embedder.embed(easy + hard)
    scores = [router.route(RouteInput(t, embedding=vectors[i])).score for i, t in enumerate(easy + hard)]
    assert max(scores[:3]) < min(scores[3:]), scores
    assert all(0.0 <= s <= 1.0 for s in scores) and np.isfinite(scores).all()
