"""A tier's engine settings as a `vllm serve --config` file: `serving.engine.server_arguments`, which the tier's
replica sets on vLLM's parsed arguments, written for vLLM's own server. vLLM turns the file into its flags itself (a
false switch becomes `--no-KEY` where vLLM has one and is left out where the flag only switches on, a list becomes
repeated values, a mapping JSON), so the conformance test's reference server runs exactly the tier's settings, CPU
or GPU, and tests/unit/test_pinned_options.py checks that vLLM's own parser reads every one of them back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from serving.config import TierConfig
from serving.engine import server_arguments


def server_config(tier: TierConfig) -> dict[str, Any]:
    """The file's mapping. None is left out (vLLM's default: the file would pass the string "None"); keys are
    dashed because vLLM's reader looks `--no-KEY` up as written, and an underscored key would drop a false switch."""
    return {key.replace("_", "-"): value for key, value in server_arguments(tier).items() if value is not None}


def write_server_config(tier: TierConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(server_config(tier), sort_keys=False))
    return path
