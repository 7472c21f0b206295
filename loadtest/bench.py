"""One-shot benchmark of the whole stack, over HTTP only, like a user (`make bench`).

In one run: cold and warm start of `tierserve serve`, whole-stack memory (PSS of every process it started),
semantic-cache hit vs miss latency and hit throughput, then streaming TTFT / end-to-end / throughput of the
gateway (cache bypassed, tier pinned) against vLLM's own OpenAI server on the same model and prompts. The two
servers never run at the same time. Figures go to a rich table on stdout and to a JSON file.

    python -m loadtest.bench --config configs/default.yaml --out docs/bench-latest.json --requests 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One launched server (its own session, so its whole process group can be killed) and every
    process seen in its tree, so that nothing it started outlives the benchmark."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path
    launched_at: float
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create_time

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.popen.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        for proc in procs:
            with suppress(psutil.Error):
                self.seen.setdefault(proc.pid, proc.create_time())
        return procs

    def log_tail(self, chars: int = 3000) -> str:
        with suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""


def launch(name: str, cmd: list[str], env: dict[str, str], port: int, log_dir: Path) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{int(time.time())}.log"
    logger.info("starting %s: %s (log %s)", name, " ".join(cmd), log)
    with log.open("wb") as sink:
        popen = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(name, popen, f"http://{HOST}:{port}", log, time.time())


def wait_healthy(server: Server, timeout_s: float) -> float:
    """Seconds from launch until GET /health answers 200."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < deadline:
            if server.popen.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.popen.returncode}:\n{server.log_tail()}")
            with suppress(httpx.HTTPError):
                if client.get(f"{server.url}/health").status_code == 200:
                    elapsed = time.time() - server.launched_at
                    server.tree()
                    return elapsed
            time.sleep(0.25)
    raise TimeoutError(f"{server.name} not healthy after {timeout_s:.0f}s:\n{server.log_tail()}")


def stop(server: Server, timeout_s: float = 120.0) -> list[str]:
    """Ctrl-C (SIGINT) to the server, then its process group, then any straggler from its tree.
    Returns the stragglers that had to be killed (orphans)."""
    server.tree()
    if server.popen.poll() is None:
        server.popen.send_signal(signal.SIGINT)
        try:
            server.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGINT for %.0fs; killing its process group", server.name, timeout_s)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(server.popen.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            server.popen.wait(timeout=10)
    orphans: list[str] = []
    deadline = time.monotonic() + 15
    for pid, created in server.seen.items():
        with suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.create_time() != created or not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if time.monotonic() < deadline:  # give a clean shutdown a moment before calling it an orphan
                with suppress(psutil.TimeoutExpired):
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    continue
            orphans.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            proc.kill()
    if orphans:
        logger.warning("%s left %d process(es) behind, killed: %s", server.name, len(orphans), orphans)
    return orphans


_RAY_LIKE = re.compile(r"ray|ServeReplica|redis-server|gcs_server|raylet")


def component(proc: psutil.Process, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "driver (cli)"
    cmd = " ".join(proc.cmdline())
    replica = re.search(r"ServeReplica:[^:\s]+:(\S+)", cmd)
    if "redis-server" in cmd or proc.name() == "redis-server":
        return "redis"
    if replica:
        return replica.group(1)
    if "ServeController" in cmd or "ProxyActor" in cmd:
        return "serve controller+proxy"
    return "ray core" if "ray" in cmd else "other"


def measure_memory(server: Server) -> dict[str, Any]:
    """RSS, PSS and USS of every process in the server's tree, by component. PSS splits shared pages
    (libraries, torch) between the processes mapping them, so its sum does not double count."""
    per: dict[str, dict[str, float]] = {}
    kind = "pss"
    tree = server.tree()
    in_tree = {p.pid for p in tree}
    for proc in tree:
        try:
            try:
                full = proc.memory_full_info()
                rss, pss, uss = full.rss, getattr(full, "pss", full.uss), full.uss
                if not hasattr(full, "pss"):
                    kind = "uss"
            except psutil.AccessDenied:
                rss = pss = uss = proc.memory_info().rss
                kind = "rss"
            name = component(proc, server.popen.pid)
        except psutil.Error:
            continue
        row = per.setdefault(name, {"processes": 0, "rss_gib": 0.0, "pss_gib": 0.0, "uss_gib": 0.0})
        row["processes"] += 1
        for key, value in (("rss_gib", rss), ("pss_gib", pss), ("uss_gib", uss)):
            row[key] += value / 2**30
    # Ray-looking processes born after the launch but outside the tree (daemonised): listed, not summed,
    # since another stack may be running on this machine.
    outside = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "memory_info"]):
        info = proc.info
        cmd = " ".join(info.get("cmdline") or [])
        if (
            info["pid"] not in in_tree
            and (info.get("create_time") or 0) >= server.launched_at
            and _RAY_LIKE.search(cmd)
        ):
            outside.append({"pid": info["pid"], "cmd": cmd[:100], "rss_gib": round(info["memory_info"].rss / 2**30, 3)})
    total = {k: round(sum(r[k] for r in per.values()), 3) for k in ("rss_gib", "pss_gib", "uss_gib")}
    components = {n: {k: round(v, 3) for k, v in r.items()} for n, r in sorted(per.items())}
    return {"measure": kind, "total": total, "components": components, "outside_tree_not_summed": outside}


