"""Run one load: check the endpoint, start the stack if asked, run Locust headless in its own process, and
judge the records against the SLOs.

Locust runs as a child process (`python -m locust -f loadtest/locustfile.py --headless ...`) rather than as a
library inside the CLI: importing Locust monkey-patches the interpreter with gevent, which must not touch the
process that also supervises the stack; the gate then measures with exactly the file the web UI and
distributed runs use; and a crash in the load generator cannot take the verdict down with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtest.records import RequestRecord, read_records
from loadtest.slo import ScenarioSlo, SloResult, evaluate
from loadtest.stats import GroupStats, RunStats, summarize

__all__ = [
    "LOCUSTFILE",
    "LoadPlan",
    "LoadtestError",
    "Verdict",
    "check_endpoint",
    "judge",
    "locust_command",
    "managed_stack",
    "parse_duration",
    "run_locust",
]

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


class LoadtestError(RuntimeError):
    """A run that could not be made or judged (unreachable URL, Locust crashed); the message says why."""


def parse_duration(text: str) -> float:
    """Locust's spelling: `90`, `60s`, `2m`, `1h30m`."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"bad duration {text!r}: use e.g. 60s, 2m, 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"bad duration {text!r}: must be positive")
    return total


@dataclass(frozen=True)
class LoadPlan:
    scenario: str
    url: str
    users: int
    spawn_rate: float
    duration_s: float
    records: Path
    log: Path
    api_key: str = ""
    model: str = "auto"
    max_tokens: int = 64
    think_time: str = "0.5,2"
    dataset_size: int = 500
    seed: int = 0
    extra: tuple[str, ...] = field(default_factory=tuple)


def locust_command(plan: LoadPlan) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        plan.url,
        "--users",
        str(plan.users),
        "--spawn-rate",
        str(plan.spawn_rate),
        "--run-time",
        f"{max(1, round(plan.duration_s))}s",
        # requests in flight when the time is up finish and are recorded, instead of being cut off
        "--stop-timeout",
        "120",
        "--exit-code-on-error",
        "0",  # the SLOs decide, not Locust's "any failure"
        "--only-summary",
        "--scenario",
        plan.scenario,
        "--model",
        plan.model,
        "--max-tokens",
        str(plan.max_tokens),
        "--records",
        str(plan.records),
        "--think-time",
        plan.think_time,
        "--dataset-size",
        str(plan.dataset_size),
        "--run-seed",
        str(plan.seed),
        *plan.extra,
    ]
    return command


def check_endpoint(url: str, api_key: str) -> None:
    """Fail fast, with a message a person can act on, before spending a minute of load on a dead URL."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/models", headers=headers, timeout=30)
    except httpx.HTTPError as error:
        raise LoadtestError(f"cannot reach {url}: {type(error).__name__}: {error}") from None
    if response.status_code == 401:
        raise LoadtestError(f"{url} refused the API key (401): pass --api-key or TIERSERVE_API_KEY")
    if response.status_code != 200:
        raise LoadtestError(f"{url}/v1/models answered {response.status_code}: {response.text[:300]}")


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    except OSError:
        return 0


def run_locust(plan: LoadPlan, progress: Callable[[float, int], None] | None = None) -> list[RequestRecord]:
    """Run the plan; `progress(elapsed_s, records_so_far)` is called about once a second."""
    plan.records.parent.mkdir(parents=True, exist_ok=True)
    plan.records.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if plan.api_key:
        env["TIERSERVE_API_KEY"] = plan.api_key  # not on the command line, where `ps` would show it
    started = time.monotonic()
    with plan.log.open("wb") as sink:
        process = subprocess.Popen(locust_command(plan), stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            while process.poll() is None:
                if progress is not None:
                    progress(time.monotonic() - started, _count_lines(plan.records))
                time.sleep(1)
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    tail = plan.log.read_text(errors="replace")[-3000:]
    if process.returncode not in (0, 1) or not plan.records.exists():
        raise LoadtestError(f"locust exited with {process.returncode} (log {plan.log}):\n{tail}")
    try:
        return read_records(plan.records)
    except ValueError as error:
        raise LoadtestError(f"unreadable records in {plan.records}: {error}") from None


@contextmanager
def managed_stack(config: Path, port: int, log_dir: Path, ready_timeout_s: float = 900) -> Iterator[tuple[str, int]]:
    """`tierserve serve --config CONFIG --port PORT` for the length of the block, stopped without orphans; yields
    its URL and pid."""
    from loadtest.processes import launch, stop, wait_healthy  # psutil and friends: only when a stack is wanted

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "commands.main", "serve", "--config", str(config), "--port", str(port)]
    server = launch("tierserve", command, env, port, log_dir)
    try:
        try:
            wait_healthy(server, ready_timeout_s)
        except (RuntimeError, TimeoutError) as error:
            raise LoadtestError(str(error)) from None
        yield server.url, server.popen.pid
    finally:
        stop(server)


@dataclass
class Verdict:
    scenario: str
    stats: RunStats
    results: list[SloResult]
    records: int

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def breaches(self) -> list[SloResult]:
        return [r for r in self.results if not r.passed]

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        def group(g: GroupStats) -> dict[str, Any]:
            metrics = {k: (round(v, 4) if v is not None else None) for k, v in g.metrics.items()}
            return {"requests": g.requests, "failures": g.failures, "errors_by_kind": g.errors_by_kind, **metrics}

        return {
            "scenario": self.scenario,
            "passed": self.passed,
            "records": self.records,
            "duration_s": round(self.stats.duration_s, 3),
            **extra,
            "slos": [r.as_dict() for r in self.results],
            "breaches": [r.name for r in self.breaches],
            "stats": {
                "overall": group(self.stats.overall),
                "tiers": {n: group(g) for n, g in self.stats.tiers.items()},
                "cache": {n: group(g) for n, g in self.stats.caches.items()},
            },
        }


def judge(scenario: str, records: list[RequestRecord], slo: ScenarioSlo, duration_s: float | None) -> Verdict:
    stats = summarize(records, slo.goodput.criteria(), duration_s)
    return Verdict(scenario, stats, evaluate(slo, stats), len(records))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
