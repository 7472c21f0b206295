"""Requests and statistics of a benchmark run: prompts, timed chat calls (TTFT from the first content chunk), load."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadtest.sse import asse_chunks, has_content

logger = logging.getLogger(__name__)

_TOPIC_LIST = """photosynthesis, black holes, the French Revolution, compound interest, the TCP handshake,
plate tectonics, vaccines, inflation, the water cycle, machine learning, the Roman Empire, DNA replication,
solar panels, the stock market, volcanoes, antibiotics, the Internet, climate change, the human heart, electric cars,
the Moon landing, honey bees, blockchain, the printing press, earthquakes, coffee, the immune system,
jazz music, rainbows, sleep"""
_TOPICS = tuple(topic.strip() for topic in _TOPIC_LIST.split(","))
_FORMS = ("Explain {} in one sentence.", "Give one surprising fact about {}.")
# Open questions that make a small model talk for a while: the throughput comparison needs long answers.
LONG_PROMPTS = tuple(
    f"Write a detailed, step-by-step explanation of {t} for a curious student, with examples." for t in _TOPICS
)


def short_prompts() -> list[str]:
    """60 distinct short questions: 30 topics x 2 phrasings."""
    return [form.format(topic) for form in _FORMS for topic in _TOPICS]


# ----------------------------------------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1e3 for s in seconds]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "mean_ms": round(sum(ms) / len(ms), 2),
        **{f"p{q}_ms": round(percentile(ms, q), 2) for q in (50, 90, 99)},
        "max_ms": round(max(ms), 2),
    }


def ratio(a: Any, b: Any) -> float | None:
    return round(float(a) / float(b), 3) if isinstance(a, int | float) and isinstance(b, int | float) and b else None


# ------------------------------------------------------------------------------------------------ processes


@dataclass
class Sample:
    latency: float
    ttft: float | None = None
    tokens: int = 0
    cache: str = ""
    finish: str = ""
    index: int = -1  # which request of its run


async def chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    response = await client.post(f"{url}/v1/chat/completions", json=body)
    latency = time.perf_counter() - started
    response.raise_for_status()
    answer = response.json()
    tokens = int((answer.get("usage") or {}).get("completion_tokens", 0))
    finish = str(answer["choices"][0].get("finish_reason"))
    return Sample(latency, tokens=tokens, cache=response.headers.get("x-tierserve-cache", ""), finish=finish)


async def chat_stream(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    """TTFT = first chunk carrying content (not the role-only opening chunk, not the first byte)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        cache = response.headers.get("x-tierserve-cache", "")
        async for chunk in asse_chunks(response.aiter_lines()):
            if "error" in chunk:
                raise RuntimeError(f"in-band error: {chunk['error']}")
            if ttft is None and has_content(chunk):
                ttft = time.perf_counter() - started
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens", 0))
    return Sample(time.perf_counter() - started, ttft, tokens, cache)


Call = Callable[[int], Awaitable[Sample]]


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0

    def headers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sample in self.samples:
            counts[sample.cache or "(none)"] = counts.get(sample.cache or "(none)", 0) + 1
        return counts


async def load(call: Call, count: int, workers: int, budget_s: float) -> Run:
    """`count` calls from `workers` clients (1: sequential), stopped early when `budget_s` is spent.
    A failed request is counted, not fatal; too many failures end the run."""
    run = Run()
    counter = iter(range(count))
    deadline = time.monotonic() + budget_s

    async def worker() -> None:
        for i in counter:
            if time.monotonic() > deadline or len(run.errors) > max(5, count // 10):
                return
            try:
                sample = await call(i)
                sample.index = i
                run.samples.append(sample)
            except (httpx.HTTPError, RuntimeError, ValueError) as error:
                run.errors.append(f"{type(error).__name__}: {error}"[:200])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    run.wall = time.perf_counter() - started
    if len(run.samples) + len(run.errors) < count:
        logger.warning("stopped after %d/%d requests (budget %.0fs)", len(run.samples), count, budget_s)
    if run.errors:
        logger.warning("%d request(s) failed, first: %s", len(run.errors), run.errors[0])
    return run


def throughput(run: Run) -> dict[str, Any]:
    tokens, n, wall = sum(s.tokens for s in run.samples), len(run.samples), run.wall
    return {
        "requests": n,
        "errors": len(run.errors),
        "wall_s": round(wall, 2),
        "requests_per_s": round(n / wall, 2) if wall else None,
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 1) if wall else None,
        "mean_tokens_per_request": round(tokens / n, 1) if n else None,
        "latency": summary_ms([s.latency for s in run.samples]),
        "cache_headers": run.headers(),
    }


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


