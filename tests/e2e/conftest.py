"""One running stack (configs/test.yaml: real vLLM tiers in Ray Serve, real Redis, real embeddings),
started like a user starts it (`tierserve serve`) and shared by every end-to-end test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from serving.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "test.yaml"
ALPHA_KEY, BETA_KEY = "sk-test-alpha", "sk-test-beta"
READY_TIMEOUT_S = 900


@dataclass(frozen=True)
class Stack:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, key: str = ALPHA_KEY) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=300)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tierserve exited with {process.returncode}:\n{log.read_text()[-5000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=60).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"stack not ready after {READY_TIMEOUT_S}s:\n{log.read_text()[-5000:]}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = free_port()
    log = tmp_path_factory.mktemp("stack") / "tierserve.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "serving.cli", "serve", "--config", str(CONFIG), "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(cli, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield Stack(url=url, process=process, log=log)
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends: the CLI shuts Serve and Ray down
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
