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
import math
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
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
    for sig in (signal.SIGTERM, signal.SIGKILL):  # whatever is left in its process group
        with suppress(subprocess.TimeoutExpired):
            server.popen.wait(timeout=10)
        try:
            os.killpg(server.popen.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        os.killpg(server.popen.pid, sig)
        time.sleep(2)
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


def _own_component(proc: psutil.Process, root_pid: int) -> str | None:
    if proc.pid == root_pid:
        return "launched process (+ unnamed helpers)"
    cmd = " ".join(proc.cmdline())
    if "redis-server" in cmd or proc.name() == "redis-server":
        return "redis-server"
    replica = re.search(r"ServeReplica:[^:\s]+:(\S+)", cmd)
    if replica:  # Ray titles a busy worker "ray::Class.method"
        return re.sub(r"\.[a-z_]+$", "", replica.group(1))
    if "ServeController" in cmd or "ProxyActor" in cmd:
        return "serve controller+proxy"
    return "ray core" if "ray" in cmd else None


def component(proc: psutil.Process, root_pid: int) -> str:
    """What a process belongs to; helpers without a name of their own (vLLM's EngineCore) count for the
    nearest named ancestor."""
    for candidate in [proc, *proc.parents()]:
        name = _own_component(candidate, root_pid)
        if name is not None:
            return name
    return "other"


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


def cpu_seconds(server: Server) -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of the server's tree and this process)."""
    times = psutil.cpu_times()
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    ours = 0.0
    for proc in [*server.tree(), psutil.Process()]:
        with suppress(psutil.Error):
            cpu = proc.cpu_times()
            ours += cpu.user + cpu.system
    return busy, ours


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
    cli = [sys.executable, "-m", "serving.cli"]
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
    report(result, Console(width=150))


if __name__ == "__main__":
    main()
