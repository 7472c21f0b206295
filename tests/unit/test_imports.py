"""Importing the packages does no work: no network, no env vars, no files, no vLLM or torch.

Each check runs in a fresh interpreter with an empty environment (PATH only), so modules already
imported by the test session cannot hide an import-time side effect.
"""

from __future__ import annotations

import ast
import importlib
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
        for package_name in ("serving", "cache", "router", "loadtest", "benchmarks", "commands"):
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
        "serving.body",
        "serving.contract",
        "serving.embeddings",
        "commands.main",
        "benchmarks.bench",
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


ROOT = Path(__file__).resolve().parents[2]


def _imports(folder: str) -> list[tuple[str, str, str, list[str]]]:
    """(file, package, submodule path, names) for every import statement under `folder`, nested ones too."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top, _, rest = node.module.partition(".")
                found.append(
                    (str(path.relative_to(ROOT)), top, f".{rest}" if rest else "", [a.name for a in node.names])
                )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top, _, rest = alias.name.partition(".")
                    found.append((str(path.relative_to(ROOT)), top, f".{rest}" if rest else "", []))
    return found


@pytest.mark.parametrize("package", ["cache", "router"])
def test_the_gateway_and_commands_use_only_the_door_and_the_door_only_what_they_use(package: str) -> None:
    door = set(importlib.import_module(package).__all__)
    used: set[str] = set()
    for folder in ("serving", "commands"):
        for path, imported, submodule, names in _imports(folder):
            if imported != package:
                continue
            # Through the door, or the package's own command-line module (commands mounts it).
            assert submodule in ("", ".cli"), f"{path} reaches into {package}{submodule}"
            if submodule == "":
                used.update(names)
    assert door == used, f"exported but unused: {sorted(door - used)}; used but not exported: {sorted(used - door)}"


def test_the_load_test_gate_imports_none_of_the_stack() -> None:
    """loadtest talks to a stack over HTTP only; benchmarks (which run the stack's code) live apart."""
    ours = {"serving", "cache", "router", "benchmarks", "commands"}
    offenders = [(path, imported) for path, imported, _, _ in _imports("loadtest") if imported in ours]
    assert offenders == []


def test_runtime_packages_never_import_a_command_line() -> None:
    for folder in ("serving", "cache", "router", "loadtest"):
        for path, imported, submodule, _ in _imports(folder):
            assert imported != "commands", path
            if imported != folder and imported in {"serving", "cache", "router", "loadtest"}:
                assert submodule != ".cli", f"{path} imports {imported}.cli"