async def cache_phase(url: str, args: argparse.Namespace, run_seed: int) -> dict[str, Any]:
    """Misses store their answer; repeating the stored ones gives hits. Only complete answers are stored
    (finish_reason "stop", not "length"), so only those are repeated. The per-run seed is part of the cache
    key (it does not change a temperature-0 answer), so answers stored by earlier runs cannot hit."""
    prompts = short_prompts()

    def body(i: int) -> dict[str, Any]:
        # Past the 60 prompts, another seed keeps the request a distinct cache entry.
        msgs = [{"role": "user", "content": prompts[i % len(prompts)]}]
        sampling = {"temperature": 0, "max_tokens": args.cache_max_tokens, "seed": run_seed + i // len(prompts)}
        return {"model": "small", "messages": msgs, **sampling}

    budget, n, clients = args.phase_budget, args.requests, args.concurrency
    async with _client() as client:
        misses = await load(lambda i: chat(client, url, body(i)), n, 1, budget)
        stored = [s.index for s in misses.samples if s.cache == "miss" and s.finish == "stop"] or [0]
        if len(stored) < n // 2:
            logger.warning("only %d/%d answers were complete (stored); raise --cache-max-tokens", len(stored), n)
        hits = await load(lambda i: chat(client, url, body(stored[i % len(stored)])), n, 1, budget)
        many = await load(lambda i: chat(client, url, body(stored[i % len(stored)])), n * 5, clients, 60)
    miss = summary_ms([s.latency for s in misses.samples if s.cache == "miss"])
    hit = summary_ms([s.latency for s in hits.samples if s.cache == "hit"])
    return {
        "max_tokens": args.cache_max_tokens,
        "stored_answers": len(stored),
        "miss": miss | {"errors": len(misses.errors), "cache_headers": misses.headers()},
        "hit": hit | {"errors": len(hits.errors), "cache_headers": hits.headers()},
        "hit_speedup_p50": ratio(miss.get("p50_ms"), hit.get("p50_ms")),
        "hit_throughput": {"concurrency": clients, **throughput(many)},
    }


async def serving_phase(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Same prompts, seeds and sampling on both servers: temperature 0.5 (above cache.max_temperature, so the
    gateway bypasses its cache) and the tier pinned to `small`."""

    def body(i: int, max_tokens: int) -> dict[str, Any]:
        msgs = [{"role": "user", "content": LONG_PROMPTS[i % len(LONG_PROMPTS)]}]
        return {"model": "small", "messages": msgs, "temperature": 0.5, "max_tokens": max_tokens, "seed": i}

    async with _client() as client:
        await load(lambda i: chat_stream(client, url, body(i, 8)), 2, 1, 120)  # warm-up, not counted
        seq = await load(
            lambda i: chat_stream(client, url, body(i, args.stream_max_tokens)), args.requests, 1, args.phase_budget
        )
        many = await load(lambda i: chat_stream(client, url, body(i, 64)), args.tput_requests, 8, args.phase_budget)
    return {
        "ttft": summary_ms([s.ttft for s in seq.samples if s.ttft is not None]),
        "end_to_end": summary_ms([s.latency for s in seq.samples]),
        "sequential": {"max_tokens": args.stream_max_tokens, "errors": len(seq.errors), "cache_headers": seq.headers()},
        "throughput": {"concurrency": 8, "max_tokens": 64, **throughput(many)},
    }


# ---------------------------------------------------------------------------------------------------- run
