"""Shadow scoring's cost to users, and what it measures, on the embedded default (real vLLM tiers, Ray Serve, Redis).

Starts `tierserve serve` on configs/default.yaml (shadow mode `idle`, its default) with three tenants: `plain` (no
shadow), `shadowed` (a share of its answers and cache hits, 5 % by default, re-asked of the largest tier) and
`scored` (every one re-asked). Then:

1. Side by side, under the same load (users with think time asking ShareGPT first turns, model=auto, streamed, a
   quarter of them repeats so the cache answers some), phases of `--phase-requests` go plain, shadowed, shadowed,
   plain (the same questions in each pair): TTFT p50/p95 and end-to-end p95 per arm, and the shadowed arm's ratio
   to the plain one (the anchor, measured in the same run).
2. The agreement figures: `--scored-requests` more for tenant `scored` (all re-asked), then the shadow counters from
   the stack's /metrics: samples by outcome, and the agreement per source (routed, cache) and tier.

    python -m benchmarks.shadow_bench [--share 0.05] [--phase-requests 80] [--out docs/shadow-bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.stack import ROOT, served

KEYS = {"plain": "sk-bench-plain", "shadowed": "sk-bench-shadowed", "scored": "sk-bench-scored"}


def _config(folder: Path, share: float) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["models_dir"] = str(ROOT / ".tierserve" / "models")
    config["data_dir"] = str(folder / "data")
    config.setdefault("gateway", {})["api_keys"] = {key: tenant for tenant, key in KEYS.items()}
    config["shadow"] = {"tenants": {"plain": 0.0, "shadowed": share, "scored": 1.0}}
    path = folder / "shadow-bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prompts(count: int, seed: int) -> list[str]:
    from loadtest.workloads import load_sharegpt

    fresh = [c.prompt for c in load_sharegpt(4 * count, max_prompt_chars=300)][: count - count // 4]
    rng = random.Random(seed)
    asked = fresh + [rng.choice(fresh) for _ in range(count // 4)]  # repeats: the cache answers some
    rng.shuffle(asked)
    return asked


async def _one(client: httpx.AsyncClient, url: str, key: str, prompt: str) -> dict[str, Any]:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 32,
        "temperature": 0,
        "stream": True,
    }
    started = time.perf_counter()
    ttft = None
    headers = {"authorization": f"Bearer {key}"}
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as response:
        status, cache = response.status_code, response.headers.get("x-tierserve-cache")
        async for line in response.aiter_lines():
            if ttft is None and line.startswith("data: {") and '"content"' in line:
                ttft = time.perf_counter() - started
    return {"status": status, "cache": cache, "ttft": ttft, "e2e": time.perf_counter() - started}


async def _phase(
    url: str, key: str, prompts: list[str], concurrency: int, think: tuple[float, float], seed: int
) -> list[dict[str, Any]]:
    queue = list(prompts)
    results: list[dict[str, Any]] = []
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=600) as client:

        async def user() -> None:
            while queue:
                results.append(await _one(client, url, key, queue.pop(0)))
                await asyncio.sleep(rng.uniform(*think))  # a user reads the answer before asking again

        await asyncio.gather(*(user() for _ in range(concurrency)))
    return results


def _quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None


def _arm(results: list[dict[str, Any]]) -> dict[str, Any]:
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    e2e = [r["e2e"] for r in results if r["status"] == 200]
    return {
        "requests": len(results),
        "errors": sum(1 for r in results if r["status"] != 200),
        "cache_hits": sum(1 for r in results if r["cache"] == "hit"),
        "ttft_p50_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "ttft_p95_s": _quantile(ttfts, 0.95),
        "e2e_p95_s": _quantile(e2e, 0.95),
    }


def _shadow_metrics(url: str) -> dict[str, Any]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    outcomes: dict[str, float] = {}
    for outcome, source, tier, value in re.findall(
        r'tierserve_shadow_requests_total\{outcome="(\w+)",source="(\w+)",tier="([\w.-]+)"\} (\S+)', text
    ):
        outcomes[f"{outcome} {source} {tier}"] = float(value)
    agreement = {}
    for source, tier, value in re.findall(
        r'tierserve_shadow_agreements_total\{source="(\w+)",tier="([\w.-]+)"\} (\S+)', text
    ):
        scored = outcomes.get(f"scored {source} {tier}", 0.0)
        if scored:
            agreement[f"{source} {tier}"] = {"scored": int(scored), "agreed": round(float(value) / scored, 3)}
    similarity = {}
    for source, tier, total in re.findall(
        r'tierserve_shadow_similarity_sum\{source="(\w+)",tier="([\w.-]+)"\} (\S+)', text
    ):
        scored = outcomes.get(f"scored {source} {tier}", 0.0)
        if scored:
            similarity[f"{source} {tier}"] = round(float(total) / scored, 3)
    cost = re.search(r"tierserve_shadow_cost_usd_total (\S+)", text)
    preempted = re.search(r"tierserve_shadow_preemptions_total (\S+)", text)
    return {
        "samples": {k: int(v) for k, v in sorted(outcomes.items()) if v},
        "agreement": agreement,
        "mean_similarity": similarity,
        "cost_usd": float(cost.group(1)) if cost else 0.0,
        "preemptions": int(float(preempted.group(1))) if preempted else 0,
    }


async def _drain(url: str, timeout_s: float = 600) -> None:
    """Until no shadow generation is in flight twice in a row (the queue has emptied)."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline and quiet < 3:
        text = httpx.get(f"{url}/metrics", timeout=30).text
        inflight = sum(float(v) for v in re.findall(r"tierserve_shadow_inflight\{[^}]*\} (\S+)", text))
        quiet = quiet + 1 if inflight == 0 else 0
        await asyncio.sleep(2)