def evict_page_cache(paths: list[Path]) -> dict[str, int]:
    """Ask the kernel to drop clean cached pages of these files (posix_fadvise DONTNEED, no privilege
    needed), so the first start reads models and libraries from disk. Mapped pages stay."""
    files = size = 0
    for base in paths:
        for path in base.rglob("*") if base.is_dir() else [base]:
            with suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)
                    files, size = files + 1, size + path.stat().st_size
    return {"files": files, "bytes": size}


# ---------------------------------------------------------------------------------------------------- HTTP


@dataclass
class Sample:
    latency: float
    ttft: float | None = None
    tokens: int = 0
    cache: str = ""
    tier: str = ""


async def chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    response = await client.post(f"{url}/v1/chat/completions", json=body)
    latency = time.perf_counter() - started
    response.raise_for_status()
    usage = response.json().get("usage") or {}
    headers = response.headers
    return Sample(
        latency,
        None,
        int(usage.get("completion_tokens", 0)),
        headers.get("x-tierserve-cache", ""),
        headers.get("x-tierserve-tier", ""),
    )


async def chat_stream(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    """TTFT = first chunk carrying content (not the role-only opening chunk, not the first byte)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        cache = response.headers.get("x-tierserve-cache", "")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"in-band error: {chunk['error']}")
            if ttft is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                ttft = time.perf_counter() - started
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens", 0))
    return Sample(time.perf_counter() - started, ttft, tokens, cache)


Call = Callable[[int], Awaitable[Sample]]


async def sequential(call: Call, count: int, budget_s: float) -> list[Sample]:
    samples: list[Sample] = []
    deadline = time.monotonic() + budget_s
    for i in range(count):
        if time.monotonic() > deadline:
            logger.warning("time budget of %.0fs spent after %d/%d requests", budget_s, i, count)
            break
        samples.append(await call(i))
    return samples


async def concurrent(call: Call, count: int, workers: int, budget_s: float) -> tuple[list[Sample], float]:
    samples: list[Sample] = []
    counter = iter(range(count))
    deadline = time.monotonic() + budget_s

    async def worker() -> None:
        for i in counter:
            if time.monotonic() > deadline:
                return
            samples.append(await call(i))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return samples, time.perf_counter() - started


def throughput(samples: list[Sample], wall: float, workers: int) -> dict[str, Any]:
    tokens = sum(s.tokens for s in samples)
    return {
        "concurrency": workers,
        "requests": len(samples),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(samples) / wall, 2) if wall else None,
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 1) if wall else None,
        "mean_tokens_per_request": round(tokens / len(samples), 1) if samples else None,
        "latency": summary_ms([s.latency for s in samples]),
    }


async def cache_phase(url: str, args: argparse.Namespace, run_seed: int) -> dict[str, Any]:
    """Misses store the answer; the same requests repeated are hits. The per-run seed is part of the cache
    key (it does not change a temperature-0 answer), so answers stored by earlier runs cannot hit."""
    prompts = short_prompts()

    def body(i: int) -> dict[str, Any]:
        # Past the 60 prompts, another seed keeps the request a distinct cache entry.
        msgs = [{"role": "user", "content": prompts[i % len(prompts)]}]
        seed = run_seed + i // len(prompts)
        return {"model": "small", "messages": msgs, "temperature": 0, "max_tokens": 32, "seed": seed}

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=64)) as client:
        misses = await sequential(lambda i: chat(client, url, body(i)), args.requests, args.phase_budget)
        stored = max(1, len(misses))
        hits = await sequential(lambda i: chat(client, url, body(i % stored)), args.requests, args.phase_budget)
        many, wall = await concurrent(
            lambda i: chat(client, url, body(i % stored)), max(args.requests * 5, 200), args.concurrency, 60
        )
    real_misses = [s.latency for s in misses if s.cache == "miss"]
    real_hits = [s.latency for s in hits if s.cache == "hit"]
    return {
        "miss": summary_ms(real_misses),
        "hit": summary_ms(real_hits),
        "miss_headers": _count(s.cache for s in misses),
        "hit_headers": _count(s.cache for s in hits),
        "hit_throughput": {**throughput(many, wall, args.concurrency), "headers": _count(s.cache for s in many)},
        "speedup_p50": ratio(summary_ms(real_misses).get("p50_ms"), summary_ms(real_hits).get("p50_ms")),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value or "(none)"] = counts.get(value or "(none)", 0) + 1
    return counts


async def serving_phase(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Same prompts, seeds and sampling on both servers: temperature 0.5 (above cache.max_temperature, so the
    gateway bypasses its cache) and the tier pinned to `small`."""

    def body(i: int, max_tokens: int) -> dict[str, Any]:
        msgs = [{"role": "user", "content": LONG_PROMPTS[i % len(LONG_PROMPTS)]}]
        return {"model": "small", "messages": msgs, "temperature": 0.5, "max_tokens": max_tokens, "seed": i}

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=64)) as client:
        for i in range(2):  # warm-up, not counted
            await chat_stream(client, url, body(i, 8))
        seq = await sequential(
            lambda i: chat_stream(client, url, body(i, args.stream_max_tokens)), args.requests, args.phase_budget
        )
        many, wall = await concurrent(
            lambda i: chat_stream(client, url, body(i, 64)), args.tput_requests, 8, args.phase_budget
        )
    return {
        "ttft": summary_ms([s.ttft for s in seq if s.ttft is not None]),
        "end_to_end": summary_ms([s.latency for s in seq]),
        "stream_max_tokens": args.stream_max_tokens,
        "cache_headers": _count(s.cache for s in seq + many),
        "throughput": throughput(many, wall, 8),
    }


