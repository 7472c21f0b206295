"""What the gateway costs on top of vLLM's own OpenAI server: one-tier tierserve and vLLM's server on the same
model, both up, measured in interleaved rounds (A, B, A, B: these machines drift by +-15 % between runs, so the
spread across rounds is reported beside the medians).

Per round and server (requests timed by benchmarks.measure, tokens from each stream's usage): TTFT and end-to-end
time of sequential 32-token streams, output tokens/s at 8 concurrent streams, and the time of structured-output
(json_schema) and tool-call (named tool_choice) requests. Then, on tierserve alone, an identical-request cache hit
against the same ingress's /v1/models round trip.

    python -m benchmarks.overhead --out docs/overhead-latest.json [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.measure import Sample, chat, chat_stream, percentile, ratio
from loadtest.processes import HOST, free_port, launch, record_run, stop, wait_healthy

PROMPTS = (
    "Explain what a hash table is.",
    "Write a short poem about the sea.",
    "What is the capital of Japan?",
    "List three uses of copper.",
    "How do vaccines work?",
    "Describe a cat in two sentences.",
    "What is 12 times 13?",
    "Give me a tip for learning Python.",
)
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _question(number: int, max_tokens: int, nonce: str) -> dict[str, Any]:
    """A chat request with a prompt nobody asked before, above the cache's temperature limit (it reaches the tier)."""
    content = f"{PROMPTS[number % len(PROMPTS)]} (#{number} {nonce})"
    messages = [{"role": "user", "content": content}]
    return {"model": "small", "messages": messages, "max_tokens": max_tokens, "temperature": 0.5, "seed": number}


JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def _short(question: str, seed: int, **fields: object) -> dict[str, Any]:
    """A 40-token chat request with its feature fields (structured output, tool choice)."""
    messages = [{"role": "user", "content": question}]
    return {"model": "small", "messages": messages, "max_tokens": 40, "temperature": 0.5, "seed": seed, **fields}


async def serving_round(url: str, sequential: int, concurrent: int) -> dict[str, Any]:
    nonce = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(timeout=300) as client:
        for number in range(3):  # warm-up
            await chat_stream(client, url, _question(10_000 + number, 8, nonce))
        runs = [await chat_stream(client, url, _question(number, 32, nonce)) for number in range(sequential)]
        gate = asyncio.Semaphore(8)

        async def limited(number: int) -> Sample:
            async with gate:
                return await chat_stream(client, url, _question(1_000 + number, 64, nonce))

        started = time.perf_counter()
        parallel = await asyncio.gather(*(limited(number) for number in range(concurrent)))
        wall = time.perf_counter() - started
        structured = [
            (
                await chat(client, url, _short(f"Describe a person #{n} {nonce}.", n, response_format=JSON_SCHEMA))
            ).latency
            for n in range(8)
        ]
        tools = [
            (
                await chat(client, url, _short(f"Weather in city #{n} {nonce}?", n, tools=[WEATHER], tool_choice=NAMED))
            ).latency
            for n in range(8)
        ]
    return {
        "ttft_p50_ms": round(percentile([r.ttft or 0.0 for r in runs], 50) * 1e3, 1),
        "e2e32_p50_ms": round(percentile([r.latency for r in runs], 50) * 1e3, 1),
        "tokens_per_stream": round(statistics.fmean(r.tokens for r in runs), 1),
        "tok_s_at_8": round(sum(r.tokens for r in parallel) / wall, 1),
        "json_schema_p50_ms": round(percentile(structured, 50) * 1e3, 1),
        "tool_call_p50_ms": round(percentile(tools, 50) * 1e3, 1),
    }


