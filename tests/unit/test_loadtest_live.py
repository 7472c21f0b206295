"""What running the load tests live showed: the web UI's runs (no run time, a scenario changed between two
swarms), the default run time of `soak`, and a capacity search whose every step passed."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from commands.main import app
from loadtest.capacity import StepResult, summarize_capacity
from loadtest.records import RequestRecord, read_records
from loadtest.runner import LOCUSTFILE, judge
from loadtest.slo import ScenarioSlo
from loadtest.workloads import SCENARIOS, shape_target
from tests.unit.fake_openai import LAX, FakeOpenAI


def test_without_a_run_time_the_load_goes_on_until_stopped() -> None:
    # the web UI starts a run with no run time: it must not end after a default minute
    assert shape_target("constant", 4, 2, None, 3600) == (4, 2)
    assert shape_target("burst", 8, 2, None, 3600 + 5) == (2, 8.0)
    assert shape_target("burst", 8, 2, None, 3600 + 27) == (8, 8.0)  # 30 s cycles
    assert [shape_target("step", 8, 2, None, t)[0] for t in (0, 61, 121, 181, 7200)] == [2, 4, 6, 8, 8]  # type: ignore[index]
    assert shape_target("constant", 4, 2, 60, 60) is None  # a given run time still ends it
    assert [s.name for s in SCENARIOS.values() if s.default_duration_s] == ["soak"]


def test_soak_runs_thirty_minutes_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[float] = []

    def fake_run(plan: object, progress: object = None) -> list[RequestRecord]:
        seen.append(plan.duration_s)  # type: ignore[attr-defined]
        return []

    monkeypatch.setattr("loadtest.cli.check_endpoint", lambda url, key: None)
    monkeypatch.setattr("loadtest.cli.run_locust", fake_run)
    base = ["loadtest", "--url", "http://127.0.0.1:9", "--out-dir", str(tmp_path)]
    for extra in (["--scenario", "soak"], ["--scenario", "chat"], ["--scenario", "soak", "--duration", "90s"]):
        CliRunner().invoke(app, [*base, *extra])
    assert seen == [1800.0, 60.0, 90.0]


def _rec(start: float, e2e: float) -> RequestRecord:
    return RequestRecord(start=start, e2e_s=e2e, status=200, ok=True, tier="small", cache="miss")


def test_capacity_says_when_every_step_passed() -> None:
    slo = ScenarioSlo.model_validate({"overall": {"e2e_p95_ms": 1000}})
    passing = [StepResult(u, judge("chat", [_rec(i, 0.1) for i in range(4)], slo, 10)) for u in (1, 2)]
    assert summarize_capacity(passing)["overall"]["limit_found"] is False
    failing = StepResult(4, judge("chat", [_rec(i, 2.0) for i in range(4)], slo, 10))
    result = summarize_capacity([*passing, failing])
    assert result["overall"]["limit_found"] is True and result["overall"]["max_users"] == 2


def test_capacity_does_not_hold_one_user_to_the_gates_throughput_floor() -> None:
    # live: 1 user made 3 requests in 30 s (0.10/s) against the chat gate's goodput_rps >= 0.15, and the
    # search reported a capacity of 0 users on a healthy stack
    slo = ScenarioSlo.model_validate({"overall": {"e2e_p95_ms": 20000, "goodput_rps": 0.15, "rps": 0.2}})
    one = StepResult(1, judge("chat", [_rec(i, 12.0) for i in range(3)], slo, 30))
    assert not one.verdict.passed and one.passed() and one.breaches == []
    slow = StepResult(2, judge("chat", [_rec(i, 25.0) for i in range(3)], slo, 30))
    assert [r.name for r in slow.breaches] == ["e2e_p95_ms"]  # latency still decides
    result = summarize_capacity([one, slow])
    assert result["overall"]["max_users"] == 1 and result["overall"]["goodput_rps"] == pytest.approx(0.1)


# ------------------------------------------------------------------------------------ the web UI, live


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _names(ui: str) -> set[str]:
    stats = httpx.get(f"{ui}/stats/requests", timeout=10).json()["stats"]
    return {row["name"] for row in stats if row["name"] != "Aggregated"}


def _wait(predicate: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_web_ui_offers_the_options_and_a_new_swarm_takes_a_changed_scenario(fake_url: str, tmp_path: Path) -> None:
    port, records = _free_port(), tmp_path / "records.jsonl"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", fake_url, "--web-port", str(port)]
    command += ["--web-host", "127.0.0.1", "--scenario", "routed", "--records", str(records)]
    command += ["--think-time", "0,0.05", "--dataset-size", "0"]
    process = subprocess.Popen(command, stdout=(tmp_path / "locust.log").open("wb"), stderr=subprocess.STDOUT)
    ui = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(ui, timeout=5).status_code == 200)
        page = httpx.get(ui, timeout=5).text
        assert '"scenario"' in page and '"think_time"' in page and "ScenarioShape" in page
        form = {"user_count": "2", "spawn_rate": "2", "host": fake_url}
        httpx.post(f"{ui}/swarm", data=form | {"scenario": "routed"}, timeout=10).raise_for_status()
        _wait(lambda: {"easy", "hard"} & {n.split()[0] for n in _names(ui)})
        httpx.post(f"{ui}/stop", timeout=10).raise_for_status()
        httpx.post(f"{ui}/swarm", data=form | {"scenario": "cache"}, timeout=10).raise_for_status()
        _wait(lambda: any(n.startswith("cache") for n in _names(ui)))
        assert all(n.startswith("cache") for n in _names(ui))  # the new swarm asks cache questions only
        httpx.post(f"{ui}/stop", timeout=10).raise_for_status()
    finally:
        process.terminate()
        process.wait(timeout=30)
    kinds = [json.loads(line)["scenario"] for line in records.read_text().splitlines()]
    assert kinds[0] == "routed" and kinds[-1] == "cache"


def test_capacity_goes_on_past_a_tier_figure_a_short_step_could_not_measure() -> None:
    # live: at 2 users for 30 s the only `large` answer was not streamed, so tier:large had no TTFT
    slo = ScenarioSlo.model_validate({"overall": {"ttft_p95_ms": 1000}, "tiers": {"large": {"ttft_p95_ms": 900}}})

    def streamed(start: float, tier: str) -> RequestRecord:
        return RequestRecord(start, 1.0, 200, True, stream=True, ttft_s=0.2, tier=tier, cache="bypass")

    def plain(start: float, tier: str) -> RequestRecord:
        return RequestRecord(start, 1.0, 200, True, tier=tier, cache="bypass")

    one = StepResult(1, judge("chat", [streamed(0, "small"), streamed(1, "large")], slo, 10))
    two = StepResult(2, judge("chat", [streamed(0, "small"), plain(1, "large")], slo, 10))
    four = StepResult(4, judge("chat", [streamed(0, "small"), streamed(1, "large")], slo, 10))
    assert not two.verdict.passed  # the gate itself still fails on missing data
    assert (
        two.passed() and not two.passed("tier:large") and [r.name for r in two.unmeasured] == ["tier:large.ttft_p95_ms"]
    )
    result = summarize_capacity([one, two, four])
    assert result["overall"]["max_users"] == 4 and result["tiers"]["large"]["max_users"] == 4
    assert result["steps"][1]["unmeasured"] == ["tier:large.ttft_p95_ms"] and result["steps"][1]["breaches"] == []
    no_large = StepResult(8, judge("chat", [streamed(0, "small")], slo, 10))  # a tier with no request at all
    assert no_large.passed() and not no_large.passed("tier:large")


def test_a_stack_started_from_a_backgrounded_command_still_hears_ctrl_c(tmp_path: Path) -> None:
    # live: `tierserve serve &` in a script ignores SIGINT (the shell sets it so); what `tierserve loadtest`
    # starts must not inherit that, or stopping it waits out the whole timeout and then kills it
    import signal

    from loadtest.processes import launch, stop

    child = "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted', flush=True)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = launch("child", [sys.executable, "-c", child], {}, _free_port(), tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(1.0)  # the child's interpreter is up and sleeping
    started = time.monotonic()
    assert stop(server, timeout_s=20) == []
    assert time.monotonic() - started < 10
    assert "interrupted" in server.log.read_text()


class _WatchesHangUps(FakeOpenAI):
    """After `[DONE]`, keeps the stream open a moment and notes whether the client hung up meanwhile."""

    hung_up: list[bool] = []
    streaming = False

    def _headers(self, status: int, content_type: str, body: dict[str, Any] | None = None) -> None:
        self.streaming = content_type == "text/event-stream"
        super()._headers(status, content_type, body)

    def do_POST(self) -> None:
        super().do_POST()
        if self.streaming:
            self.wfile.flush()
            readable, _, _ = select.select([self.connection], [], [], 0.3)
            _WatchesHangUps.hung_up.append(bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b"")


def test_users_read_a_stream_to_its_end_and_time_it_to_done(tmp_path: Path) -> None:
    # live: the Locust user hung up at `[DONE]`; the gateway logged 499 for about a quarter of the streams
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WatchesHangUps)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    summary = tmp_path / "summary.json"
    args = ["loadtest", "--scenario", "routed", "--url", url, "--users", "2", "--spawn-rate", "2"]
    args += ["--duration", "3s", "--think-time", "0,0.05", "--out-dir", str(tmp_path), "--json-out", str(summary)]
    try:
        CliRunner().invoke(app, [*args, "--slo-file", str(LAX)])
    finally:
        server.shutdown()
    assert _WatchesHangUps.hung_up and not any(_WatchesHangUps.hung_up)
    streamed = [r for r in read_records(Path(json.loads(summary.read_text())["records_file"])) if r.stream]
    assert streamed and all(r.e2e_s < 0.25 for r in streamed)  # to `[DONE]`, not to the close 0.3 s later


# ------------------------------------------------------------------------------ distributed, live


class _SlowAnswers(FakeOpenAI):
    """Answers after 1.5 s, so that requests are in flight when a run's time is up; counts what it served."""

    served: list[float] = []

    def do_POST(self) -> None:
        time.sleep(1.5)
        super().do_POST()
        _SlowAnswers.served.append(time.time())


