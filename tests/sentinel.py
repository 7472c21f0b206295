"""A real Redis primary with one replica, watched by three Sentinels (`redis-server --sentinel`, the same binary
Debian's redis-sentinel package runs), all on free loopback ports: what the failover tests kill and watch."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from serving.redis_server import find_redis_server, free_port

SERVICE = "tierserve"


@dataclass
class SentinelCluster:
    folder: Path
    primary_port: int = field(default_factory=free_port)
    replica_port: int = field(default_factory=free_port)
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> SentinelCluster:
        binary = shutil.which("redis-sentinel") or find_redis_server()
        server = find_redis_server()
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        for name in ("primary", "replica"):  # each its own folder: a full sync writes an RDB file there
            (self.folder / name).mkdir(exist_ok=True)
        primary = ["--port", str(self.primary_port), "--dir", str(self.folder / "primary")]
        self._start("primary", [server, *primary, *common])
        replica = ["--port", str(self.replica_port), "--dir", str(self.folder / "replica")]
        replica += ["--replicaof", "127.0.0.1", str(self.primary_port)]
        self._start("replica", [server, *replica, *common])
        for index, port in enumerate(self.sentinel_ports):
            config = self.folder / f"sentinel-{index}.conf"  # Sentinel rewrites its config: one file each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            args = [binary, str(config)] if binary.endswith("redis-sentinel") else [binary, str(config), "--sentinel"]
            self._start(f"sentinel-{index}", args)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                replica = redis.Redis(port=self.replica_port, socket_timeout=1)
                linked = replica.info("replication").get("master_link_status") == "up"
                # Every sentinel knows the others and the replica (found by its INFO polls, every 10 s at first):
                # a primary killed before that has no replica a sentinel could promote.
                known = all(self._sees_everyone(port) for port in self.sentinel_ports)
                if linked and known:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"sentinel cluster not ready in {timeout_s}s; logs in {self.folder}")

    def _sees_everyone(self, port: int) -> bool:
        sentinel = redis.Redis(port=port, socket_timeout=1)
        replicas = sentinel.sentinel_slaves(SERVICE)
        healthy = [r for r in replicas if int(r.get("port", 0)) == self.replica_port and r.get("flags") == "slave"]
        return bool(sentinel.sentinel_master(SERVICE).get("num-other-sentinels") == 2 and healthy)

    def primary(self) -> tuple[str, int]:
        host, port = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1).sentinel_get_master_addr_by_name(
            SERVICE
        )
        return str(host), int(port)

    def kill_primary(self) -> int:
        """SIGKILL the server that is primary now; its port."""
        _, port = self.primary()
        name = "primary" if port == self.primary_port else "replica"
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()
        return port

    def logs(self) -> str:
        """The tail of every process's log (for a failure's message)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}" for path in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
