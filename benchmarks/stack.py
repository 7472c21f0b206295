"""`tierserve serve` started for a benchmark as a user starts it: on a free port, until /health answers, stopped with
Ctrl-C's signal afterwards (the benchmarks that measure a whole stack share it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from serving.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def served(config: Path, log: Path, env: dict[str, str] | None = None, ready_s: float = 900) -> Iterator[str]:
    """The stack's URL while it runs."""
    port = free_port()
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", **(env or {})}
    cli = [sys.executable, "-m", "commands.main", "serve", "--config", str(config), "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(cli, cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tierserve exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tierserve did not get ready in {ready_s:.0f} s")
            time.sleep(2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