async def cache_round(url: str, requests: int) -> dict[str, Any]:
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": f"What is the capital of France? ({uuid.uuid4().hex[:8]})"}],
        "max_tokens": 16,
        "temperature": 0,
    }
    async with httpx.AsyncClient(timeout=60) as client:
        first = await client.post(f"{url}/v1/chat/completions", json=body)
        assert first.headers.get("x-tierserve-cache") == "miss", first.headers
        models, hits = [], []
        for _ in range(requests):  # interleaved, so both see the same machine
            started = time.perf_counter()
            (await client.get(f"{url}/v1/models")).raise_for_status()
            models.append(time.perf_counter() - started)
            started = time.perf_counter()
            hit = await client.post(f"{url}/v1/chat/completions", json=body)
            hits.append(time.perf_counter() - started)
            assert hit.headers.get("x-tierserve-cache") == "hit"
    return {
        "models_p50_ms": round(percentile(models, 50) * 1e3, 2),
        "identical_hit_p50_ms": round(percentile(hits, 50) * 1e3, 2),
        "identical_hit_p99_ms": round(percentile(hits, 99) * 1e3, 2),
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": min(values), "max": max(values)}


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from serving.config import load_config
    from serving.engine import CPU_ENGINE_ENV

    config = load_config(args.config)
    small = config.tier("small")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    servers = []
    try:
        port = free_port()
        tierserve = launch(
            "tierserve",
            [sys.executable, "-m", "commands.main", "serve", "--config", str(args.config), "--port", str(port)],
            env,
            port,
            args.log_dir,
        )
        servers.append(tierserve)
        result["start_s"] = {"tierserve": round(wait_healthy(tierserve, 900), 1)}
        port = free_port()
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--disable-uvicorn-access-log",
            "--model", config.model_path(small), "--served-model-name", "small", "--dtype", small.engine.dtype,
            "--max-model-len", str(small.engine.max_model_len), "--seed", str(small.engine.seed),
            "--enforce-eager", "--enable-auto-tool-choice", "--tool-call-parser", str(small.engine.tool_call_parser),
            "--host", HOST, "--port", str(port),
        ]  # fmt: skip
        # The tier replica's engine environment; Ray sets OMP_NUM_THREADS to the replica's whole CPUs (1 here).
        vllm_env = {**env, **CPU_ENGINE_ENV, "OMP_NUM_THREADS": "1"}
        vllm = launch("vllm", command, vllm_env, port, args.log_dir)
        servers.append(vllm)
        result["start_s"]["vllm"] = round(wait_healthy(vllm, 900), 1)
        rounds: dict[str, list[dict[str, Any]]] = {"tierserve": [], "vllm": []}
        for number in range(args.rounds):
            order = [("tierserve", tierserve), ("vllm", vllm)]
            for name, server in order if number % 2 == 0 else order[::-1]:
                rounds[name].append(asyncio.run(serving_round(server.url, args.sequential, args.concurrent)))
                result["rounds"] = rounds
        result["cache"] = asyncio.run(cache_round(tierserve.url, args.cache_requests))
    finally:
        for server in servers:
            stop(server)
    summary: dict[str, Any] = {}
    for metric in rounds["tierserve"][0]:
        ours = [r[metric] for r in rounds["tierserve"]]
        theirs = [r[metric] for r in rounds["vllm"]]
        summary[metric] = {
            "tierserve": _spread(ours),
            "vllm": _spread(theirs),
            "ratio_of_medians": ratio(statistics.median(ours), statistics.median(theirs)),
        }
    summary["ttft_p50_ms"]["difference_ms"] = round(
        statistics.median(r["ttft_p50_ms"] for r in rounds["tierserve"])
        - statistics.median(r["ttft_p50_ms"] for r in rounds["vllm"]),
        1,
    )
    cache = result["cache"]
    cache["hit_over_models"] = ratio(cache["identical_hit_p50_ms"], cache["models_p50_ms"])
    result["summary"] = summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--config", type=Path, default=Path("configs/one-tier.yaml"), help="A stack config with the small tier only.")
    add("--out", type=Path, default=Path("docs/overhead-latest.json"))
    add("--rounds", type=int, default=4, help="Rounds per server, interleaved.")
    add("--sequential", type=int, default=20, help="Sequential 32-token streams per round.")
    add("--concurrent", type=int, default=16, help="64-token streams per round at concurrency 8.")
    add("--cache-requests", type=int, default=200)
    add("--log-dir", type=Path, default=Path(".tierserve/bench-logs"))
    args = parser.parse_args(argv)
    result = record_run(lambda into: run(args, into), args.out)
    print(json.dumps(result.get("summary", result), indent=1))
    print(json.dumps(result.get("cache", {}), indent=1))


if __name__ == "__main__":
    main()
