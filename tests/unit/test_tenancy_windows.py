"""Property tests of the window and reservation arithmetic, and of the Lua scripts against that arithmetic on a real
Redis (the scripts must make the decisions the Python model makes, at the clock the script read)."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.metrics import GatewayMetrics
from serving.tenancy import Meter, Principal, TenancyConfig
from serving.tenancy.config import Limits
from serving.tenancy.scripts import ADMIT, RESERVE
from serving.tenancy.windows import (
    Reservations,
    Window,
    budget_period,
    openai_duration,
    prompt_token_bound,
    prompt_token_estimate,
    token_cost_micro,
)

windows = st.builds(
    Window, window_ms=st.sampled_from([1000, 60_000, 3_600_000]), buckets=st.sampled_from([1, 4, 12, 60])
)
counts = st.dictionaries(st.integers(0, 200), st.integers(1, 1000), max_size=20)


@given(windows, counts, st.integers(0, 10**7))
def test_a_window_counts_at_most_what_was_added_and_forgets_all_of_it(
    window: Window, raw: dict[int, int], offset: int
) -> None:
    now = offset + 200 * window.width_ms
    base = window.bucket(now) - window.buckets  # keys relative to the window's oldest bucket
    held = {base + index % (window.buckets + 1): count for index, count in raw.items()}
    used = window.used(held, now)
    assert 0 <= used <= sum(held.values())
    later = window.used(held, now + window.width_ms // 2)
    assert later <= used + 1e-9  # with nothing added, the count only falls
    assert window.used(held, now + window.window_ms + window.width_ms) == 0
    assert window.reset_ms(held, now) <= window.window_ms + window.width_ms


@given(windows, st.integers(1, 500), st.integers(0, 10**9))
def test_a_burst_at_one_instant_admits_exactly_the_limit(window: Window, limit: int, now: int) -> None:
    held: dict[int, int] = {}
    admitted = 0
    for _ in range(limit + 20):
        if window.admits(held, now, 1, limit):
            held[window.bucket(now)] = held.get(window.bucket(now), 0) + 1
            admitted += 1
    assert admitted == limit


@given(st.integers(0, 10**8))
def test_openai_durations(ms: int) -> None:
    text = openai_duration(ms)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?|(\d+)ms", text)
    assert match is not None, text
    if ms >= 1000:
        hours, minutes, seconds = (int(g or 0) for g in match.groups()[:3])
        assert hours * 3600 + minutes * 60 + seconds == math.ceil(ms / 1000)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_budget_periods_hold_their_instant_and_tile_the_calendar(now: datetime) -> None:
    for window in ("day", "month"):
        key, end = budget_period(window, now)  # type: ignore[arg-type]
        assert now < end
        assert budget_period(window, end - timedelta(microseconds=1))[0] == key  # same period up to its end
        assert budget_period(window, end)[0] != key
        assert budget_period(window, end - timedelta(microseconds=1))[1] == end
    assert budget_period("day", now)[1] - now <= timedelta(days=1)
    assert budget_period("month", now)[1] - now <= timedelta(days=31)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.floats(0, 100), st.floats(0, 100))
def test_a_token_cost_is_never_undercounted(prompt: int, completion: int, p: float, c: float) -> None:
    exact = (prompt * p + completion * c) / 1000 * 1_000_000
    micro = token_cost_micro(prompt, completion, p, c)
    assert exact - 1e-6 * max(1.0, exact) <= micro <= exact + 1 + 1e-6 * max(1.0, exact)


@given(st.integers(0, 10**6), st.integers(0, 500))
def test_the_prompt_bound_is_above_the_estimate(size: int, messages: int) -> None:
    assert prompt_token_bound(size, messages) >= prompt_token_estimate(size, messages)


@given(
    st.integers(1, 10**6),
    st.lists(st.tuples(st.integers(1, 10**5), st.floats(0, 1), st.booleans()), min_size=1, max_size=80),
)
def test_reservations_never_let_spend_pass_the_limit(limit: int, requests: list[tuple[int, float, bool]]) -> None:
    """Any interleaving of reservations and settlements (each at most what it reserved) stays within the limit."""
    budget = Reservations(limit)
    open_requests: dict[str, int] = {}
    for i, (amount, share, settle_now) in enumerate(requests):
        if budget.reserve(str(i), amount):
            open_requests[str(i)] = amount
        if settle_now and open_requests:
            rid, reserved = open_requests.popitem()
            budget.settle(rid, int(reserved * share))
        assert budget.spent + sum((budget.open or {}).values()) <= limit
    for rid, reserved in open_requests.items():
        budget.settle(rid, reserved)
    assert budget.spent <= limit


# ---------------------------------------------------------------------------------------- scripts vs the model


async def _admit_once(
    client: aioredis.Redis, key: str, prompt: int, rpm: int, tpm: int, window: Window
) -> list[object]:
    script = client.register_script(ADMIT)
    args = ["r", prompt, 60_000, window.width_ms, window.buckets, rpm, tpm, 0]
    return list(await script(keys=[key + ":req", key + ":tok", key + ":in"], args=args))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.sampled_from([0, 0, 0, 0, 35])), min_size=1, max_size=25))
def test_the_admit_script_decides_as_the_model(redis_url: str, steps: list[tuple[int, int]]) -> None:
    """Random prompt sizes and pauses across 100 ms buckets: the script admits exactly when the Python window does,
    and reports the count the model computes at the clock the script read."""
    window = Window(window_ms=500, buckets=5)
    rpm, tpm = 12, 150

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        key = f"prop-{id(steps)}-{asyncio.get_running_loop().time()}"
        requests: dict[int, int] = {}
        tokens: dict[int, int] = {}
        try:
            for prompt, pause_ms in steps:
                await asyncio.sleep(pause_ms / 1000)
                reply = await _admit_once(client, key, prompt, rpm, tpm, window)
                if int(reply[0]) == 1:
                    now = int(reply[1])  # type: ignore[call-overload]
                    expected = window.admits(requests, now, 1, rpm) and window.admits(tokens, now, prompt, tpm)
                    assert expected, (reply, requests, tokens)
                    assert float(reply[2]) == pytest.approx(window.used(requests, now) + 1)  # type: ignore[arg-type]
                    assert float(reply[4]) == pytest.approx(window.used(tokens, now) + prompt)  # type: ignore[arg-type]
                    bucket = window.bucket(now)
                    requests[bucket] = requests.get(bucket, 0) + 1
                    tokens[bucket] = tokens.get(bucket, 0) + prompt
                else:
                    now = int(reply[4])  # type: ignore[call-overload]
                    reason = reply[2].decode() if isinstance(reply[2], bytes) else reply[2]
                    limit, held, cost = (rpm, requests, 1) if reason == "requests" else (tpm, tokens, prompt)
                    assert not window.admits(held, now, cost, limit), (reason, held, now)
                    assert int(reply[3]) >= 1000  # type: ignore[call-overload]
        finally:
            await client.aclose()

    asyncio.run(run())


async def test_the_reserve_script_holds_concurrent_reservations_to_the_limit(redis_url: str, key_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    script = client.register_script(RESERVE)
    key = f"{key_prefix}:budget"

    async def reserve(i: int) -> bool:
        reply = await script(keys=[key], args=[f"r{i}", 60_000, 60_000, 1000, 70])
        return int(reply[0]) == 1

    granted = await asyncio.gather(*(reserve(i) for i in range(50)))
    assert sum(granted) == 14  # 14 * 70 = 980 <= 1000 < 15 * 70
    await client.aclose()


async def test_the_meter_refuses_without_consuming_the_scopes_that_passed(redis_url: str, key_prefix: str) -> None:
    """All or nothing: a request refused by its tenant's limit takes nothing from its key's window."""
    client = aioredis.Redis.from_url(redis_url)
    config = TenancyConfig(tenants={"t": {"rpm": 2}})
    meter = Meter(client, key_prefix, config, 60, GatewayMetrics())
    principal = Principal("t", "k1", limits=Limits(rpm=5))
    for i in range(2):
        await meter.admit(principal, f"r{i}", 10)
    with pytest.raises(Exception, match="tenant 't'"):
        await meter.admit(principal, "r3", 10)
    other_tenant = Principal("u", "k1", limits=Limits(rpm=5))  # same key id, its own window: 2 of 5 used
    ticket = await meter.admit(other_tenant, "r4", 10)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "2"
    await client.aclose()


def test_the_worst_case_covers_every_tier_a_request_can_reach() -> None:
    from serving.config import parse_config
    from serving.tenancy.pricing import Prices

    def config(fallback: list[str]) -> Prices:
        stack = parse_config(
            {
                "tiers": [
                    {"name": "cheap", "model": "a", "price_per_1k_completion_tokens": 1.0,
                     "reliability": {"fallback": fallback}},
                    {"name": "dear", "model": "b", "price_per_1k_completion_tokens": 10.0},
                ],
                "router": {"thresholds": [0.5]},
            }
        )  # fmt: skip
        return Prices(stack, stack.tenancy)

    alone, chained = config([]), config(["dear"])
    # 100 completion tokens: 0.1 USD on `cheap`, 1 USD on `dear` (its fallback), in micro-dollars.
    assert alone.worst_case("cheap", 10, 1, 100, 1) == 100_000
    assert chained.worst_case("cheap", 10, 1, 100, 1) == 1_000_000
    assert alone.worst_case("auto", 10, 1, 100, 1) == 1_000_000  # auto may escalate to the dearest
    assert alone.answered("cache", 10, 100).cost_micro == 0  # no cache price configured
