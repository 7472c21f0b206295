"""The shutdown drain on a real HAProxy (the binary Ray Serve ships): new connections are refused at once, and the
drain returns only when the request in flight has been answered."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from serving.ingress import drain_haproxy, haproxy_command, in_flight
from serving.redis_server import free_port


class SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        time.sleep(float(self.path.strip("/") or 0))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    from ray.serve._private.haproxy import get_haproxy_binary

    backend = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port, admin = free_port(), tmp_path / "sub" / "admin.sock"
    admin.parent.mkdir()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"global\n  stats socket {admin} mode 666 level admin\n"
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
        f"frontend http_frontend\n  bind 127.0.0.1:{port}\n  default_backend http-app\n"
        f"backend http-app\n  server gateway 127.0.0.1:{backend.server_address[1]}\n"
    )
    process = subprocess.Popen([get_haproxy_binary(), "-db", "-f", str(config)])
    try:
        deadline = time.monotonic() + 10
        while not admin.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", tmp_path / "admin.sock"  # as Ray names it: the file sits one level down
    finally:
        process.terminate()
        process.wait(timeout=10)
        backend.shutdown()


def test_drain_waits_for_the_request_in_flight_and_refuses_new_ones(haproxy: tuple[str, Path]) -> None:
    url, socket_path = haproxy
    assert httpx.get(f"{url}/0", timeout=10).status_code == 200
    answers: list[int] = []
    slow = threading.Thread(target=lambda: answers.append(httpx.get(f"{url}/2", timeout=10).status_code))
    slow.start()
    time.sleep(0.5)
    live = next(socket_path.parent.rglob("admin.sock"))
    assert in_flight(haproxy_command(live, "show stat")) == 1
    started = time.monotonic()
    assert drain_haproxy(socket_path, timeout_s=10) == 0
    assert answers == [200] and time.monotonic() - started > 1  # it waited for the answer
    with pytest.raises(httpx.HTTPError):  # the frontend takes no new connection
        httpx.get(f"{url}/0", timeout=2)
    slow.join()


def test_drain_gives_up_at_its_timeout_and_says_what_is_left(haproxy: tuple[str, Path]) -> None:
    url, socket_path = haproxy
    slow = threading.Thread(target=lambda: httpx.get(f"{url}/3", timeout=10))
    slow.start()
    time.sleep(0.5)
    assert drain_haproxy(socket_path, timeout_s=0.5) == 1
    slow.join()


def test_no_socket_means_nothing_to_drain(tmp_path: Path) -> None:
    assert drain_haproxy(tmp_path / "admin.sock", timeout_s=1) == 0
    assert in_flight("") == 0
