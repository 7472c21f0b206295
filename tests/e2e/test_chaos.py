"""Short chaos runs on a real stack (`tierserve chaos`, as an operator runs it): Locust load while a gateway
replica, Redis, the Serve controller and a vLLM EngineCore are killed by pid; then a rolling update under load
(`tierserve reload`) and Ctrl-C with a stream in flight. The long runs are `make chaos` (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loadtest.chaos import reckon
from loadtest.records import read_records
from loadtest.runner import LoadPlan, run_locust
from serving.audit import read_records as audit_records
from serving.audit import verify as audit_verify
from tests.e2e.conftest import ROOT, running_stack, small_and_large, stack_url

# `make test` runs each scenario for 30 s; `make chaos` sets TIERSERVE_CHAOS_DURATION_S for the long runs.
DURATION_S = int(os.environ.get("TIERSERVE_CHAOS_DURATION_S", "30"))
KILL_AT_S = max(8, DURATION_S // 4)


@dataclass(frozen=True)
class ChaosStack:
    url: str
    pid: int
    config: Path
    folder: Path
    process: subprocess.Popen[bytes]

    def chaos(self, scenario: str, *extra: str) -> dict[str, Any]:
        out = self.folder / f"{scenario}.json"
        cli = [sys.executable, "-m", "commands.main", "chaos", "--scenario", scenario, "--url", self.url]
        cli += ["--within", str(self.pid), "--duration", f"{DURATION_S}s", "--kill-at", f"{KILL_AT_S}s", "--users", "4"]
        cli += ["--out-dir", str(self.folder / "runs"), "--json-out", str(out), *extra]
        done = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
        result: dict[str, Any] = json.loads(out.read_text())
        assert done.returncode == 0, (done.stdout[-3000:], result)
        return result

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/health", timeout=60).json()
        return body

    def wait_green(self, timeout_s: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            health = self.health()
            if health["status"] == "ok":
                return health
            time.sleep(2)
        raise AssertionError(f"stack not green after {timeout_s}s: {self.health()}")


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    folder = tmp_path_factory.mktemp("chaos")
    config = {
        "models_dir": str((ROOT / ".tierserve" / "models").resolve()),
        "data_dir": str(folder / "data"),
        "tiers": small_and_large(),
        "router": {"thresholds": [0.99]},
        "gateway": {
            "deployment": {"num_replicas": 2, "num_cpus": 0.25, "max_ongoing_requests": 256},
            "health_timeout_s": 5,
            "health_cache_s": 1,
        },
        "ray": {"num_cpus": 4},
    }
    path = folder / "chaos.yaml"
    path.write_text(yaml.safe_dump(config))
    with running_stack(path, folder / "tierserve.log") as process:
        yield ChaosStack(url=stack_url(process), pid=process.pid, config=path, folder=folder, process=process)


def test_a_killed_gateway_replica_costs_a_retrying_client_nothing_and_no_audit_record(
    chaos_stack: ChaosStack,
) -> None:
    result = chaos_stack.chaos("gateway")  # the load retries twice, as the openai client does by default
    assert result["reconciled"] and result["sent_after_kill"] > 0
    assert result["failed_sent_after_kill"] == 0 and result["lost_after_acknowledgement"] == 0, result
    # Every answer a client got has its audit record, the killed replica's included (fsynced before the answer).
    answered = {r.request_id for r in read_records(chaos_stack.folder / "runs" / "gateway-records.jsonl") if r.ok}
    audited = {r.get("request_id") for r in audit_records(chaos_stack.folder / "data" / "audit")}
    assert len(answered) == result["answered"] and None not in answered
    assert answered <= audited, sorted(str(missing) for missing in answered - audited)[:5]
    # The killed replica's segment and a survivor's at least (its replacement writes one once it has served, which
    # may come after the load on 2 cores: its start-up took longer than the window in one run).
    writers = {path.parent.name for path in (chaos_stack.folder / "data" / "audit").rglob("segment-*.jsonl")}
    assert len(writers) >= 2, writers
    assert audit_verify(chaos_stack.folder / "data" / "audit").ok  # the killed writer's chain is whole too


def test_redis_killed_under_load_bypasses_the_cache_then_resumes(chaos_stack: ChaosStack) -> None:
    result = chaos_stack.chaos("redis", "--client-retries", "0")
    assert result["failed"] == 0, result  # not one 5xx, without any client retry
    assert result["cache_before_kill"].get("hit", 0) > 0
    assert result["cache_after_kill"].get("bypass", 0) > 0  # Redis was gone ...
    assert result["cache_resumed_after_kill_s"] is not None  # ... and the cache answered again after it


def test_a_killed_serve_controller_leaves_every_replica_serving(chaos_stack: ChaosStack) -> None:
    before = {name: tier["replica"] for name, tier in chaos_stack.health()["tiers"].items()}
    result = chaos_stack.chaos("controller", "--client-retries", "0")
    assert result["failed"] == 0, result
    # The restarted controller recovered the same replicas (vLLM's logging setup once made it stop them all).
    after = {name: tier["replica"] for name, tier in chaos_stack.wait_green()["tiers"].items()}
    assert after == before


def test_a_killed_engine_core_moves_its_traffic_to_the_fallback(chaos_stack: ChaosStack) -> None:
    result = chaos_stack.chaos("engine-core", "--tier", "large", "--client-retries", "0")
    # Streams running on the engine at the kill are cut in-band (reported); nothing sent after it fails.
    assert result["failed_sent_after_kill"] == 0, result
    assert result["failed"] == result["lost_after_acknowledgement"]
    assert result["answered_by_tier"].get("small", 0) > 0
    assert "large" in result["health"]["failing_tiers_named"]
    chaos_stack.wait_green()  # Ray replaced the replica whose engine died


def test_a_rolling_update_under_load_fails_no_request(chaos_stack: ChaosStack) -> None:
    plan = LoadPlan(
        scenario="chat",
        url=chaos_stack.url,
        users=4,
        spawn_rate=4,
        duration_s=45 + DURATION_S,
        records=chaos_stack.folder / "runs" / "rolling.jsonl",
        log=chaos_stack.folder / "runs" / "rolling.log",
        model="large",
        max_tokens=32,
        think_time="0.2,1",
    )
    records: list[Any] = []
    load = threading.Thread(target=lambda: records.extend(run_locust(plan)))
    load.start()
    time.sleep(10)
    config = yaml.safe_load(chaos_stack.config.read_text())
    config["gateway"]["health_cache_s"] = 2  # the gateway's arguments change: a rolling update of its replicas
    config["tiers"][1]["stop"] = ["\nUser:", "\nHuman:"]  # and of `large`'s
    chaos_stack.config.write_text(yaml.safe_dump(config))
    reloaded_at = time.time()
    cli = [sys.executable, "-m", "commands.main", "reload", "--config", str(chaos_stack.config)]
    subprocess.run(cli, cwd=ROOT, check=True, timeout=60, env={**os.environ})
    load.join()
    result = reckon(records, reloaded_at)
    assert result["sent_after_kill"] > 0 and result["failed"] == 0, result  # no client retry either
    # Replacements start before the old replicas stop (max_surge_percent): on 2 cores under load the rollout may
    # outlast the load; it must end, and the stack be green, before the next test stops it.
    deadline = time.monotonic() + 300
    while "reloaded in" not in (chaos_stack.folder / "tierserve.log").read_text(errors="replace"):
        assert time.monotonic() < deadline, "the reload never finished"
        time.sleep(2)
    chaos_stack.wait_green()


def test_ctrl_c_lets_a_stream_in_flight_finish(chaos_stack: ChaosStack) -> None:
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
        "max_tokens": 200,
        "temperature": 0.8,
        "stream": True,
    }
    lines: list[str] = []

    def read() -> None:
        with httpx.stream("POST", f"{chaos_stack.url}/v1/chat/completions", json=body, timeout=120) as response:
            lines.extend(response.iter_lines())

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(2)
    chaos_stack.process.send_signal(signal.SIGINT)
    reader.join(timeout=120)
    events = [line for line in lines if line]
    assert events and events[-1] == "data: [DONE]", events[-3:]  # the stream ended whole, not cut by the shutdown
    assert chaos_stack.process.wait(timeout=120) == 0
    log = (chaos_stack.folder / "tierserve.log").read_text(errors="replace")
    assert "requests in flight finished" in log