def test_a_distributed_run_records_the_requests_in_flight_at_its_end(tmp_path: Path) -> None:
    # live: Locust's master quit 0.5 s after telling its workers to, before their last reports came, and
    # the requests still in flight (4 of 17 in a 40 s run) were answered but recorded nowhere
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, port, records = f"http://127.0.0.1:{server.server_address[1]}", _free_port(), tmp_path / "records.jsonl"
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    master = [*base, "--master", "--headless", "--expect-workers", "2", "-u", "2", "-r", "2", "-t", "4s"]
    master += ["--stop-timeout", "30", "--host", url, "--scenario", "routed", "--records", str(records)]
    master += ["--master-bind-port", str(port), "--think-time", "0,0.1", "--dataset-size", "0"]
    worker = [*base, "--worker", "--master-port", str(port)]
    logs = [(tmp_path / f"{name}.log").open("wb") for name in ("master", "w1", "w2")]
    try:
        processes = [subprocess.Popen(master, stdout=logs[0], stderr=subprocess.STDOUT)]
        processes += [subprocess.Popen(worker, stdout=log, stderr=subprocess.STDOUT) for log in logs[1:]]
        for process in processes:
            process.wait(timeout=90)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for log in logs:
            log.close()
        server.shutdown()
    written = read_records(records)
    assert len(written) == len(_SlowAnswers.served) >= 4
    run_end = min(r.start for r in written) + 4
    assert any(r.end > run_end for r in written)  # answered after the run time was up, and still recorded
    assert len({r.worker for r in written}) == 2
