"""Importing the packages does no work: no network, no env vars, no files, no vLLM or torch.

Each check runs in a fresh interpreter with an empty environment (PATH only), so modules already
imported by the test session cannot hide an import-time side effect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Runs first in every child: any attempt to reach the network during an import is recorded and refused.
_NO_NETWORK = """
import json, socket, sys
attempts = []
def _refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network access during import")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


def run_isolated(body: str, cwd: Path) -> dict[str, object]:
    """Run `body` after the network guard in a clean interpreter; it must print one JSON line last."""
    code = _NO_NETWORK + textwrap.dedent(body)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_light_modules_import_without_vllm_or_torch(tmp_path: Path) -> None:
    report = run_isolated(
        """
        import importlib, threading
        for name in ("serving", "serving.config", "serving.protocol", "serving.errors", "serving.gateway",
                     "serving.http", "serving.metrics", "cache", "cache.embedder", "router"):
            importlib.import_module(name)
        heavy = ("vllm", "torch", "transformers", "sentence_transformers")
        heavy = sorted(m for m in heavy if m in sys.modules)
        print(json.dumps({"heavy": heavy, "network": attempts, "threads": threading.active_count()}))
        """,
        tmp_path,
    )
    assert report["heavy"] == []
    assert report["network"] == []
    assert report["threads"] == 1  # no background work started at import
    assert list(tmp_path.iterdir()) == []  # nothing written at import time


@pytest.mark.parametrize(("package", "other"), [("cache", "router"), ("router", "cache")])
def test_cache_and_router_know_nothing_of_ray_http_or_each_other(package: str, other: str, tmp_path: Path) -> None:
    report = run_isolated(
        f"""
        import importlib, threading
        importlib.import_module({package!r})
        foreign = ("ray", "fastapi", "starlette", "serving", "torch", "vllm", {other!r})
        found = sorted(m for m in foreign if m in sys.modules)
        print(json.dumps({{"foreign": found, "threads": threading.active_count()}}))
        """,
        tmp_path,
    )
    assert report == {"foreign": [], "threads": 1}


def test_every_submodule_imports_quietly(tmp_path: Path) -> None:
    report = run_isolated(
        """
        import importlib, pkgutil
        imported = []
        for package_name in ("serving", "cache", "router", "loadtest"):
            package = importlib.import_module(package_name)
            imported.append(package_name)
            if package_name == "loadtest":
                continue  # its submodules are Locust files, which patch the interpreter on import by design
            for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
                importlib.import_module(info.name)
                imported.append(info.name)
        print(json.dumps({"imported": imported, "network": attempts, "vllm": "vllm" in sys.modules}))
        """,
        tmp_path,
    )
    imported = report["imported"]
    assert isinstance(imported, list)
    for expected in (
        "serving.config",
        "serving.gateway",
        "serving.http",
        "serving.engine",
        "serving.deployments",
        "serving.app",
        "serving.cli",
        "serving.redis_server",
        "cache.semantic",
        "cache.index",
        "cache.store",
        "router.policy",
        "router.scorer",
        "loadtest",
    ):
        assert expected in imported
    assert report["network"] == []
    assert report["vllm"] is False  # even the deployments import vLLM only inside the engine
    assert list(tmp_path.iterdir()) == []
