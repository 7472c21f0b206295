"""The gate end to end against a small fake OpenAI server: Locust really runs (its own process), users
really stream SSE over HTTP, records are written and judged, the exit code follows the SLOs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadtest.records import read_records
from serving.cli import app

LAX = Path(__file__).resolve().parents[1] / "data" / "slo-e2e-lax.yaml"
TOKENS = ("Hel", "lo", " there", "!")


class _FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: no chunked encoding to write

    def log_message(self, *_: object) -> None:
        pass

    def _headers(self, status: int, content_type: str, body: dict[str, Any] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        prompt = str(body["messages"][-1]["content"]) if body else ""
        self.send_header("x-tierserve-tier", "large" if len(prompt) > 60 else "small")  # long = hard, like a router
        self.send_header("x-tierserve-cache", "bypass")
        self.end_headers()

    def do_GET(self) -> None:  # /v1/models
        self._headers(200, "application/json")
        self.wfile.write(json.dumps({"data": [{"id": "auto"}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body.get("stream"):
            self._headers(200, "application/json", body)
            answer = {"choices": [{"message": {"content": "".join(TOKENS)}}], "usage": {"completion_tokens": 4}}
            self.wfile.write(json.dumps(answer).encode())
            return
        self._headers(200, "text/event-stream", body)
        for token in TOKENS:
            time.sleep(0.01)
            chunk = {"choices": [{"delta": {"content": token}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"completion_tokens": len(TOKENS), "prompt_tokens": 9}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


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
