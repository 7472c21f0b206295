"""Shadow scoring on the real stack (configs/test.yaml shadow-scores tenant gamma only): an answer of the small
tier and a cache hit are asked again of the large tier (gemma on vLLM) after the user has them, scored by the
gateway's embedder; the counts and similarities reach the stack's one `/metrics`, and the drift report sees the
shadow signals. The other tenants' answers are never re-asked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from tests.e2e.conftest import ALPHA_KEY, GAMMA_KEY, ROOT, STACK_ADMIN_KEY, Stack

pytestmark = pytest.mark.slow


def _count(url: str, source: str, outcome: str = "scored") -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    pattern = rf'tierserve_shadow_requests_total\{{outcome="{outcome}",source="{source}",tier="small"\}} (\S+)'
    return sum(float(value) for value in re.findall(pattern, text))


def _wait_for(url: str, source: str, at_least: float, timeout_s: float = 240) -> float:
    deadline = time.monotonic() + timeout_s
    while (found := _count(url, source)) < at_least and time.monotonic() < deadline:
        time.sleep(2)
    return found


def test_small_answers_and_cache_hits_of_the_shadowed_tenant_are_scored_on_large(stack: Stack) -> None:
    gamma = stack.client(GAMMA_KEY)
    pinned_before, cache_before = _count(stack.url, "pinned"), _count(stack.url, "cache")
    run = uuid.uuid4().hex[:6]  # questions this run asks first (the stack's Redis outlives a test session)
    messages = [{"role": "user", "content": f"Name one primary colour. ({run})"}]
    answer = gamma.chat.completions.create(model="small", messages=messages, max_tokens=16, temperature=0)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    assert _wait_for(stack.url, "pinned", pinned_before + 1) >= pinned_before + 1

    question = [{"role": "user", "content": f"Say hello to the shadow scorer. ({run})"}]
    for _ in range(2):  # the second is a hit of the first's answer
        raw = gamma.chat.completions.with_raw_response.create(
            model="small", messages=question, max_tokens=12, temperature=0
        )  # type: ignore[arg-type]
    assert raw.headers["x-tierserve-cache"] == "hit"
    assert _wait_for(stack.url, "cache", cache_before + 1) >= cache_before + 1

    scraped = httpx.get(f"{stack.url}/metrics", timeout=30).text
    counts = re.findall(r'tierserve_shadow_similarity_count\{source="(\w+)",tier="small"\} (\S+)', scraped)
    assert {source for source, count in counts if float(count) > 0} >= {"pinned", "cache"}
    assert re.search(r"tierserve_shadow_cost_usd_total [1-9]", scraped) or re.search(
        r"tierserve_shadow_cost_usd_total \d\.\d*e-\d+", scraped
    )
    env = {**os.environ, "TIERSERVE_ADMIN_KEY": STACK_ADMIN_KEY}
    cli = [sys.executable, "-m", "commands.main", "drift", "report", "--url", stack.url, "--json"]
    done = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: an alarm is up (not expected here, but not this test's)
    # Each gateway replica reports its own detector; the one answering may not be the one that scored.
    assert "shadow_seen" in json.loads(done.stdout)


def test_a_tenant_outside_the_shadow_share_is_never_re_asked(stack: Stack) -> None:
    before = _count(stack.url, "pinned") + _count(stack.url, "cache")
    alpha = stack.client(ALPHA_KEY)
    messages = [{"role": "user", "content": "Name one planet."}]
    alpha.chat.completions.create(model="small", messages=messages, max_tokens=8, temperature=0)  # type: ignore[arg-type]
    time.sleep(6)
    assert _count(stack.url, "pinned") + _count(stack.url, "cache") == before
