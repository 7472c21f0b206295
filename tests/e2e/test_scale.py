"""`tierserve scale` on the running stack under load: the small tier goes from its config's 2 replicas to 3 and back
(and to autoscaling bounds, then reset), each change applied in place while requests stream, and not one request
fails. The replicas that were there keep running (no restart): their names are the same after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.e2e.conftest import ALPHA_KEY, ROOT, STACK_ADMIN_KEY, Stack
from tests.e2e.load import StreamingLoad

pytestmark = pytest.mark.slow


def _scale(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIERSERVE_ADMIN_KEY": STACK_ADMIN_KEY}
    cli = [sys.executable, "-m", "commands.main", "scale", *args, "--url", stack.url, "--timeout", "600"]
    return subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=700, check=False)


def _replicas(stack: Stack) -> set[str]:
    """The small tier's replicas that answered lately (x-tierserve-replica of a few requests)."""
    seen = set()
    headers = {"authorization": f"Bearer {ALPHA_KEY}"}
    for _ in range(12):
        body = {"model": "small", "messages": [{"role": "user", "content": f"Hi {uuid.uuid4().hex[:6]}"}],
                "max_tokens": 2, "temperature": 1.0}  # fmt: skip
        response = httpx.post(f"{stack.url}/v1/chat/completions", json=body, headers=headers, timeout=120)
        seen.add(response.headers.get("x-tierserve-replica", ""))
    return seen


def test_scaling_a_tier_up_down_and_to_bounds_under_load_fails_no_request(stack: Stack) -> None:
    before = _replicas(stack)
    with StreamingLoad(stack.url, ALPHA_KEY) as load:
        time.sleep(3)
        up = _scale(stack, "small", "3")
        assert up.returncode == 0, up.stderr[-3000:]
        assert "done in" in up.stderr
        down = _scale(stack, "small", "2")
        assert down.returncode == 0, down.stderr[-3000:]
        bounds = _scale(stack, "small", "--min", "1", "--max", "2", "--json")
        assert bounds.returncode == 0, bounds.stderr[-3000:]
        time.sleep(3)
    failed = [o for o in load.outcomes if o.failed]
    assert len(load.outcomes) > 10 and not failed, failed[:3]
    shown = _scale(stack, "--json")
    assert shown.returncode == 0 and '"min_replicas": 1' in shown.stdout, shown.stdout
    reset = _scale(stack, "small", "--reset")
    assert reset.returncode == 0, reset.stderr[-3000:]
    after = _replicas(stack)
    assert before & after, (before, after)  # replicas that were there kept running: scaling restarted none
    unknown = _scale(stack, "huge", "2")
    assert unknown.returncode == 1 and "no tier 'huge'" in unknown.stderr.lower()


def test_status_shows_the_running_fleet(stack: Stack) -> None:
    client = stack.client(ALPHA_KEY)
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)  # type: ignore[arg-type]
    env = {**os.environ, "TIERSERVE_ADMIN_KEY": STACK_ADMIN_KEY}
    cli = [sys.executable, "-m", "commands.main", "status", "--json", "--url", stack.url]
    deadline = time.monotonic() + 60
    while True:  # presence records are refreshed every 2 s: a replica that just started may not be there yet
        done = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        small = report["tiers"]["small"]
        if sum(small["replicas_by_node"].values()) == 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert report["nodes"] and all(node["alive"] for node in report["nodes"])
    assert sum(small["replicas_by_node"].values()) == 2, small
    assert small["deployment"]["status"] == "HEALTHY" and report["tiers"]["large"]["replicas"]
    assert small["answers_per_min"] > 0 and report["redis"]["role"] == "master"
    assert report["gateways"] and report["cache"]["tenants"]
    screen = subprocess.run(
        cli[:-3] + ["--url", stack.url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert screen.returncode == 0 and "tiers (last 60 s)" in screen.stdout, screen.stderr
