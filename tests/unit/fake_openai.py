"""A small fake OpenAI server for the load-test gate's unit tests: streams SSE over real HTTP, names a tier."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LAX = Path(__file__).resolve().parents[1] / "data" / "slo-e2e-lax.yaml"
TOKENS = ("Hel", "lo", " there", "!")


class FakeOpenAI(BaseHTTPRequestHandler):
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


def serve_fake_openai() -> Iterator[str]:
    """Yields the base URL of a running fake server; stops it afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
