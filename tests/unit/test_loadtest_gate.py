"""The gate end to end against a small fake OpenAI server: Locust really runs (its own process), users
really stream SSE over HTTP, records are written and judged, the exit code follows the SLOs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from commands.main import app
from loadtest.records import read_records
from tests.unit.fake_openai import LAX, TOKENS


def _run(url: str, tmp_path: Path, *extra: str) -> tuple[int, str, dict[str, object]]:
    summary = tmp_path / "summary.json"
    args = ["loadtest", "--scenario", "routed", "--url", url, "--users", "3", "--spawn-rate", "3"]
    args += ["--duration", "4s", "--think-time", "0,0.05", "--out-dir", str(tmp_path), "--json-out", str(summary)]
    args += ["--slo-file", str(LAX)]
    result = CliRunner().invoke(app, [*args, *extra])
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return result.exit_code, result.output, data


def test_lax_slos_pass_and_everything_is_written(fake_url: str, tmp_path: Path) -> None:
    code, output, summary = _run(fake_url, tmp_path, "--slo", "e2e_p95_ms=5000", "--slo", "requests=5")
    assert code == 0, output
    assert summary["passed"] is True
    records = read_records(Path(str(summary["records_file"])))
    assert len(records) == summary["records"] and len(records) >= 5
    streamed = [r for r in records if r.stream]
    assert streamed and all(r.ok and r.ttft_s is not None and r.output_tokens == 4 for r in streamed)
    assert all(len(r.itl_s) == len(TOKENS) - 1 for r in streamed)  # one gap between each content chunk
    assert all(r.ttft_s is not None and r.ttft_s < r.e2e_s for r in streamed)
    assert {r.tier for r in records} == {"small", "large"}  # the routed mix has easy and hard prompts
    report = Path(str(summary["report"]))
    assert report.exists() and "Latency percentiles over time" in report.read_text()


def test_impossible_slo_fails_and_names_the_breach(fake_url: str, tmp_path: Path) -> None:
    code, output, summary = _run(fake_url, tmp_path, "--slo", "ttft_p95_ms=0.001", "--slo", "tier:small.rps=1000")
    assert code == 1, output
    assert summary["breaches"] == ["ttft_p95_ms", "tier:small.rps"]
    assert "ttft_p95_ms" in output and "FAIL" in output
