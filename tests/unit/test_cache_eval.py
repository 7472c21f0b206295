"""Evaluating the cache's hit decision on labelled pairs (no model: HashingEmbedder), the pair files, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cache.cli import build_cache_app
from cache.evaluation import (
    Pair,
    PairsError,
    SweepPoint,
    default_sweep,
    evaluate_pairs,
    load_pairs,
    pair_similarities,
    pick_threshold,
    verifier_latency,
)
from cache.verify import LookalikeVerifier
from tests.fakes import HashingEmbedder

DATA = Path(__file__).resolve().parents[1] / "data"
TRAP_CATEGORIES = {"negation", "antonym", "number", "date", "name", "unit", "scope", "topic", "qualifier", "direction"}

TINY = [
    Pair(a="How do I reset my password?", b="how do I reset my password", same=True, category="paraphrase"),
    Pair(a="Where is my order?", b="Where is my order", same=True, category="paraphrase"),
    Pair(a="How do I enable dark mode?", b="How do I disable dark mode?", same=False, category="antonym"),
    Pair(a="Where is order 48213?", b="Where is order 48231?", same=False, category="number"),
    Pair(a="Bake sourdough bread at home", b="What is the capital of Peru?", same=False, category="topic"),
]


def test_evaluate_pairs_counts_hits_with_and_without_the_verifier() -> None:
    embedder = HashingEmbedder()
    plain = evaluate_pairs(TINY, embedder, 0.6, None)
    verified = evaluate_pairs(TINY, embedder, 0.6, LookalikeVerifier())

    # Bag-of-words: same words => similarity 1; one word swapped in 5 => still high.
    assert [r.hit for r in plain.results] == [True, True, True, True, False]
    assert plain.hit_rate == 1.0 and plain.false_hit_rate == pytest.approx(2 / 3, abs=1e-4)
    assert [r.hit for r in verified.results] == [True, True, False, False, False]
    assert verified.hit_rate == 1.0 and verified.false_hit_rate == 0.0
    assert [r.reason for r in verified.results] == [None, None, "antonym", "number", None]
    assert verified.rejections == {"antonym": 1, "number": 1}
    assert verified.per_category["paraphrase"].model_dump() == {"n": 2, "hits": 2, "rate": 1.0}
    assert verified.per_category["antonym"].model_dump() == {"n": 1, "hits": 0, "rate": 0.0}
    assert (verified.pairs, verified.same_pairs, verified.different_pairs) == (5, 2, 3)
    assert verified.verified and not plain.verified


def test_similarities_are_embedded_once_in_one_batch() -> None:
    embedder = HashingEmbedder()
    sims = pair_similarities(TINY, embedder)
    assert embedder.calls == 1
    assert sims.dtype == np.float32 and sims.shape == (5,)
    assert sims[0] == pytest.approx(1.0, abs=1e-6)
    again = evaluate_pairs(TINY, embedder, 0.6, None, similarities=sims)
    assert embedder.calls == 1  # reused, not re-embedded
    assert [r.similarity for r in again.results] == pytest.approx([float(s) for s in sims], abs=1e-5)


def test_hit_needs_similarity_at_or_above_the_threshold() -> None:
    sims = np.array([0.8, 0.79999, 1.0, 0.2, 0.0], dtype=np.float32)
    report = evaluate_pairs(TINY, HashingEmbedder(), 0.8, None, similarities=sims)
    assert [r.hit for r in report.results] == [True, False, True, False, False]
    with pytest.raises(ValueError, match="similarities"):
        evaluate_pairs(TINY, HashingEmbedder(), 0.8, None, similarities=sims[:3])
    with pytest.raises(ValueError, match="no pairs"):
        evaluate_pairs([], HashingEmbedder(), 0.8, None)


def test_sweep_is_monotone_and_the_verifier_only_removes_hits() -> None:
    report = evaluate_pairs(TINY, HashingEmbedder(), 0.8, LookalikeVerifier(), sweep=default_sweep())
    assert report.sweep is not None
    assert [p.threshold for p in report.sweep] == default_sweep()
    assert default_sweep()[0] == 0.70 and default_sweep()[-1] == 0.98 and len(default_sweep()) == 15
    for point, following in zip(report.sweep, report.sweep[1:], strict=False):
        assert following.hit_rate <= point.hit_rate and following.false_hit_rate <= point.false_hit_rate
    for point in report.sweep:
        assert point.verified_hit_rate is not None and point.verified_false_hit_rate is not None
        assert point.verified_hit_rate <= point.hit_rate
        assert point.verified_false_hit_rate <= point.false_hit_rate
    plain = evaluate_pairs(TINY, HashingEmbedder(), 0.8, None, sweep=[0.5])
    assert plain.sweep is not None and plain.sweep[0].verified_hit_rate is None


def test_pick_threshold_prefers_hits_within_the_false_hit_budget() -> None:
    sweep = [
        SweepPoint(
            threshold=0.7, hit_rate=0.9, false_hit_rate=0.5, verified_hit_rate=0.85, verified_false_hit_rate=0.03
        ),
        SweepPoint(
            threshold=0.8, hit_rate=0.8, false_hit_rate=0.4, verified_hit_rate=0.75, verified_false_hit_rate=0.01
        ),
        SweepPoint(
            threshold=0.9, hit_rate=0.5, false_hit_rate=0.2, verified_hit_rate=0.75, verified_false_hit_rate=0.0
        ),
    ]
    assert pick_threshold(sweep) == 0.9  # same hit rate as 0.8: the higher threshold wins the tie
    assert pick_threshold(sweep, max_false_hit_rate=0.05) == 0.7
    with pytest.raises(ValueError):
        pick_threshold(sweep, verified=False)


def test_report_json_has_the_headline_fields() -> None:
    report = evaluate_pairs(TINY, HashingEmbedder(), 0.6, LookalikeVerifier(), sweep=[0.6, 0.9])
    payload = json.loads(report.to_json())
    assert {"hit_rate", "false_hit_rate", "per_category", "sweep", "threshold"} <= payload.keys()
    assert "results" not in payload
    assert len(json.loads(report.to_json(include_pairs=True))["results"]) == 5


def test_verifier_latency_reports_microseconds() -> None:
    timing = verifier_latency(TINY, repeat=1)
    assert timing.pairs == 5
    assert 0 < timing.cold_p50_us <= timing.cold_p99_us
    assert timing.warm_mean_us < timing.cold_mean_us


# ------------------------------------------------------------------------------------------- pair files


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"a": "x?", "b": "y?", "same": True, "category": "paraphrase"})


def test_load_pairs_names_the_bad_line(tmp_path: Path) -> None:
    with pytest.raises(PairsError, match=r"pairs\.jsonl:3: not valid JSON"):
        load_pairs(write(tmp_path, [GOOD, "", "{not json"]))
    with pytest.raises(PairsError, match=r"pairs\.jsonl:2: same: Field required"):
        load_pairs(write(tmp_path, [GOOD, json.dumps({"a": "x", "b": "y", "category": "c"})]))
    with pytest.raises(PairsError, match=r":1: extra: Extra inputs are not permitted"):
        load_pairs(write(tmp_path, [json.dumps({"a": "x", "b": "y", "same": False, "category": "c", "extra": 1})]))
    with pytest.raises(PairsError, match="no such file"):
        load_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(PairsError, match="no pairs"):
        load_pairs(write(tmp_path, [""]))
    assert load_pairs(write(tmp_path, [GOOD, "", GOOD])) == [Pair.model_validate_json(GOOD)] * 2


@pytest.mark.parametrize("name", ["cache_pairs_dev.jsonl", "cache_pairs_heldout.jsonl"])
def test_pair_files_are_well_formed(name: str) -> None:
    pairs = load_pairs(DATA / name)
    assert len(pairs) >= 280
    categories = {p.category for p in pairs}
    assert categories == {"paraphrase"} | TRAP_CATEGORIES
    assert all(p.same == (p.category == "paraphrase") for p in pairs)
    assert sum(p.same for p in pairs) >= 0.4 * len(pairs)
    assert len({(p.a, p.b) for p in pairs}) == len(pairs)


def test_held_out_shares_no_pair_with_dev() -> None:
    # Blind writers do reuse everyday questions ("Why is the sky blue?") on one side of a pair; what must never
    # leak is a whole pair, in either order, since the pair and its label are what the rules were tuned on.
    dev = {(p.a, p.b) for p in load_pairs(DATA / "cache_pairs_dev.jsonl")}
    dev |= {(b, a) for a, b in dev}
    held = {(p.a, p.b) for p in load_pairs(DATA / "cache_pairs_heldout.jsonl")}
    assert dev.isdisjoint(held)


# ------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def cli(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(build_cache_app(HashingEmbedder), ["eval", *args])
    return result.exit_code, result.output


def tiny_file(tmp_path: Path) -> Path:
    return write(tmp_path, [pair.model_dump_json() for pair in TINY])


def test_cli_json_shape(runner: CliRunner, tmp_path: Path) -> None:
    code, output = cli(runner, "--pairs", str(tiny_file(tmp_path)), "--threshold", "0.6", "--json")
    assert code == 0, output
    payload = json.loads(output)
    assert payload["hit_rate"] == 1.0 and payload["false_hit_rate"] == 0.0
    assert payload["per_category"]["number"] == {"n": 1, "hits": 0, "rate": 0.0}
    assert payload["verified"] is True and "sweep" not in payload

    code, output = cli(runner, "--pairs", str(tiny_file(tmp_path)), "--threshold", "0.6", "--json", "--sweep")
    assert code == 0 and len(json.loads(output)["sweep"]) == 15

    code, output = cli(runner, "--pairs", str(tiny_file(tmp_path)), "--threshold", "0.6", "--json", "--no-verify")
    payload = json.loads(output)
    assert code == 0 and payload["verified"] is False
    assert payload["false_hit_rate"] == pytest.approx(2 / 3, abs=1e-4)


def test_cli_tables(runner: CliRunner, tmp_path: Path) -> None:
    code, output = cli(runner, "--pairs", str(tiny_file(tmp_path)), "--threshold", "0.6", "--sweep", "--latency")
    assert code == 0, output
    for expected in ("hit rate on same pairs", "false-hit rate", "per category", "paraphrase", "threshold sweep"):
        assert expected in output
    assert "verifier per pair" in output


def test_cli_default_threshold_is_the_cache_config(runner: CliRunner, tmp_path: Path) -> None:
    from cache.config import CacheConfig

    code, output = cli(runner, "--pairs", str(tiny_file(tmp_path)), "--json")
    assert code == 0 and json.loads(output)["threshold"] == CacheConfig().similarity_threshold


def test_eval_joins_an_existing_cache_group(runner: CliRunner, tmp_path: Path) -> None:
    import typer

    from cache.cli import add_eval_command

    group = typer.Typer(no_args_is_help=True)

    @group.command("stats")
    def stats() -> None:
        """Another command already in the group."""

    add_eval_command(group, HashingEmbedder)
    result = runner.invoke(group, ["eval", "--pairs", str(tiny_file(tmp_path)), "--threshold", "0.6", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["false_hit_rate"] == 0.0
    assert runner.invoke(group, ["stats"]).exit_code == 0


def test_cli_errors_exit_2_and_name_the_problem(runner: CliRunner, tmp_path: Path) -> None:
    code, output = cli(runner, "--pairs", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl: no such file" in output
    bad = write(tmp_path, [GOOD, GOOD, '{"a": "x", "b": "y", "same": "maybe", "category": "c"}'])
    code, output = cli(runner, "--pairs", str(bad))
    assert code == 2 and "pairs.jsonl:3: same:" in output
    code, output = cli(runner, "--pairs", str(bad), "--threshold", "1.5")
    assert code == 2  # typer's own range check
    code, _ = cli(runner)
    assert code == 2  # --pairs is required