# ---------------------------------------------------------------------------------------------------- run


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
            "load_avg_at_start": os.getloadavg(),
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    cli = [sys.executable, "-m", "serving.cli"]
    todo = [
        t.prepared for t in config.tiers if t.prepared and not is_prepared(t.prepared, config.models_dir / t.prepared)
    ]
    prep: dict[str, Any] = {"needed": bool(todo), "models": todo, "seconds": None}
    if todo:
        started = time.perf_counter()
        subprocess.run([*cli, "models", "prepare", "--config", str(args.config)], check=True, timeout=3600)
        prep["seconds"] = round(time.perf_counter() - started, 1)
    result["prepare"] = prep
    if args.evict:
        result["page_cache_evicted"] = evict_page_cache([config.models_dir, Path(sys.prefix) / "lib"])

    base_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    live: list[Server] = []
    orphans: list[str] = []

    def start(name: str, cmd: list[str], env: dict[str, str], port: int) -> tuple[Server, float]:
        server = launch(name, cmd, env, port, args.log_dir)
        live.append(server)
        seconds = wait_healthy(server, args.ready_timeout)
        logger.info("%s healthy after %.1fs", name, seconds)
        return server, seconds

    def finish(server: Server) -> None:
        live.remove(server)
        orphans.extend(stop(server))

    try:
        port = free_port()
        stack_cmd = [*cli, "serve", "--config", str(args.config), "--port", str(port)]
        server, cold = start("tierserve-cold", stack_cmd, base_env, port)
        finish(server)
        port = free_port()
        stack_cmd = [*cli, "serve", "--config", str(args.config), "--port", str(port)]
        server, warm = start("tierserve-warm", stack_cmd, base_env, port)
        time.sleep(args.settle)
        result["start"] = {"cold_s": round(cold, 1), "warm_s": round(warm, 1)}
        result["memory_stack"] = measure_memory(server)
        logger.info("cache phase")
        result["cache"] = asyncio.run(cache_phase(server.url, args, random.randrange(1, 2**31)))
        logger.info("tierserve streaming phase (cache bypassed)")
        result["tierserve"] = asyncio.run(serving_phase(server.url, args))
        finish(server)

        port = free_port()
        vllm_cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            config.model_path(small),
            "--served-model-name",
            "small",
            "--dtype",
            small.engine.dtype,
            "--max-model-len",
            str(small.engine.max_model_len),
            "--seed",
            str(small.engine.seed),
            "--host",
            HOST,
            "--port",
            str(port),
            "--disable-uvicorn-access-log",
        ] + (["--enforce-eager"] if small.engine.enforce_eager else [])
        server, vllm_start = start("vllm", vllm_cmd, {**base_env, **CPU_ENGINE_ENV}, port)
        time.sleep(args.settle)
        result["start"]["vllm_server_s"] = round(vllm_start, 1)
        result["memory_vllm"] = measure_memory(server)
        logger.info("vLLM streaming phase")
        result["vllm"] = asyncio.run(serving_phase(server.url, args))
        finish(server)
    finally:
        for server in list(live):
            orphans.extend(stop(server))
        result["orphans_killed"] = orphans
    ts, vl = result["tierserve"], result["vllm"]
    result["ratios_tierserve_over_vllm"] = {
        "ttft_p50": ratio(ts["ttft"].get("p50_ms"), vl["ttft"].get("p50_ms")),
        "ttft_p99": ratio(ts["ttft"].get("p99_ms"), vl["ttft"].get("p99_ms")),
        "e2e_p50": ratio(ts["end_to_end"].get("p50_ms"), vl["end_to_end"].get("p50_ms")),
        "output_tokens_per_s": ratio(ts["throughput"]["output_tokens_per_s"], vl["throughput"]["output_tokens_per_s"]),
        "requests_per_s": ratio(ts["throughput"]["requests_per_s"], vl["throughput"]["requests_per_s"]),
    }
    result["machine"]["load_avg_at_end"] = os.getloadavg()


