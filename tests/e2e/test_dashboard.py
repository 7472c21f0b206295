"""The shipped Grafana dashboard and alert rules against a real Prometheus server (Debian's `prometheus`)
scraping the running stack's one `/metrics`: after some traffic every dashboard query returns series (vLLM's
engine panels included), and every rule loads and evaluates without error."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from serving.redis_server import free_port
from tests.e2e.conftest import ALPHA_KEY, GAMMA_KEY, ROOT, Stack

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"),
]
DASHBOARD = ROOT / "configs" / "grafana" / "tierserve-dashboard.json"
RULES = sorted((ROOT / "configs" / "prometheus").glob("*.yml"))


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert PROMETHEUS is not None
    folder = tmp_path_factory.mktemp("prometheus")
    target = stack.url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": [str(path) for path in RULES],
        "scrape_configs": [{"job_name": "tierserve", "static_configs": [{"targets": [target]}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, (folder / "prometheus.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _traffic(stack: Stack) -> None:
    client = stack.client(ALPHA_KEY)
    asks = ["Name a fruit.", "Name a fruit.", "What is 3 + 4?", "My e-mail is kim.lee@example.org, say hi."]
    for text in asks:
        messages = [{"role": "user", "content": text}]
        client.chat.completions.create(model="auto", messages=messages, max_tokens=8, temperature=0)  # type: ignore[arg-type]
    client.chat.completions.create(model="large", messages=[{"role": "user", "content": "Hello"}], max_tokens=8)
    shadowed = stack.client(GAMMA_KEY)  # its answers are re-asked of the large tier (the shadow panels)
    shadowed.chat.completions.create(model="small", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=30).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_every_dashboard_query_returns_series_and_every_rule_evaluates(stack: Stack, prometheus: str) -> None:
    _traffic(stack)
    time.sleep(8)  # a few scrapes after the traffic (the replicas publish every 2 s, Prometheus scrapes every 2 s)
    _traffic(stack)
    time.sleep(12)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    empty = [p["title"] for p in panels for t in p["targets"] if not _query(prometheus, t["expr"])]
    assert not empty, f"panels with no series: {empty}"
    # The rule groups evaluate every 30 s, the first time up to 30 s after Prometheus starts: until then a rule's
    # health is "unknown", and an evaluation that ran before the traffic recorded nothing yet. An evaluation error
    # ("err") fails at once.
    recorded_rules = ("tier:tierserve_ttft_seconds:p95_5m", "tenant:tierserve_spend_usd:5m")
    deadline = time.monotonic() + 100
    while True:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=30).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == 21 and not [r for r in rules if r["health"] == "err"], [
            (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"
        ]
        missing = [name for name in recorded_rules if not _query(prometheus, name)]
        if (all(rule["health"] == "ok" for rule in rules) and not missing) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r["health"]) for r in rules]
    assert not missing, f"recording rules with no series after the traffic: {missing}"
