"""`tierserve reload`'s deploy step: what a restart must change is kept, and a reload that fails (or a config that
does not load) leaves the running stack as it is instead of stopping it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from serving import cli
from serving.config import load_config


def write(path: Path, port: int, health_cache_s: float) -> Path:
    config = yaml.safe_load(Path("configs/test.yaml").read_text())
    config["gateway"] = {**config.get("gateway", {}), "port": port, "health_cache_s": health_cache_s}
    for key in ("models_dir", "data_dir"):
        config[key] = str((Path.cwd() / config[key]).resolve())
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_failed_deploy_keeps_the_stack_and_the_listening_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray import serve

    current = load_config(write(tmp_path / "now.yaml", 8000, 1))
    edited = write(tmp_path / "edited.yaml", 9999, 2)
    deployed: list[Any] = []

    def failing_run(app: Any, **_: Any) -> None:
        deployed.append(app)
        raise RuntimeError("replica failed to start")

    monkeypatch.setattr(serve, "run", failing_run)
    monkeypatch.setattr(cli, "_prepare", lambda stack: None)
    result = cli._reload(current, edited, "http://127.0.0.1:1", ready_timeout=1)
    assert len(deployed) == 1  # it tried, failed, and returned instead of raising
    assert result.gateway.port == 8000 and result.gateway.health_cache_s == 2  # the port only changes on a restart
    (tmp_path / "broken.yaml").write_text("tiers: nope")
    assert cli._reload(current, tmp_path / "broken.yaml", "http://127.0.0.1:1", ready_timeout=1) is current
