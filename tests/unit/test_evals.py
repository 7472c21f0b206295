"""`tierserve eval`: the graders, a golden set through a (fake) OpenAI server over real HTTP, the regression gate
and the reports. The shipped golden set against the real default stack is in tests/e2e/test_openai_api.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.main import app
from evals import Case, GoldenSetError, compare, grade, load_set, run_set

ROOT = Path(__file__).resolve().parents[2]


def case(grader: str, expected: object, tolerance: float | None = None) -> Case:
    return Case(messages=[{"role": "user", "content": "q"}], expected=expected, grader=grader, tolerance=tolerance)


@pytest.mark.parametrize(
    ("grader", "expected", "answer", "score"),
    [
        ("exact", "Paris", "  paris ", 1.0),
        ("exact", "Paris", "Paris, France", 0.0),
        ("regex", r"\bblue\b", "The sky is blue.", 1.0),
        ("contains", ["red", "green"], "Red and GREEN", 1.0),
        ("contains", ["red", "green"], "only red", 0.0),
        ("number", 42, "The answer is 42.", 1.0),
        ("number", 4, "2 + 2 = 4", 1.0),
        ("number", 1000, "It costs 1,000 dollars", 1.0),
        ("number", 3.14, "about 3.1", 0.0),
        ("json_schema", {"type": "object", "required": ["a"]}, '```json\n{"a": 1}\n```', 1.0),
        ("json_schema", {"type": "object", "required": ["a"]}, '{"b": 1}', 0.0),
    ],
)
def test_graders(grader: str, expected: object, answer: str, score: float) -> None:
    assert grade(case(grader, expected), answer) == score


def test_number_tolerance_and_similarity_and_judge() -> None:
    assert grade(case("number", 3.14, tolerance=0.05), "about 3.1") == 1.0
    assert grade(case("similarity", "x", tolerance=0.5), "y", similarity=lambda a, b: 0.6) == 1.0
    assert grade(case("similarity", "x"), "y", similarity=lambda a, b: 0.3) == 0.3
    assert grade(case("judge", "x"), "y", judge=lambda c, a: True) == 1.0


def test_a_bad_set_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "q"}], "expected": "a", "grader": "exact"}\n{"nope": 1}\n'
    )
    with pytest.raises(GoldenSetError, match="bad.jsonl:2"):
        load_set(bad)


def test_the_shipped_golden_set_parses() -> None:
    cases = load_set(ROOT / "configs" / "golden" / "default.jsonl")
    assert len(cases) >= 12 and len({c.grader for c in cases}) >= 5


def test_a_run_scores_per_tier_and_a_baseline_catches_a_drop(fake_url: str) -> None:
    cases = [
        Case(id="short", messages=[{"role": "user", "content": "hi"}], expected="hello", grader="contains"),
        Case(id="long", messages=[{"role": "user", "content": "x" * 80}], expected="nope", grader="exact"),
    ]
    run = run_set(cases, fake_url).as_dict()
    assert run["summary"]["overall"]["mean_score"] == 0.5
    assert run["summary"]["by_tier"]["small"]["mean_score"] == 1.0
    assert run["summary"]["by_tier"]["large"]["mean_score"] == 0.0
    better = {"cases": [{"name": "short", "score": 1.0}, {"name": "long", "score": 1.0}]}
    assert compare(run, better, cases) == ["long: 1.00 -> 0.00"]


def test_the_command_gates_on_min_score_and_writes_reports(fake_url: str, tmp_path: Path) -> None:
    golden = tmp_path / "set.jsonl"
    golden.write_text(
        json.dumps(
            {"id": "hi", "messages": [{"role": "user", "content": "hi"}], "expected": "hello", "grader": "contains"}
        )
        + "\n"
    )
    out, page = tmp_path / "run.json", tmp_path / "run.html"
    runner = CliRunner()
    passed = runner.invoke(app, ["eval", "--set", str(golden), "--url", fake_url, "--min-score", "0.9",
                                 "--json-out", str(out), "--html-out", str(page)])  # fmt: skip
    assert passed.exit_code == 0, passed.output
    assert json.loads(out.read_text())["summary"]["overall"]["mean_score"] == 1.0 and "<table>" in page.read_text()
    golden.write_text(golden.read_text().replace('"hello"', '"goodbye"'))
    failed = runner.invoke(app, ["eval", "--set", str(golden), "--url", fake_url, "--baseline", str(out)])
    assert failed.exit_code == 1 and "REGRESSION" in failed.output
    missing = runner.invoke(app, ["eval", "--set", str(tmp_path / "none.jsonl"), "--url", fake_url])
    assert missing.exit_code == 2
