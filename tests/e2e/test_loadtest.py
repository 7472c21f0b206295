"""`tierserve loadtest` against the live stack of the e2e session: Locust streams real answers through the
gateway, the records carry real tiers and cache outcomes, and the exit code follows the SLOs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.records import read_records
from tests.e2e.conftest import ALPHA_KEY, ROOT, Stack

pytestmark = pytest.mark.slow
LAX = ROOT / "tests" / "data" / "slo-e2e-lax.yaml"


def _loadtest(stack: Stack, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    summary = tmp_path / "summary.json"
    command = [sys.executable, "-m", "commands.main", "loadtest", "--url", stack.url, "--api-key", ALPHA_KEY]
    command += ["--scenario", "routed", "--users", "2", "--spawn-rate", "2", "--duration", "12s"]
    command += ["--max-tokens", "16", "--think-time", "0.2,0.5", "--slo-file", str(LAX)]
    command += ["--out-dir", str(tmp_path), "--json-out", str(summary), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return done, (json.loads(summary.read_text()) if summary.exists() else {})


def test_lax_slos_pass_on_the_live_stack(stack: Stack, tmp_path: Path) -> None:
    done, summary = _loadtest(stack, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "PASS" in done.stdout and summary["passed"] is True
    records = read_records(Path(str(summary["records_file"])))
    assert records and all(r.ok for r in records)
    assert {r.tier for r in records} <= {"small", "large"}  # every answer says which tier made it
    assert {r.cache for r in records} <= {"hit", "miss", "bypass"}
    streamed = [r for r in records if r.stream]
    assert streamed and all(r.ttft_s is not None and 0 < r.ttft_s <= r.e2e_s for r in streamed)
    assert all(r.output_tokens > 0 for r in records)
    assert Path(str(summary["report"])).stat().st_size > 100_000  # plots with plotly.js inlined


def test_an_impossible_slo_fails_and_is_named(stack: Stack, tmp_path: Path) -> None:
    done, summary = _loadtest(stack, tmp_path, "--slo", "ttft_p95_ms=1")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert summary["breaches"] == ["ttft_p95_ms"]
    assert "FAIL" in done.stdout and "ttft_p95_ms" in done.stdout
