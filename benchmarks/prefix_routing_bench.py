"""Replica routing that uses the KV cache, measured: the small tier with two replicas, multi-turn conversations,
Ray Serve's default power-of-two choice against Ray Serve LLM's prefix-aware router (`request_router:
prefix_aware`), each arm on a freshly started embedded default (real vLLM with its prefix cache, Ray Serve).

Every conversation opens with its own long system prompt (a few hundred tokens of its own text) and goes on for
`--turns` turns, each turn resending the whole conversation so far, as chat clients do. A turn that lands on the
replica that served the previous one finds the conversation's prefix in that engine's KV cache and skips most of
the prefill. The semantic cache is off (every turn reaches a tier). Reported per arm: TTFT p50/p95 of the first
turns (no prefix anywhere yet) and of the later turns, and the share of later turns served by the same replica as
the turn before.

    python -m benchmarks.prefix_routing_bench [--users 4] [--conversations 24] [--turns 4]
        [--out docs/prefix-routing-bench.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.measure import percentile
from benchmarks.stack import ROOT, served
from loadtest.sse import asse_chunks, has_content

WORDS = (  # noqa: SIM905 - a paragraph of words reads better than a column of them
    "river mountain harbor lantern orchard meadow granite copper violet thunder canyon willow ember "
    "glacier compass falcon marble saffron tide quarry beacon cedar delta fjord grove heron ivory juniper "
    "kelp lagoon mosaic nectar opal prairie quill reef summit tundra umber valley wharf yarrow zephyr "
    "basalt cobalt dune"
).split()


def _config(folder: Path, router: str) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    config["models_dir"] = str(ROOT / ".tierserve" / "models")
    config["data_dir"] = str(folder / "data")
    small = next(tier for tier in config["tiers"] if tier["name"] == "small")
    small["deployment"].update(num_replicas=2, request_router=router)
    config["cache"]["enabled"] = False  # every turn reaches a tier
    path = folder / f"prefix-{router}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _system_prompt(rng: random.Random, words: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"You are a travel guide. Reference notes for this trip: {body}. Answer in one short sentence."


async def _turn(client: httpx.AsyncClient, url: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    body = {"model": "small", "messages": messages, "max_tokens": 12, "temperature": 0, "stream": True}
    started = time.perf_counter()
    ttft = None
    text = []
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        replica = response.headers.get("x-tierserve-replica", "")
        async for chunk in asse_chunks(response.aiter_lines()):
            if has_content(chunk):
                ttft = ttft if ttft is not None else time.perf_counter() - started
                text.append(chunk["choices"][0]["delta"].get("content") or "")
        ok = response.status_code == 200 and ttft is not None
    return {"ok": ok, "ttft_s": ttft, "replica": replica, "text": "".join(text)}


async def _conversation(
    client: httpx.AsyncClient, url: str, seed: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    messages = [{"role": "system", "content": _system_prompt(rng, args.prompt_words)}]
    turns = []
    for number in range(args.turns):
        messages.append(
            {"role": "user", "content": f"Question {number + 1}: what should I see near the {rng.choice(WORDS)}?"}
        )
        outcome = await _turn(client, url, messages)
        turns.append({"conversation": seed, "turn": number, **{k: v for k, v in outcome.items() if k != "text"}})
        messages.append({"role": "assistant", "content": outcome["text"] or "I do not know."})
    return turns


async def _arm(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for seed in range(args.conversations):
        queue.put_nowait(seed)
    rows: list[dict[str, Any]] = []

    async def user(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            rows.extend(await _conversation(client, url, queue.get_nowait(), args))

    async with httpx.AsyncClient(timeout=300) as client:
        await _conversation(client, url, 10_000, args)  # warm-up: both arms start from engines that have run
        await asyncio.gather(*(user(client) for _ in range(args.users)))
    return rows


def _quantile(values: list[float], q: float) -> float | None:
    return round(percentile(values, q * 100), 4) if values else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    first = [r["ttft_s"] for r in rows if r["ok"] and r["turn"] == 0]
    later = [r["ttft_s"] for r in rows if r["ok"] and r["turn"] > 0]
    by_turn = {(r["conversation"], r["turn"]): r["replica"] for r in rows}
    follow = [by_turn[(c, t)] == by_turn.get((c, t - 1)) for (c, t) in by_turn if t > 0]
    return {
        "requests": len(rows),
        "failed": sum(not r["ok"] for r in rows),
        "replicas_seen": len({r["replica"] for r in rows}),
        "first_turn_ttft_p50_s": _quantile(first, 0.5),
        "first_turn_ttft_p95_s": _quantile(first, 0.95),
        "later_turn_ttft_p50_s": _quantile(later, 0.5),
        "later_turn_ttft_p95_s": _quantile(later, 0.95),
        "later_turns_on_previous_replica": round(sum(follow) / len(follow), 3) if follow else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--prompt-words", type=int, default=400, help="words of each conversation's system prompt")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result: dict[str, Any] = {"workload": {k: v for k, v in vars(args).items() if k != "out"}, "arms": {}}
    for router in ("power_of_two", "prefix_aware"):
        with tempfile.TemporaryDirectory(prefix="prefix-bench-") as tmp:
            folder = Path(tmp)
            with served(_config(folder, router), folder / "tierserve.log") as url:
                rows = asyncio.run(_arm(url, args))
        result["arms"][router] = _summary(rows)
        print(router, json.dumps(result["arms"][router]), flush=True)
    base, prefix = result["arms"]["power_of_two"], result["arms"]["prefix_aware"]
    result["ratios_prefix_over_power_of_two"] = {
        key: round(prefix[key] / base[key], 3)
        for key in ("later_turn_ttft_p50_s", "later_turn_ttft_p95_s", "first_turn_ttft_p50_s")
        if base.get(key) and prefix.get(key)
    }
    result["command"] = "python -m benchmarks.prefix_routing_bench " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
