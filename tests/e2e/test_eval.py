"""`tierserve eval` with the shipped golden set against the real stack (vLLM tiers in Ray Serve), as a release
pipeline runs it: per-tier scores, cost and latency, the HTML report, and the regression gate against the run's own
JSON as a baseline (a rerun at temperature 0 must not regress)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ALPHA_KEY, ROOT, STACK_ADMIN_KEY, Stack

pytestmark = pytest.mark.slow
GOLDEN = ROOT / "configs" / "golden" / "default.jsonl"
MIN_SCORE = "0.75"  # what the embedded default's small tier meets (docs/observability.md)


def _eval(stack: Stack, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "commands.main", "eval", "--set", str(GOLDEN), "--url", stack.url]
    cli += ["--api-key", ALPHA_KEY, "--model", "small", *extra]
    return subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_golden_set_passes_on_the_small_tier_and_a_rerun_does_not_regress(stack: Stack, tmp_path: Path) -> None:
    run, page = tmp_path / "run.json", tmp_path / "run.html"
    first = _eval(stack, "--min-score", MIN_SCORE, "--json-out", str(run), "--html-out", str(page))
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(run.read_text())
    overall = result["summary"]["overall"]
    assert overall["cases"] >= 12 and overall["errors"] == 0 and overall["mean_score"] >= float(MIN_SCORE)
    assert set(result["summary"]["by_tier"]) == {"small"} and overall["cost_usd"] > 0
    assert "plotly" in page.read_text()
    env = {**os.environ, "TIERSERVE_ADMIN_KEY": STACK_ADMIN_KEY}
    again = _eval(stack, "--baseline", str(run), "--record", "--as-baseline", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    # Recorded with the stack: its score is on the one scrape and in the drift report's eval section.
    scraped = httpx.get(f"{stack.url}/metrics", timeout=30).text
    recorded = re.search(r'tierserve_eval_score\{set="default",tier="all"\} (\S+)', scraped)
    assert recorded and float(recorded.group(1)) >= float(MIN_SCORE)
    report = httpx.get(f"{stack.url}/admin/drift", headers={"authorization": f"Bearer {STACK_ADMIN_KEY}"}, timeout=30)
    assert report.json()["evals"]["default"]["alarm"] is False
