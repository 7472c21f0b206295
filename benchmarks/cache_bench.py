"""Benchmark of the semantic cache itself: what a hit costs at the least, what it costs through the stack, how
hits scale with concurrency, how the HNSW index behaves at 100k and 1M entries, and how tierserve's cache
compares with GPTCache and a plain exact-match Redis cache on the same embeddings. Everything talks to
127.0.0.1 only; every loop is bounded in count and time; every process started is stopped.

    python -m benchmarks.cache_bench --sizes 100000,1000000 --out docs/cache-bench-latest.json

GPTCache is not a dependency of tierserve: install it into the venv only for this benchmark
(`pip install gptcache sqlalchemy`); without it that column reports the import error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.text import Text

from benchmarks import cache_compare as compare
from benchmarks import cache_parts as parts
from benchmarks.bench import _fmt, _table
from benchmarks.cache_side_by_side import FloorParts, side_by_side
from benchmarks.measure import Sample, chat, load, ratio, short_prompts, summary_ms, throughput
from loadtest.processes import Server, free_port, launch, record_run, stop, wait_healthy
from serving.redis_server import LocalRedis

logger = logging.getLogger(__name__)


def _note_load(result: dict[str, Any], step: str) -> None:
    result["load_avg_1m"][step] = round(os.getloadavg()[0], 2)


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Fills `result` as it goes, so a failed run still leaves its partial figures."""
    import torch

    from cache.embedder import SentenceTransformerEmbedder

    seed = random.randrange(1, 2**31)
    result |= {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python -m benchmarks.cache_bench", *sys.argv[1:]]),
        "run_seed": seed,
        "machine": {"cpus": os.cpu_count(), "mem_gib": round(psutil.virtual_memory().total / 2**30, 1)},
        "load_avg_1m": {"start": round(os.getloadavg()[0], 2)},
    }
    budget = args.loop_budget
    embedder = SentenceTransformerEmbedder()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads)
    result["torch_threads"] = {"default": default_threads, "used": args.torch_threads}
    pairs = parts.paraphrase_pairs()
    generated = parts.generated_questions(args.real)
    started = time.perf_counter()
    real = embedder.embed(generated)
    result["real_embeddings"] = {"sentences": args.real, "seconds": round(time.perf_counter() - started, 1)}
    lookup_texts = [b for _, b in pairs]
    probes = embedder.embed(lookup_texts)
    _note_load(result, "embed_corpus")

    args.skip_stack = args.skip_stack or args.index_only
    floor_parts: FloorParts | None = None
    if not args.index_only:
        with LocalRedis() as redis_server:
            # 1. The floor: each part of a hit alone.
            floor: dict[str, Any] = {}
            floor["embed_batch1"] = parts.timed(
                lambda i: embedder.embed([lookup_texts[i % len(lookup_texts)]]), args.floor_n, budget
            )
            if default_threads != args.torch_threads:
                torch.set_num_threads(default_threads)
                floor["embed_batch1_default_threads"] = parts.timed(
                    lambda i: embedder.embed([lookup_texts[i % len(lookup_texts)]]), min(100, args.floor_n), budget / 2
                )
                torch.set_num_threads(args.torch_threads)
            tenant_index = parts.new_index()
            for i, vector in enumerate(real[:10_000]):
                tenant_index.add(f"e{i}", "ns0", vector)
            floor["hnsw_search_10k"] = parts.hnsw_floor(tenant_index, probes, args.floor_n, budget)
            # Kept for the floor measured beside the hits (1b); the rest of the run builds its own indexes.
            floor_parts = FloorParts(embedder, tenant_index)
            floor["redis_get_many_1"] = parts.redis_floor(redis_server.url, probes[0], args.floor_n, budget, seed)
            floor["http_trivial_uvicorn"] = parts.http_floor(args.floor_n, budget, args.log_dir)
            keys = ("embed_batch1", "hnsw_search_10k", "redis_get_many_1", "http_trivial_uvicorn")
            floor["sum"] = {q: round(sum(floor[k][q] for k in keys), 2) for q in ("p50_ms", "p99_ms")}
            result["floor"] = floor
            _note_load(result, "floor")

            # 2. Embedding throughput, alone and through the batcher.
            texts = generated[: args.real]
            result["embed_throughput"] = [
                parts.embed_throughput(embedder, texts, b, args.tput_budget) for b in (64, 128)
            ]
            result["batcher"] = parts.batcher_throughput(embedder, texts, 64, args.tput_budget)
            _note_load(result, "embed_throughput")

            # 4. Side by side (before the index at scale: that one needs the memory).
            stored = [a for a, _ in pairs]
            stored = list(dict.fromkeys(stored + generated))[: args.sbs_stored]
            position = {text: i for i, text in enumerate(stored)}
            rng = random.Random(seed)
            paraphrases = [(b, position[a], True) for a, b in pairs if a in position and b not in position]
            half = args.sbs_lookups // 2
            lookups = rng.sample(paraphrases, min(half, len(paraphrases)))
            lookups += [(stored[j], j, False) for j in rng.sample(range(len(stored)), args.sbs_lookups - len(lookups))]
            rng.shuffle(lookups)
            result["side_by_side"] = compare.side_by_side(embedder, redis_server.url, stored, lookups, seed, budget)
            _note_load(result, "side_by_side")

    # 1b + 2b. The stack: cache hits through the gateway.
    if not args.skip_stack and floor_parts is not None:
        try:
            result["stack"] = stack_hits(args, seed, floor_parts)
        except (RuntimeError, TimeoutError, httpx.HTTPError) as error:  # the rest of the run still counts
            logger.exception("stack measurement failed")
            result["stack_error"] = f"{type(error).__name__}: {error}"[:2000]
    if "stack" in result:
        hit_p50 = result["stack"]["hit"].get("p50_ms")
        result["stack"]["hit_p50_over_floor_p50"] = ratio(hit_p50, result["floor"]["sum"]["p50_ms"])
        semantic_p50 = result["stack"]["semantic_hit"].get("p50_ms")
        result["stack"]["semantic_hit_p50_over_floor_p50"] = ratio(semantic_p50, result["floor"]["sum"]["p50_ms"])
        # The goal for identical repeats: against the same ingress's /v1/models round trip.
        models_p50 = result["stack"]["models"].get("p50_ms")
        result["stack"]["hit_p50_over_models_p50"] = ratio(hit_p50, models_p50)
        # The floor with the HTTP exchange taken through this stack's own ingress (HAProxy, the replica's server).
        floor = result["floor"]
        if isinstance(models_p50, int | float):
            parts_p50 = [floor[k]["p50_ms"] for k in ("embed_batch1", "hnsw_search_10k", "redis_get_many_1")]
            ingress_floor = round(sum(parts_p50) + models_p50, 2)
            result["stack"]["ingress_floor_p50_ms"] = ingress_floor
            result["stack"]["semantic_hit_p50_over_ingress_floor_p50"] = ratio(semantic_p50, ingress_floor)
        _note_load(result, "stack")

    # 3. The index at scale.
    result["index"] = []
    for n in args.sizes:
        logger.info("index at %d entries", n)
        result["index"].append(parts.index_at_scale(real, n, args.index_queries, n <= args.bare_max, args.index_budget))
        _note_load(result, f"index_{n}")