async def _run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    prompts = _prompts(4 * args.phase_requests + args.scored_requests, args.seed)
    think = (args.think_min, args.think_max)
    warm = [f"Warm-up question {i}: name a colour." for i in range(8)]
    await _phase(url, KEYS["plain"], warm, 2, (0, 0), args.seed)  # not counted; none of the measured questions
    arms: dict[str, list[dict[str, Any]]] = {"plain": [], "shadowed": []}
    phases = []
    for index, arm in enumerate(["plain", "shadowed", "shadowed", "plain"]):
        # Each arm asks the same questions (tenants' caches are separate): the same work, with and without shadows;
        # each goes first once, so neither gains more from the engines' prefix cache warmed by the other.
        block = prompts[(index // 2) * args.phase_requests : (index // 2 + 1) * args.phase_requests]
        started = time.perf_counter()
        results = await _phase(url, KEYS[arm], block, args.concurrency, think, args.seed + index)
        arms[arm] += results
        phases.append({"arm": arm, "seconds": round(time.perf_counter() - started, 1), **_arm(results)})
    await _drain(url)
    at_share = _shadow_metrics(url)
    scored = prompts[4 * args.phase_requests :]
    await _phase(url, KEYS["scored"], scored + scored[: len(scored) // 4], args.concurrency, think, args.seed)
    await _drain(url)
    plain, shadowed = _arm(arms["plain"]), _arm(arms["shadowed"])
    return {
        "share": args.share,
        "concurrency": args.concurrency,
        "think_s": [args.think_min, args.think_max],
        "phases": phases,
        "plain": plain,
        "shadowed": shadowed,
        "ratio_ttft_p50": round(shadowed["ttft_p50_s"] / plain["ttft_p50_s"], 3) if plain["ttft_p50_s"] else None,
        "ratio_ttft_p95": round(shadowed["ttft_p95_s"] / plain["ttft_p95_s"], 3) if plain["ttft_p95_s"] else None,
        "shadow_at_share": at_share,
        "shadow_all": _shadow_metrics(url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--phase-requests", type=int, default=80)
    parser.add_argument("--scored-requests", type=int, default=80)
    parser.add_argument("--concurrency", type=int, default=4, help="Users, each asking one question at a time.")
    parser.add_argument("--think-min", type=float, default=0.5, help="Seconds a user waits between questions.")
    parser.add_argument("--think-max", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp:
        folder = Path(tmp)
        with served(_config(folder, args.share), folder / "tierserve.log") as url:
            result = asyncio.run(_run(url, args))
    result["command"] = "python -m benchmarks.shadow_bench " + " ".join(sys.argv[1:])
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
