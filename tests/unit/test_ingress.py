"""The HAProxy ingress environment: per-stack files and ports, operator overrides win, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.config import GatewayConfig
from serving.ingress import haproxy_environment, ingress_environment, stop_haproxy


def test_each_stack_gets_its_own_files_and_free_ports(tmp_path: Path) -> None:
    first = haproxy_environment(GatewayConfig(), tmp_path / "a")
    second = haproxy_environment(GatewayConfig(), tmp_path / "b")
    assert first["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    for key in ("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", "RAY_SERVE_HAPROXY_SOCKET_PATH"):
        assert Path(first[key]).parent == tmp_path / "a" and first[key] != second[key]
    named = ("HAPROXY_METRICS", "HAPROXY_STATS", "FALLBACK_PROXY_HTTP", "FALLBACK_PROXY_GRPC")
    ports = {first[f"RAY_SERVE_{name}_PORT"] for name in named}
    assert len(ports) == 4 and all(1024 < int(p) < 65536 for p in ports)
    # Ray's fixed defaults (8500/9500) would put both stacks' fallback proxies on one SO_REUSEPORT socket.
    assert (
        first["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] != "8500" and first["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] != "9500"
    )
    assert first["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "30.0"
    assert haproxy_environment(GatewayConfig(haproxy_threads=3), tmp_path)["RAY_SERVE_HAPROXY_NBTHREAD"] == "3"
    assert first["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1" and first["RAY_SERVE_LOG_TO_STDERR"] == "1"
    # The replicas' own HTTP/gRPC ports: a window of 100 picked per stack, not Ray's one window for every cluster.
    for kind, low in (("HTTP", 30_000), ("GRPC", 40_000)):
        start = int(first[f"RAY_SERVE_DIRECT_INGRESS_MIN_{kind}_PORT"])
        assert low <= start < low + 9_000 and start % 100 == 0
        assert int(first[f"RAY_SERVE_DIRECT_INGRESS_MAX_{kind}_PORT"]) == start + 100
    plain = haproxy_environment(GatewayConfig(throughput_optimized=False), tmp_path)
    assert "RAY_SERVE_THROUGHPUT_OPTIMIZED" not in plain


def test_environment_is_set_while_the_stack_runs_and_removed_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    monkeypatch.setenv("RAY_SERVE_HAPROXY_NBTHREAD", "7")  # the operator's choice
    with ingress_environment(GatewayConfig()) as applied:
        assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        assert os.environ["RAY_SERVE_HAPROXY_NBTHREAD"] == "7" and "RAY_SERVE_HAPROXY_NBTHREAD" not in applied
        run_dir = Path(applied["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"])
        # Ray inserts a 64-character directory before the socket name; HAProxy allows 97 bytes in all.
        assert run_dir.is_dir() and len(applied["RAY_SERVE_HAPROXY_SOCKET_PATH"]) + 65 <= 97
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in os.environ
    assert os.environ["RAY_SERVE_HAPROXY_NBTHREAD"] == "7"
    assert not run_dir.exists()


def test_python_proxy_sets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    with ingress_environment(GatewayConfig(ingress="proxy")) as applied:
        assert applied == {} and "RAY_SERVE_ENABLE_HA_PROXY" not in os.environ


def test_haproxy_left_running_from_the_run_dir_is_stopped(tmp_path: Path) -> None:
    # A stand-in process named haproxy whose command line names the run directory, like Ray's HAProxy.
    import shutil
    import subprocess
    import sys

    fake = tmp_path / "haproxy"
    shutil.copy(sys.executable, fake)
    config = tmp_path / "run" / "haproxy.cfg"
    child = subprocess.Popen([str(fake), "-c", "import time; time.sleep(60)", str(config)])
    other = subprocess.Popen([str(fake), "-c", "import time; time.sleep(60)", "/elsewhere/haproxy.cfg"])
    try:
        assert stop_haproxy(tmp_path / "run") == [child.pid]
        assert child.wait(timeout=10) is not None
        assert other.poll() is None  # another stack's HAProxy is left alone
    finally:
        for process in (child, other):
            process.kill()
            process.wait()