# ------------------------------------------------------------------------------------------------- report


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}" if isinstance(value, float) else str(value)


def report(result: dict[str, Any], console: Console) -> None:
    start = Table(title="Start-up (launch -> /health 200)")
    for column in ("what", "seconds"):
        start.add_column(column)
    if result["prepare"]["needed"]:
        start.add_row(f"models prepare ({', '.join(result['prepare']['models'])})", _fmt(result["prepare"]["seconds"]))
    start.add_row("tierserve cold start", _fmt(result["start"]["cold_s"]))
    start.add_row("tierserve warm start", _fmt(result["start"]["warm_s"]))
    start.add_row("vLLM OpenAI server alone (small)", _fmt(result["start"]["vllm_server_s"]))
    console.print(start)

    memory = Table(title=f"Memory once ready (GiB; summed {result['memory_stack']['measure'].upper()} is the total)")
    for column in ("component", "processes", "PSS", "USS", "RSS"):
        memory.add_column(column, justify="right" if column != "component" else "left")
    for label, mem in (("tierserve", result["memory_stack"]), ("vLLM server", result["memory_vllm"])):
        for name, row in mem["components"].items():
            memory.add_row(
                f"{label}: {name}",
                str(int(row["processes"])),
                *(_fmt(row[k]) for k in ("pss_gib", "uss_gib", "rss_gib")),
            )
        total = mem["total"]
        memory.add_row(f"[bold]{label}: total[/bold]", "", *(_fmt(total[k]) for k in ("pss_gib", "uss_gib", "rss_gib")))
    console.print(memory)

    cache = result["cache"]
    table = Table(title="Semantic cache through the gateway (non-streaming, temperature 0, max_tokens 32)")
    for column in ("path", "n", "p50 ms", "p90 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name in ("miss", "hit"):
        s = cache[name]
        table.add_row(name, str(s.get("n")), *(_fmt(s.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")))
    hit_tput = cache["hit_throughput"]
    console.print(table)
    console.print(
        f"hits under concurrency {hit_tput['concurrency']}: {_fmt(hit_tput['requests_per_s'])} req/s "
        f"({hit_tput['requests']} requests, p50 {_fmt(hit_tput['latency'].get('p50_ms'))} ms, "
        f"p99 {_fmt(hit_tput['latency'].get('p99_ms'))} ms); headers {hit_tput['headers']}"
    )

    ts, vl, ratios = result["tierserve"], result["vllm"], result["ratios_tierserve_over_vllm"]
    vs = Table(title="Gateway (cache bypassed, tier pinned) vs vLLM OpenAI server, same model and prompts")
    for column in ("metric", "tierserve", "vLLM", "tierserve/vLLM"):
        vs.add_column(column, justify="right" if column != "metric" else "left")
    rows = [
        ("TTFT p50 ms", ts["ttft"].get("p50_ms"), vl["ttft"].get("p50_ms")),
        ("TTFT p99 ms", ts["ttft"].get("p99_ms"), vl["ttft"].get("p99_ms")),
        (
            f"end-to-end p50 ms ({ts['stream_max_tokens']} tok)",
            ts["end_to_end"].get("p50_ms"),
            vl["end_to_end"].get("p50_ms"),
        ),
        ("end-to-end p99 ms", ts["end_to_end"].get("p99_ms"), vl["end_to_end"].get("p99_ms")),
        ("output tok/s @8 (max 64)", ts["throughput"]["output_tokens_per_s"], vl["throughput"]["output_tokens_per_s"]),
        ("requests/s @8", ts["throughput"]["requests_per_s"], vl["throughput"]["requests_per_s"]),
        (
            "mean tokens/request @8",
            ts["throughput"]["mean_tokens_per_request"],
            vl["throughput"]["mean_tokens_per_request"],
        ),
    ]
    for name, a, b in rows:
        vs.add_row(name, _fmt(a), _fmt(b), _fmt(ratio(a, b)))
    console.print(vs)

    mem = result["memory_stack"]["total"]
    console.print(
        "\nSummary: "
        f"stack cold start {_fmt(result['start']['cold_s'])} s, warm {_fmt(result['start']['warm_s'])} s; "
        f"memory {_fmt(mem['pss_gib'])} GiB PSS ({_fmt(mem['rss_gib'])} GiB RSS summed). "
        f"Cache hit p50 {_fmt(cache['hit'].get('p50_ms'))} ms vs miss {_fmt(cache['miss'].get('p50_ms'))} ms "
        f"(x{_fmt(cache['speedup_p50'])}). tierserve/vLLM: TTFT p50 x{_fmt(ratios['ttft_p50'])}, "
        f"p99 x{_fmt(ratios['ttft_p99'])}, throughput x{_fmt(ratios['output_tokens_per_s'])} (tokens/s), "
        f"x{_fmt(ratios['requests_per_s'])} (requests/s)."
        + (f" Orphans killed: {result['orphans_killed']}" if result["orphans_killed"] else " No orphan processes.")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/default.yaml"))
    parser.add_argument("--out", type=Path, default=Path("docs/bench-latest.json"))
    parser.add_argument("--requests", type=int, default=60, help="Sequential requests per measurement (>= 50).")
    parser.add_argument("--concurrency", type=int, default=16, help="Clients for the cache-hit throughput.")
    parser.add_argument("--tput-requests", type=int, default=48, help="Requests for each throughput run at 8.")
    parser.add_argument("--stream-max-tokens", type=int, default=32, help="max_tokens of the sequential streams.")
    parser.add_argument("--phase-budget", type=float, default=600.0, help="Seconds at most per measurement loop.")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="Seconds a server may take to be ready.")
    parser.add_argument("--settle", type=float, default=5.0, help="Seconds to wait after ready before measuring.")
    parser.add_argument("--log-dir", type=Path, default=Path(".tierserve/bench-logs"))
    parser.add_argument(
        "--no-evict",
        dest="evict",
        action="store_false",
        help="Keep the page cache: the first start is then not really cold.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGTERM (make, CI) unwinds like Ctrl-C, so every server gets stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    result: dict[str, Any] = {}
    try:
        run(args, result)
    except BaseException as error:
        result["error"] = f"{type(error).__name__}: {error}"[:2000]
        raise
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        logger.info("wrote %s", args.out)
    report(result, Console(width=140))


if __name__ == "__main__":
    main()
