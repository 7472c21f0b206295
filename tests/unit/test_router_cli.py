"""`tierserve router ...` with a hashing embedder (no model): eval, calibrate, explain, train, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from commands.router import load_router_stack
from router.cli import add_router_commands
from tests.fakes import HashingEmbedder

GSM8K = Path(__file__).parent.parent / "data" / "routellm_gsm8k_first164.csv"
CONFIG = """tiers:
  - name: small
    model: a
    price_per_1k_prompt_tokens: 0.1
    price_per_1k_completion_tokens: 0.2
  - name: large
    model: b
    price_per_1k_prompt_tokens: 1.0
    price_per_1k_completion_tokens: 2.0
router:
  thresholds: [0.5]  # set by calibrate
"""


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    add_router_commands(app, HashingEmbedder, load_router_stack)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_eval_prints_routellm_metrics_as_json(app: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = run(app, "eval", "--data", str(GSM8K), "--json", "--cache-dir", str(tmp_path))
    assert code == 0, out
    report = json.loads(out)
    assert {"apgr", "cpt50", "cpt80", "routing_latency", "curve"} <= set(report)
    assert report["n"] == 164 and 0.0 <= report["apgr"] <= 1.0 and 0.0 <= report["cpt50"] <= report["cpt80"] <= 1.0
    assert report["weak_column"] == "mixtral-8x7b-instruct-v0.1"
    assert report["routing_latency"]["p50_us"] > 0
    assert [p["share"] for p in report["curve"]] == pytest.approx([i / 10 for i in range(11)])


def test_eval_table_and_heuristic(app: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = run(app, "eval", "--data", str(GSM8K), "--heuristic")
    assert code == 0
    assert "APGR" in out and "CPT(50%)" in out and "routing decision: p50" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--data", "missing.csv"], "does not exist"),
        (["--data", str(GSM8K), "--weak", "nope"], "no weak column 'nope'"),
        (["--data", str(GSM8K), "--weights", "missing.json"], "cannot read router weights"),
    ],
)
def test_eval_errors_are_one_line_and_exit_2(app: typer.Typer, args: list[str], needle: str) -> None:
    code, out, err = run(app, "eval", *args)
    assert code == 2
    assert needle in err and "Traceback" not in out + err


def test_calibrate_writes_thresholds_that_hit_the_share(app: typer.Typer, tmp_path: Path) -> None:
    config = tmp_path / "configs" / "stack.yaml"
    config.parent.mkdir()
    config.write_text(CONFIG)
    code, out, err = run(
        app, "calibrate", "--prompts", str(GSM8K), "--share", "large=0.3", "--config", str(config),
        "--cache-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, out + err
    assert "expected cost saving" in out
    thresholds = yaml.safe_load(config.read_text())["router"]["thresholds"]
    assert len(thresholds) == 1 and 0 < thresholds[0] < 1
    # the shares obtained are recorded beside them: `tierserve plan` takes its default mix from there
    shares = yaml.safe_load(config.read_text())["router"]["calibrated_shares"]
    assert list(shares) == ["small", "large"] and shares["large"] == pytest.approx(0.3, abs=0.05)
    assert "# set by calibrate" in config.read_text()
    # The written threshold sends 30 % (+-5 %) of these prompts to "large" under the same scorer.
    from router import RouteInput  # noqa: F401
    from router.data import load_prompts
    from router.factory import build_scorer
    from serving.config import load_config

    stack = load_config(config)
    scorer = build_scorer(stack.router)
    prompts = load_prompts(GSM8K)
    vectors = HashingEmbedder().embed(prompts)
    scores = np.array([scorer.score(RouteInput(p, embedding=vectors[i])) for i, p in enumerate(prompts)])
    assert np.mean(scores >= thresholds[0]) == pytest.approx(0.3, abs=0.05)


def test_calibrate_dry_run_and_bad_share(app: typer.Typer, tmp_path: Path) -> None:
    config = tmp_path / "stack.yaml"
    config.write_text(CONFIG)
    code, _, _ = run(app, "calibrate", "--prompts", str(GSM8K), "--share", "large=0.2", "-c", str(config), "--dry-run")
    assert code == 0 and config.read_text() == CONFIG
    code, _, err = run(app, "calibrate", "--prompts", str(GSM8K), "--share", "huge=0.2", "-c", str(config))
    assert code == 2 and "TIER=FRACTION" in err
    code, _, err = run(app, "calibrate", "--prompts", str(GSM8K), "--share", "large=0.2", "-c", str(tmp_path / "x"))
    assert code == 2 and "cannot read config" in err


def test_explain_shows_contributions_and_tier(app: typer.Typer, tmp_path: Path) -> None:
    config = tmp_path / "stack.yaml"
    config.write_text(CONFIG)
    code, out, _ = run(app, "explain", "Prove that the square root of 2 is irrational.", "-c", str(config))
    assert code == 0
    assert "embedding (topic)" in out and "math_cues" in out and "-> tier" in out
    code, out, _ = run(app, "explain", "hi", "-c", str(config), "--json", "--no-embedding", "--max-tokens", "4096")
    explanation = json.loads(out)
    assert explanation["tier"] in ("small", "large") and explanation["used_embedding"] is False
    prior = next(c for c in explanation["contributions"] if c["name"] == "output_length (prior)")
    assert prior["value"] == pytest.approx(4.0)
    # The stack routes on the blend: the tier follows its score, and the parts it mixes are shown.
    assert explanation["scorer"] == "blend" and set(explanation["parts"]) == {"trained", "heuristic"}
    parts = explanation["parts"]
    assert explanation["final_score"] == pytest.approx(0.75 * parts["trained"] + 0.25 * parts["heuristic"])
    assert explanation["tier"] == ("large" if explanation["final_score"] >= explanation["thresholds"][0] else "small")


@pytest.mark.parametrize("scorer", ["blend", "trained", "heuristic"])
def test_eval_scores_with_the_chosen_scorer(app: typer.Typer, tmp_path: Path, scorer: str) -> None:
    code, out, _ = run(app, "eval", "--data", str(GSM8K), "--json", "--scorer", scorer, "--cache-dir", str(tmp_path))
    assert code == 0, out
    assert json.loads(out)["scorer"] == scorer


def test_eval_rejects_an_unknown_scorer(app: typer.Typer) -> None:
    code, out, err = run(app, "eval", "--data", str(GSM8K), "--scorer", "oracle")
    assert code == 2 and "scorer" in err and "Traceback" not in out + err


def test_train_writes_weights_from_a_folder(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for subject in range(6):
        lines = ["prompt,w,s"]
        for i in range(60):
            hard = rng.random() < 0.4
            text = f"prove theorem {subject}-{i} rigorously" if hard else f"name colour {subject}-{i}"
            lines.append(f"{text},{not hard},{hard or rng.random() < 0.9}")
        (data / f"subject{subject}.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "w.json"
    args = ["train", "--data", str(data), "--out", str(out), "--weak", "w", "--strong", "s", "--no-cache"]
    code, stdout, err = run(app, *args)
    assert code == 0, stdout + err
    weights = json.loads(out.read_text())
    assert weights["dimension"] == 384 and weights["training"]["rows"] == 360
    assert "held-out test split" in stdout and "unseen subjects" in stdout
    code, _, _ = run(app, *args[:4], str(tmp_path / "w2.json"), *args[5:])
    assert code == 0 and (tmp_path / "w2.json").read_text() == out.read_text()  # deterministic
    assert not list(Path.cwd().glob("embeddings-*.npy"))  # --no-cache leaves nothing behind


@pytest.mark.parametrize("command", ["eval", "explain"])
def test_no_embedding_is_a_plain_flag(app: typer.Typer, command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--no-embedding" in result.output and "--no-no-embedding" not in result.output
