"""One-shot benchmark of the whole stack, over HTTP only, like a user (`make bench`).

In one run: cold and warm start of `tierserve serve`, whole-stack memory (PSS of every process it started),
semantic-cache hit vs miss latency and hit throughput, then streaming TTFT / end-to-end / throughput of the
gateway (cache bypassed, tier pinned) against vLLM's own OpenAI server on the same model and prompts. The two
servers never run at the same time. Figures go to a rich table on stdout and to a JSON file.

    python -m benchmarks.bench --config configs/default.yaml --out docs/bench-latest.json --requests 60
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.measure import cache_phase, ratio, serving_phase
from loadtest.processes import (
    HOST,
    Server,
    cpu_seconds,
    evict_page_cache,
    free_port,
    launch,
    measure_memory,
    record_run,
    stop,
    wait_healthy,
)

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Fills `result` as it goes, so a failed run still leaves its partial figures."""
    from serving.config import load_config
    from serving.engine import CPU_ENGINE_ENV
    from serving.models import is_prepared

    config = load_config(args.config)
    small = config.tier("small")
    result |= {
        "config": str(args.config),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "load_avg_1m": {"start": os.getloadavg()[0]},  # at the end of each step: others' load skews figures
        "others_cpu_cores": {},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    cli = [sys.executable, "-m", "commands.main"]
    todo = [
        t.prepared for t in config.tiers if t.prepared and not is_prepared(t.prepared, config.models_dir / t.prepared)
    ]
    result["prepare"] = {"needed": bool(todo), "models": todo, "seconds": None}
    if todo:
        started = time.perf_counter()
        subprocess.run([*cli, "models", "prepare", "--config", str(args.config)], check=True, timeout=3600)
        result["prepare"]["seconds"] = round(time.perf_counter() - started, 1)
    if args.evict:
        result["page_cache_evicted"] = evict_page_cache([config.models_dir, Path(sys.prefix) / "lib"])

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    live: list[Server] = []
    result["orphans_killed"] = orphans = []
    start = result["start"] = {}

    def measure(name: str, server: Server, phase: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
        logger.info("measuring %s", name)
        before, started = cpu_seconds(server), time.monotonic()
        figures = asyncio.run(phase)
        after, wall = cpu_seconds(server), time.monotonic() - started
        result["load_avg_1m"][name] = round(os.getloadavg()[0], 2)
        # CPU that processes outside the server and this benchmark used meanwhile, in cores.
        result["others_cpu_cores"][name] = round(max(0.0, (after[0] - before[0] - after[1] + before[1]) / wall), 2)
        return figures

    def up(name: str, cmd: list[str], env: dict[str, str], port: int) -> Server:
        server = launch(name, cmd, env, port, args.log_dir)
        live.append(server)
        start[name] = round(wait_healthy(server, args.ready_timeout), 1)
        result["load_avg_1m"][name] = round(os.getloadavg()[0], 2)
        logger.info("%s healthy after %.1fs", name, start[name])
        return server

    def down(server: Server) -> None:
        live.remove(server)
        orphans.extend(stop(server))

    def stack(name: str) -> Server:
        port = free_port()
        return up(name, [*cli, "serve", "--config", str(args.config), "--port", str(port)], env, port)

    try:
        down(stack("tierserve_cold_s"))
        server = stack("tierserve_warm_s")
        time.sleep(args.settle)
        result["memory_stack"] = measure_memory(server)
        result["cache"] = measure("cache", server, cache_phase(server.url, args, random.randrange(1, 2**31)))
        result["tierserve"] = measure("tierserve", server, serving_phase(server.url, args))
        down(server)

        port = free_port()
        options = {"model": config.model_path(small), "served-model-name": "small", "dtype": small.engine.dtype}
        options |= {"max-model-len": str(small.engine.max_model_len), "seed": str(small.engine.seed)}
        options |= {"host": HOST, "port": str(port)}
        vllm = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--disable-uvicorn-access-log"]
        vllm += [*(["--enforce-eager"] if small.engine.enforce_eager else []), *_flags(options)]
        # The same engine environment as the tier's replica, where Ray sets OMP_NUM_THREADS to the replica's
        # whole CPUs: left at vLLM's default, torch's thread team collapses when another process takes a core.
        threads = os.environ.get("OMP_NUM_THREADS", str(max(1, math.floor(small.deployment.num_cpus))))
        vllm_env = {**env, **CPU_ENGINE_ENV, "OMP_NUM_THREADS": threads, **small.deployment.env}
        result["vllm_server"] = {"command": vllm, "omp_num_threads": vllm_env["OMP_NUM_THREADS"]}
        server = up("vllm_server_s", vllm, vllm_env, port)
        time.sleep(args.settle)
        result["memory_vllm"] = measure_memory(server)
        result["vllm"] = measure("vllm", server, serving_phase(server.url, args))
        down(server)
    finally:
        for server in list(live):
            orphans.extend(stop(server))
    ts, vl = result["tierserve"], result["vllm"]
    result["ratios_tierserve_over_vllm"] = {
        "ttft_p50": ratio(ts["ttft"].get("p50_ms"), vl["ttft"].get("p50_ms")),
        "ttft_p99": ratio(ts["ttft"].get("p99_ms"), vl["ttft"].get("p99_ms")),
        "e2e_p50": ratio(ts["end_to_end"].get("p50_ms"), vl["end_to_end"].get("p50_ms")),
        "output_tokens_per_s": ratio(ts["throughput"]["output_tokens_per_s"], vl["throughput"]["output_tokens_per_s"]),
        "requests_per_s": ratio(ts["throughput"]["requests_per_s"], vl["throughput"]["requests_per_s"]),
    }


def _flags(options: dict[str, str]) -> list[str]:
    return [part for key, value in options.items() for part in (f"--{key}", value)]


# ------------------------------------------------------------------------------------------------- report


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}" if isinstance(value, float) else str(value)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(cell if isinstance(cell, str) else _fmt(cell) for cell in row))
    return table


def report(result: dict[str, Any], console: Console) -> None:
    start, prep = result["start"], result["prepare"]
    rows: list[list[Any]] = (
        [[f"models prepare ({', '.join(prep['models'])})", prep["seconds"]]] if prep["needed"] else []
    )
    rows += [
        [
            "tierserve cold start" + (" (page cache evicted)" if "page_cache_evicted" in result else ""),
            start["tierserve_cold_s"],
        ],
        ["tierserve warm start", start["tierserve_warm_s"]],
        ["vLLM OpenAI server alone (tier small's model)", start["vllm_server_s"]],
    ]
    console.print(_table("Start-up: launch -> GET /health 200", ["what", "seconds"], rows))

    keys = ("pss_gib", "uss_gib", "rss_gib")
    rows = []
    for label, mem in (("tierserve", result["memory_stack"]), ("vLLM server", result["memory_vllm"])):
        rows += [
            [f"{label}: {name}", int(row["processes"]), *(row[k] for k in keys)]
            for name, row in mem["components"].items()
        ]
        rows.append([f"[bold]{label}: total[/bold]", "", *(mem["total"][k] for k in keys)])
    title = f"Memory once ready, GiB (the total is summed {result['memory_stack']['measure'].upper()})"
    console.print(_table(title, ["component", "processes", "PSS", "USS", "RSS"], rows))

    cache, stats = result["cache"], ("n", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "errors")
    rows = [[name, *(cache[name].get(k) for k in stats)] for name in ("miss", "hit")]
    title = (
        f"Semantic cache through the gateway, sequential (non-streaming, temperature 0, max_tokens"
        f" {cache['max_tokens']}; {cache['stored_answers']} answers stored and repeated)"
    )
    console.print(_table(title, ["path", "n", "p50 ms", "p90 ms", "p99 ms", "mean ms", "errors"], rows))
    hits = cache["hit_throughput"]
    console.print(
        f"cache hits at concurrency {hits['concurrency']}: {_fmt(hits['requests_per_s'])} req/s over {hits['requests']}"
        f" requests (p50 {_fmt(hits['latency'].get('p50_ms'))} ms, p99 {_fmt(hits['latency'].get('p99_ms'))} ms,"
        f" errors {hits['errors']}); headers seen: miss {cache['miss']['cache_headers']},"
        f" hit {cache['hit']['cache_headers']}, concurrent {hits['cache_headers']}\n"
    )

    ts, vl = result["tierserve"], result["vllm"]
    metrics = [
        ("TTFT p50 ms", "ttft", "p50_ms"),
        ("TTFT p99 ms", "ttft", "p99_ms"),
        (f"end-to-end p50 ms (max_tokens {ts['sequential']['max_tokens']})", "end_to_end", "p50_ms"),
        ("end-to-end p99 ms", "end_to_end", "p99_ms"),
        ("output tokens/s at 8 (max_tokens 64)", "throughput", "output_tokens_per_s"),
        ("requests/s at 8", "throughput", "requests_per_s"),
        ("mean output tokens/request at 8", "throughput", "mean_tokens_per_request"),
    ]
    rows = [
        [name, ts[part].get(k), vl[part].get(k), ratio(ts[part].get(k), vl[part].get(k))] for name, part, k in metrics
    ]
    title = (
        "Gateway (cache bypassed, tier pinned) vs vLLM's OpenAI server: same model, prompts, seeds, engine env"
        f" (OMP_NUM_THREADS={result['vllm_server']['omp_num_threads']}); streaming"
    )
    console.print(_table(title, ["metric", "tierserve", "vLLM", "tierserve/vLLM"], rows))

    mem, r, machine = result["memory_stack"]["total"], result["ratios_tierserve_over_vllm"], result["machine"]
    others = result["others_cpu_cores"]
    busy = max(others.values(), default=0.0) > 0.2 * (machine["cpus"] or 1)
    orphans = result["orphans_killed"]
    console.print(
        f"\nSummary: stack cold start {_fmt(start['tierserve_cold_s'])} s, warm {_fmt(start['tierserve_warm_s'])} s"
        f" (vLLM alone {_fmt(start['vllm_server_s'])} s); memory {_fmt(mem['pss_gib'])} GiB PSS"
        f" ({_fmt(mem['rss_gib'])} GiB RSS summed; vLLM alone"
        f" {_fmt(result['memory_vllm']['total']['pss_gib'])} GiB PSS)."
        f"\nCache: hit p50 {_fmt(cache['hit'].get('p50_ms'))} ms vs miss p50 {_fmt(cache['miss'].get('p50_ms'))} ms"
        f" (x{_fmt(cache['hit_speedup_p50'])} faster); {_fmt(hits['requests_per_s'])} hits/s at {hits['concurrency']}."
        f"\ntierserve/vLLM: TTFT p50 x{_fmt(r['ttft_p50'])}, TTFT p99 x{_fmt(r['ttft_p99'])},"
        f" throughput x{_fmt(r['output_tokens_per_s'])} (tokens/s), x{_fmt(r['requests_per_s'])} (requests/s)."
        f"\nCPU cores used by other work during each measurement (of {machine['cpus']}): {others}"
        + (" -- the machine was busy: figures are noisy. " if busy else ". ")
        + (f"Orphans killed: {orphans}" if orphans else "No process left behind.")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--config", type=Path, default=Path("configs/default.yaml"), help="Stack config YAML.")
    add("--out", type=Path, default=Path("docs/bench-latest.json"), help="Where the JSON figures go.")
    add("--requests", type=int, default=60, help="Sequential requests per latency measurement (>= 50 for p99).")
    add("--concurrency", type=int, default=16, help="Concurrent clients for the cache-hit throughput.")
    add("--tput-requests", type=int, default=48, help="Requests of each throughput run at concurrency 8.")
    add("--cache-max-tokens", type=int, default=96, help="max_tokens of the cache requests (truncated: not stored).")
    add("--stream-max-tokens", type=int, default=32, help="max_tokens of the sequential streaming requests.")
    add("--phase-budget", type=float, default=600.0, help="Seconds at most per measurement loop.")
    add("--ready-timeout", type=float, default=900.0, help="Seconds a server may take to become healthy.")
    add("--settle", type=float, default=5.0, help="Seconds to wait after healthy before measuring.")
    add("--log-dir", type=Path, default=Path(".tierserve/bench-logs"), help="Server logs.")
    add("--no-evict", dest="evict", action="store_false", help="Keep the page cache (the first start is then warm).")
    args = parser.parse_args(argv)
    result = record_run(lambda into: run(args, into), args.out)
    report(result, Console(width=150))


if __name__ == "__main__":
    main()
