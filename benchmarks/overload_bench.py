"""Overload against a running stack: waves of concurrent streamed requests to one tier at 1x and 3x its limit.

For each wave: how many were admitted, shed (503 overloaded) or refused over a tenant's share (429), whether every
refusal carried Retry-After, any other 5xx, and the admitted requests' TTFT p50/p95 against the unloaded TTFT.

    python -m benchmarks.overload_bench --url http://127.0.0.1:8000 --model small --concurrency 32,96
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx


async def _one(client: httpx.AsyncClient, url: str, model: str, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Write one sentence about the sea. ({uuid.uuid4().hex[:8]})"}],
        "max_tokens": max_tokens,
        "stream": True,
        "temperature": 1.0,  # not cacheable: every request reaches the tier
    }
    started = time.perf_counter()
    ttft: float | None = None
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        status = response.status_code
        retry_after = response.headers.get("retry-after")
        code = None
        if status != 200:
            text = await response.aread()
            try:
                code = json.loads(text)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = text[:100].decode(errors="replace")
        else:
            async for line in response.aiter_lines():
                if ttft is None and line.startswith("data: {") and '"content"' in line:
                    ttft = time.perf_counter() - started
    return {
        "status": status,
        "code": code,
        "retry_after": retry_after,
        "ttft": ttft,
        "e2e": time.perf_counter() - started,
    }


async def _wave(url: str, model: str, concurrency: int, max_tokens: int, key: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=600, limits=limits, headers=headers) as client:
        results = await asyncio.gather(*(_one(client, url, model, max_tokens) for _ in range(concurrency)))
    admitted = [r for r in results if r["status"] == 200]
    refused = [r for r in results if r["status"] in (429, 503)]
    ttfts = sorted(r["ttft"] for r in admitted if r["ttft"] is not None)
    return {
        "concurrency": concurrency,
        "statuses": dict(Counter(f"{r['status']} {r['code'] or ''}".strip() for r in results)),
        "refusals_with_retry_after": sum(1 for r in refused if r["retry_after"]),
        "refusals": len(refused),
        "other_5xx": sum(1 for r in results if r["status"] >= 500 and r["code"] != "overloaded"),
        "admitted_ttft_p50_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "admitted_ttft_p95_s": round(ttfts[int(0.95 * (len(ttfts) - 1))], 3) if ttfts else None,
        "wall_s": round(max(r["e2e"] for r in results), 2),
    }


async def _run(url: str, model: str, waves: list[int], max_tokens: int, key: str) -> dict[str, Any]:
    baseline = await _wave(url, model, 1, max_tokens, key)
    out: dict[str, Any] = {"url": url, "model": model, "max_tokens": max_tokens, "unloaded": baseline, "waves": []}
    for concurrency in waves:
        out["waves"].append(await _wave(url, model, concurrency, max_tokens, key))
        await asyncio.sleep(2)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="small")
    parser.add_argument("--concurrency", default="32,96", help="Comma-separated wave sizes.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--key", default="", help="API key (a stack with keys refuses requests without one).")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    waves = [int(x) for x in args.concurrency.split(",") if x]
    result = asyncio.run(_run(args.url, args.model, waves, args.max_tokens, args.key))
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