def stack_hits(args: argparse.Namespace, seed: int, floor_parts: FloorParts) -> dict[str, Any]:
    """Start `tierserve serve`, store answers (misses), then time hits sequentially, semantic hits beside their
    floor, and hits at concurrency 16 and 32. The per-run seed is part of the cache key, so answers stored by
    earlier runs never hit."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    port = free_port()
    cmd = [sys.executable, "-m", "commands.main", "serve", "--config", str(args.config), "--port", str(port)]
    server: Server = launch("tierserve", cmd, env, port, args.log_dir)
    out: dict[str, Any] = {"command": " ".join(cmd[1:])}
    try:
        out["healthy_after_s"] = round(wait_healthy(server, args.ready_timeout), 1)
        time.sleep(3)
        for proc in server.tree():  # the torch threads the gateway's embedder gets (Ray sets OMP_NUM_THREADS)
            with suppress(psutil.Error):
                if ":gateway" in " ".join(proc.cmdline()).lower():
                    out["gateway_omp_num_threads"] = proc.environ().get("OMP_NUM_THREADS")
        out |= asyncio.run(_gateway(server.url, args, seed, floor_parts))
    finally:
        out["orphans_killed"] = stop(server)
    return out


async def _gateway(url: str, args: argparse.Namespace, seed: int, floor_parts: FloorParts) -> dict[str, Any]:
    prompts = short_prompts()[: args.stack_prompts]

    def body(i: int, text: str | None = None) -> dict[str, Any]:
        messages = [{"role": "user", "content": text or prompts[i]}]
        return {"model": "small", "messages": messages, "temperature": 0, "max_tokens": 96, "seed": seed}

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        misses = await load(lambda i: chat(client, url, body(i)), len(prompts), 1, args.loop_budget * 2)
        stored = [s.index for s in misses.samples if s.cache == "miss" and s.finish == "stop"]
        if not stored:
            raise RuntimeError(f"no answer was stored: {misses.headers()}, errors {misses.errors[:2]}")
        await asyncio.sleep(1)  # the gateway stores after the answer went out

        def hit(i: int) -> Any:
            return chat(client, url, body(stored[i % len(stored)]))

        def semantic_hit(i: int) -> Any:
            # Lower-cased: another exact key (the identical-repeat path misses), the same embedding (the model
            # is uncased), so the answer comes through embedding, HNSW search, verification and a Redis read.
            index = stored[i % len(stored)]
            return chat(client, url, body(index, prompts[index].lower()))

        async def models(i: int) -> Sample:
            started = time.perf_counter()
            (await client.get(f"{url}/v1/models")).raise_for_status()
            return Sample(time.perf_counter() - started)

        await load(hit, 20, 1, 30)  # warm-up, not counted
        listing = await load(models, args.hit_requests, 1, args.loop_budget)  # the same ingress's round trip
        sequential = await load(hit, args.hit_requests, 1, args.loop_budget)
        hits: list[Sample] = [s for s in sequential.samples if s.cache == "hit"]
        semantic = await load(semantic_hit, args.hit_requests, 1, args.loop_budget)
        semantic_hits = [s for s in semantic.samples if s.cache == "hit"]
        with LocalRedis() as floor_redis:  # the floor's own, so its reads queue behind nothing of the stack's
            texts = [prompts[index].lower() for index in stored]  # semantic_hit(i) sends texts[i % len(texts)]
            beside = await side_by_side(
                semantic_hit, texts, floor_parts, floor_redis.url, client, url, args.hit_requests, args.loop_budget
            )
        concurrent = {}
        for clients in (16, 32):
            await load(hit, clients, clients, 30)  # opens the connections, not counted
            run = await load(hit, clients * args.per_client, clients, args.loop_budget)
            concurrent[str(clients)] = throughput(run)
    return {
        "prompts": len(prompts),
        "stored_answers": len(stored),
        "miss": summary_ms([s.latency for s in misses.samples if s.cache == "miss"]),
        "models": summary_ms([s.latency for s in listing.samples]) | {"errors": len(listing.errors)},
        "hit": summary_ms([s.latency for s in hits]) | {"errors": len(sequential.errors)},
        "hit_headers": sequential.headers(),
        "semantic_hit": summary_ms([s.latency for s in semantic_hits]) | {"errors": len(semantic.errors)},
        "semantic_hit_headers": semantic.headers(),
        "semantic_side_by_side": beside,
        "concurrent_hits": concurrent,
    }


# ------------------------------------------------------------------------------------------------- report


def _stats(row: dict[str, Any]) -> list[Any]:
    return [row.get("n"), row.get("p50_ms"), row.get("p99_ms"), row.get("mean_ms")]


def report_side_by_side(side: dict[str, Any], console: Console) -> None:
    labels = {
        "embed": "one embedding of the hit's own text (this process, batch 1)",
        "hnsw_search": "one HNSW search (10k real embeddings, k=4)",
        "redis_read": "one Redis read (CacheStore.get_many of 1 entry)",
        "http_exchange": "one HTTP exchange: GET /v1/models through the same ingress",
    }
    rows = [[label, *_stats(side["floor"][name])] for name, label in labels.items()]
    rows.append(["[bold]floor = sum, round by round[/bold]", *_stats(side["floor_sum"])])
    rows.append(["[bold]semantic cache hit through the gateway[/bold]", *_stats(side["hit"])])
    title = f"1b. A semantic hit and its floor side by side ({side['rounds']} rounds, alternating)"
    if side["not_hits"]:
        title += f"; not hits, left out: {side['not_hits']}"
    console.print(_table(title, ["part", "n", "p50 ms", "p99 ms", "mean ms"], rows))
    console.print(
        f"semantic hit p50 / floor p50, side by side = {_fmt(side['hit_p50_over_floor_p50'])} (goal <= 1.3); "
        f"over the sum of the parts' p50s = {_fmt(side['hit_p50_over_sum_of_part_p50s'])}"
    )


def report(result: dict[str, Any], console: Console) -> None:
    floor = result["floor"]
    names = {
        "embed_batch1": f"one embedding (batch 1, sentence-transformers, {result['torch_threads']['used']} thread)",
        "hnsw_search_10k": "one HNSW search (VectorIndex.search, 10k real embeddings, k=4)",
        "redis_get_many_1": "one Redis read (CacheStore.get_many of 1 entry, LocalRedis)",
        "http_trivial_uvicorn": "one HTTP exchange (trivial FastAPI under uvicorn, httpx keep-alive)",
    }
    rows = [[label, *_stats(floor[key])] for key, label in names.items()]
    if "embed_batch1_default_threads" in floor:
        threads = result["torch_threads"]["default"]
        rows.append(
            [
                f"(not summed) one embedding with torch's default {threads} threads",
                *_stats(floor["embed_batch1_default_threads"]),
            ]
        )
    rows.append(["[bold]floor = sum[/bold]", "", floor["sum"]["p50_ms"], floor["sum"]["p99_ms"], ""])
    stack = result.get("stack")
    if stack:
        rows.append(["GET /v1/models through the same ingress", *_stats(stack["models"])])
        rows.append(["[bold]cache hit through the gateway[/bold] (identical repeat)", *_stats(stack["hit"])])
        rows.append(["[bold]semantic cache hit through the gateway[/bold]", *_stats(stack["semantic_hit"])])
        rows.append(["miss through the gateway (generates)", *_stats(stack["miss"])])
    console.print(_table("1. The floor of a cache hit", ["part", "n", "p50 ms", "p99 ms", "mean ms"], rows))
    if stack and "semantic_side_by_side" in stack:
        report_side_by_side(stack["semantic_side_by_side"], console)
    if "stack_error" in result:
        console.print(Text(f"stack not measured: {result['stack_error'][:300]}", style="red"), soft_wrap=True)
    if stack:
        console.print(
            f"identical hit p50 / /v1/models p50 = {_fmt(stack.get('hit_p50_over_models_p50'))} (goal <= 2); "
            f"semantic hit p50 / floor p50 measured in its own phase = "
            f"{_fmt(stack['semantic_hit_p50_over_floor_p50'])} (the goal's figure is the side by side above), "
            f"/ that floor with the HTTP exchange through this ingress = "
            f"{_fmt(stack.get('semantic_hit_p50_over_ingress_floor_p50'))}\n"
            f"identical hit p50 / floor p50 = {_fmt(stack['hit_p50_over_floor_p50'])}; headers"
            f" {stack['hit_headers']}; {stack['stored_answers']} answers stored; orphans {stack['orphans_killed']};"
            f" gateway replica OMP_NUM_THREADS={stack.get('gateway_omp_num_threads')}\n"
        )

    rows = [
        [f"embedder.embed, {e['batch']} sentences/call", e["sentences_per_s"], "", ""]
        for e in result["embed_throughput"]
    ]
    b = result["batcher"]
    rows.append(
        [
            f"EmbeddingBatcher, {b['callers']} callers (mean batch {b['mean_batch']})",
            b["sentences_per_s"],
            b["latency"].get("p50_ms"),
            b["latency"].get("p99_ms"),
        ]
    )
    for clients, t in (stack or {}).get("concurrent_hits", {}).items():
        rows.append(
            [
                f"gateway hits at concurrency {clients} ({t['errors']} errors)",
                t["requests_per_s"],
                t["latency"].get("p50_ms"),
                t["latency"].get("p99_ms"),
            ]
        )
    console.print(_table("2. Throughput", ["what", "per s", "p50 ms", "p99 ms"], rows))

    rows = []
    for entry in result.get("index", []):
        for kind in ("bare_hnswlib", "vector_index"):
            if kind not in entry:
                continue
            row = entry[kind]
            rows.append(
                [
                    f"{entry['entries']:,} {kind}"
                    + (f" (stopped at {row['entries_built']:,})" if row.get("stopped_by_budget") else ""),
                    row["build_s"],
                    row["inserts_per_s"],
                    row["search"].get("p50_ms"),
                    row["search"].get("p99_ms"),
                    row["recall_at_1"],
                    row["rss_bytes_per_entry"],
                    row.get("hnswlib_bytes_per_entry", ""),
                    row.get("python_maps_bytes_per_entry", ""),
                ]
            )
    columns = [
        "index",
        "build s",
        "inserts/s",
        "search p50 ms",
        "p99 ms",
        "recall@1",
        "RSS B/entry",
        "hnswlib B/e",
        "maps B/e",
    ]
    console.print(_table("3. The index at scale (k=4, one thread; VectorIndex filters by namespace)", columns, rows))

    sbs = result["side_by_side"]
    rows = []
    for key, label in (
        ("tierserve", "tierserve SemanticCache (Redis)"),
        ("gptcache", "GPTCache (sqlite + hnswlib)"),
        ("exact_redis", "exact match (Redis GET sha256)"),
    ):
        row = sbs[key]
        if "error" in row:
            rows.append([label, row["error"][:60], "", "", "", "", "", ""])
            continue
        live = row.get("lookup_with_embedding", {})
        rows.append(
            [
                label,
                row["lookup"].get("p50_ms"),
                row["lookup"].get("p99_ms"),
                live.get("p50_ms"),
                live.get("p99_ms"),
                row["hits"],
                row["correct_hits"],
                f"{row['repeat_hits']}/{row['paraphrase_hits']}",
            ]
        )
    title = (
        f"4. Side by side: {sbs['stored']} stored, {sbs['lookups']} lookups (repeats + paraphrases), threshold"
        f" {sbs['similarity_threshold']}"
    )
    columns = ["cache", "lookup p50", "p99", "+embed p50", "+embed p99", "hits", "correct", "repeat/para"]
    console.print(_table(title, columns, rows))
    console.print(f"load average (1 min) after each step: {result['load_avg_1m']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[100_000, 1_000_000],
        help="Index sizes to build (comma-separated).",
    )
    add("--out", type=Path, default=Path("docs/cache-bench-latest.json"), help="Where the JSON figures go.")
    add("--skip-stack", action="store_true", help="Do not start the stack (no gateway figures).")
    add("--index-only", action="store_true", help="Only the index at scale (part 3).")
    add("--config", type=Path, default=Path("configs/default.yaml"), help="Stack config YAML.")
    add("--real", type=int, default=10_000, help="Generated sentences embedded for real (the rest is synthetic).")
    add(
        "--torch-threads",
        type=int,
        default=1,
        help="torch threads of the embedder (1: as in the gateway replica, where Ray sets OMP_NUM_THREADS=1).",
    )
    add("--floor-n", type=int, default=300, help="Timed calls per part of the floor.")
    add("--hit-requests", type=int, default=300, help="Sequential hits through the gateway.")
    add("--per-client", type=int, default=25, help="Requests per client in the concurrent hit runs.")
    add("--stack-prompts", type=int, default=20, help="Distinct prompts whose answers the stack stores.")
    add("--sbs-stored", type=int, default=2000, help="Questions stored in the side-by-side.")
    add("--sbs-lookups", type=int, default=500, help="Lookups in the side-by-side (half paraphrases).")
    add("--index-queries", type=int, default=1000, help="Searches per index size.")
    add("--bare-max", type=int, default=100_000, help="Also build a bare hnswlib index up to this size.")
    add("--loop-budget", type=float, default=120.0, help="Seconds at most per timed loop.")
    add("--tput-budget", type=float, default=15.0, help="Seconds per embedding throughput run.")
    add("--index-budget", type=float, default=1800.0, help="Seconds at most to build one index size.")
    add("--ready-timeout", type=float, default=600.0, help="Seconds the stack may take to become healthy.")
    add("--log-dir", type=Path, default=Path(".tierserve/bench-logs"), help="Server logs.")
    args = parser.parse_args(argv)
    result = record_run(lambda into: run(args, into), args.out, default=_plain)
    if "floor" in result:
        report(result, Console(width=160))
    else:  # --index-only
        Console(width=160).print_json(data=result["index"])


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else str(value)


if __name__ == "__main__":
    main()
