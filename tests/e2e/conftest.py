"""One running stack (configs/test.yaml: real vLLM tiers in Ray Serve, real Redis, real embeddings),
started like a user starts it (`tierserve serve`) and shared by every end-to-end test. TIERSERVE_E2E_CONFIG names
another config for it (scripts/gpu-smoke.sh runs the conformance test on configs/gpu-smoke.yaml's GPU tier)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from serving.redis_server import free_port
from tests.otlp import Collector, start_collector

ROOT = Path(__file__).resolve().parents[2]
# A relative path is the repository's (ROOT / an absolute path is that path).
CONFIG = ROOT / os.environ.get("TIERSERVE_E2E_CONFIG", "configs/test.yaml")
ALPHA_KEY, BETA_KEY = "sk-test-alpha", "sk-test-beta"
GAMMA_KEY = "sk-test-gamma"  # the tenant configs/test.yaml shadow-scores
STACK_ADMIN_KEY = "e2e-stack-admin-key-0123"  # the shared stack's operator (drift report, recorded evals)
READY_TIMEOUT_S = 900


@dataclass(frozen=True)
class Stack:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    collector: Collector  # receives the gateway's request traces and the small tier's vLLM spans

    def client(self, key: str = ALPHA_KEY) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=300)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, name: str = "tierserve", timeout_s: float = READY_TIMEOUT_S
) -> None:
    """Until `url`/health answers 200; the server's log tail in the error when it exits or never gets there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-5000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=60).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f}s:\n{log.read_text()[-5000:]}")


def traced_config(folder: Path, endpoint: str) -> Path:
    """CONFIG exporting traces to `endpoint`: the gateway's, and vLLM's own for the small tier."""
    config = yaml.safe_load(CONFIG.read_text())
    for key in ("models_dir", "data_dir"):  # the copy lives elsewhere: make its paths absolute
        config[key] = str((ROOT / config[key]).resolve())
    config["tracing"] = {"exporter": "otlp", "endpoint": endpoint, "service_name": "tierserve-e2e"}
    small = next(tier for tier in config["tiers"] if tier["name"] == "small")
    # Added to what the config sets (another CONFIG may give the tier extra engine arguments or env of its own).
    small.setdefault("engine", {}).setdefault("extra", {})["otlp_traces_endpoint"] = endpoint
    small.setdefault("deployment", {}).setdefault("env", {})["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    path = folder / "test-traced.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def collector() -> Iterator[Collector]:
    collector, server = start_collector()
    yield collector
    server.shutdown()
    server.server_close()


@contextmanager
def running_stack(
    config: Path, log: Path, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """`tierserve serve --config CONFIG [OPTIONS]` on a free port, as a user starts it, until it answers /health;
    stopped with Ctrl-C's signal afterwards. Yields the process; its `args` end with the port."""
    port = free_port()
    environment = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    cli = [sys.executable, "-m", "commands.main", "serve", "--config", str(config), *options, "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(cli, cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_ready(stack_url(process), process, log)
        yield process
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends: the CLI shuts Serve and Ray down
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stack_url(process: subprocess.Popen[bytes]) -> str:
    return f"http://127.0.0.1:{process.args[-1]}"  # type: ignore[index]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, collector: Collector) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    log = folder / "tierserve.log"
    admin = {"TIERSERVE_ADMIN_KEY": STACK_ADMIN_KEY}
    with running_stack(traced_config(folder, collector.endpoint), log, admin) as process:
        yield Stack(url=stack_url(process), process=process, log=log, collector=collector)


def small_and_large(**small: Any) -> list[dict[str, Any]]:
    """The two real tiers of the e2e stacks that test failure: `small` (SmolLM2, with `small`'s extra settings) and
    `large` (gemma), which falls back to `small` after an 8 s first-token deadline or two failures in a row."""
    return [
        {
            "name": "small",
            "model": "SmolLM2-135M-Instruct",
            "prepared": "smollm2-135m-instruct",
            "engine": {"max_model_len": 2048},
            "deployment": {"num_replicas": 1, "num_cpus": 0.5, "max_ongoing_requests": 128},
            **small,
        },
        {
            "name": "large",
            "model": "gemma-3-270m",
            "prepared": "gemma3-270m",
            "stop": ["\nUser:"],
            "engine": {"max_model_len": 2048},
            "deployment": {"num_replicas": 1, "num_cpus": 0.5, "max_ongoing_requests": 16},
            "reliability": {"fallback": ["small"], "first_token_timeout_s": 8, "breaker": {"failures": 2}},
        },
    ]
