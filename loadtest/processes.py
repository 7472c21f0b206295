"""Processes of a benchmark run: launch a server, wait for health, stop it without orphans, measure memory."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


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


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _default_sigint() -> None:
    """In the child, before exec: a command started in the background by a shell script (`cmd &`) ignores
    SIGINT, the child would inherit that, and `stop`'s Ctrl-C would go unheard for its whole timeout."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def launch(name: str, cmd: list[str], env: dict[str, str], port: int, log_dir: Path) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{int(time.time())}.log"
    logger.info("starting %s: %s (log %s)", name, " ".join(cmd), log)
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            cmd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
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


def record_run(
    run: Callable[[dict[str, Any]], None], out: Path, *, default: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Run a benchmark with logging set up and SIGTERM unwinding like Ctrl-C (so every server it started is
    stopped), and always write what it measured to `out`, with the error if it failed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    result: dict[str, Any] = {}
    try:
        run(result)
    except BaseException as error:
        result["error"] = f"{type(error).__name__}: {error}"[:2000]
        raise
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=default) + "\n")
        logger.info("wrote %s", out)
    return result
