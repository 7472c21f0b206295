"""`tierserve eval` with the shipped golden set against the real stack (vLLM tiers in Ray Serve), as a release
pipeline runs it: per-tier scores, cost and latency, the HTML report, and the regression gate against the run's own
JSON as a baseline (a rerun at temperature 0 must not regress)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ALPHA_KEY, ROOT, Stack

pytestmark = pytest.mark.slow
GOLDEN = ROOT / "configs" / "golden" / "default.jsonl"
MIN_SCORE = "0.75"  # what the embedded default's small tier meets (docs/observability.md)


def _eval(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "commands.main", "eval", "--set", str(GOLDEN), "--url", stack.url]
    cli += ["--api-key", ALPHA_KEY, "--model", "small", *extra]
    return subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_the_golden_set_passes_on_the_small_tier_and_a_rerun_does_not_regress(stack: Stack, tmp_path: Path) -> None:
    run, page = tmp_path / "run.json", tmp_path / "run.html"
    first = _eval(stack, "--min-score", MIN_SCORE, "--json-out", str(run), "--html-out", str(page))
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(run.read_text())
    overall = result["summary"]["overall"]
    assert overall["cases"] >= 12 and overall["errors"] == 0 and overall["mean_score"] >= float(MIN_SCORE)
    assert set(result["summary"]["by_tier"]) == {"small"} and overall["cost_usd"] > 0
    assert "plotly" in page.read_text()
    again = _eval(stack, "--baseline", str(run))
    assert again.returncode == 0, again.stderr[-3000:]
