"""Every option the stack configs set is one the pinned vLLM and Ray accept (docs/gpu.md). Every engine setting is an
argument of the installed vLLM's server, read back by vLLM's own parser (and its own start-up validation) with the
value the tier sets; every tool_call_parser is one the installed vLLM registers; every deployment's Serve options,
autoscaling included, are Ray's. The GPU configs cannot start an engine here; this is how their names are checked.

vLLM runs in a subprocess: its import configures logging for the whole process (serving/engine.py) and takes
seconds; one probe parses every tier of every config."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ray.serve.config import AutoscalingConfig

from loadtest.slo import load_slo_file
from serving.app import build_app, deployment_options
from serving.config import load_config
from serving.engine import engine_env, server_arguments
from tests.vllm_config import write_server_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("gpu.yaml", "gpu-smoke.yaml", "default.yaml", "test.yaml", "one-tier.yaml")

# Parses each `vllm serve --config` file as vLLM's server does (tests/vllm_config.py writes them): the flags its
# parser registers, each file's arguments as parsed, its start-up checks, the engine arguments built from them, and
# the registered tool parsers.
PROBE = """
import json, sys
from pathlib import Path
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.tool_parsers import ToolParserManager
from vllm.utils.argparse_utils import FlexibleArgumentParser

parser = make_arg_parser(FlexibleArgumentParser())
out = {"dests": sorted({a.dest for a in parser._actions}), "parsers": sorted(ToolParserManager.list_registered())}
files = {}
for path, keys in json.loads(sys.argv[1]).items():
    try:
        # An existing folder as the model: offline, vLLM's engine arguments look a hub id up in the local cache.
        args = parser.parse_args(["--model", str(Path(path).parent), "--config", path])
        validate_parsed_serve_args(args)
        AsyncEngineArgs.from_cli_args(args)
        files[path] = {key: getattr(args, key, "<missing>") for key in keys}
    except BaseException as error:  # argparse exits on an unknown flag: name it, go on with the next file
        files[path] = {"error": f"{type(error).__name__}: {error}"}
out["files"] = files
print("PROBE" + json.dumps(out, default=repr))
"""


def _tiers() -> list[tuple[str, Any]]:
    return [(name, tier) for name in CONFIGS for tier in load_config(ROOT / "configs" / name).tiers]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    folder = tmp_path_factory.mktemp("vllm-config")
    wanted = {
        str(write_server_config(tier, folder / f"{name.removesuffix('.yaml')}-{tier.name}.yaml")): list(
            server_arguments(tier)
        )
        for name, tier in _tiers()
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(wanted)],
        cwd=ROOT,
        env={**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE")), None)
    assert done.returncode == 0 and line is not None, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(line.removeprefix("PROBE"))
    result["folder"] = str(folder)
    return result


@pytest.mark.parametrize(("config", "tier"), [(n, t.name) for n, t in _tiers()])
def test_every_engine_setting_is_read_back_by_vllms_parser(probe: dict[str, Any], config: str, tier: str) -> None:
    settings = load_config(ROOT / "configs" / config).tier(tier)
    arguments = server_arguments(settings)  # the named engine fields and every `extra` key
    unknown = sorted(set(arguments) - set(probe["dests"]))
    assert not unknown, f"{config} tier {tier}: not arguments of vLLM's server: {unknown}"
    parsed = probe["files"][str(Path(probe["folder"]) / f"{config.removesuffix('.yaml')}-{tier}.yaml")]
    assert "error" not in parsed, parsed.get("error")
    # None stays vLLM's default; a false switch without a --no- flag is left out and must still read back false.
    expected = {key: value for key, value in arguments.items() if value is not None}
    assert {key: parsed[key] for key in expected} == expected


@pytest.mark.parametrize(("config", "tier"), [(n, t.name) for n, t in _tiers() if t.engine.tool_call_parser])
def test_every_tool_call_parser_is_registered(probe: dict[str, Any], config: str, tier: str) -> None:
    parser = load_config(ROOT / "configs" / config).tier(tier).engine.tool_call_parser
    assert parser in probe["parsers"], f"{config} tier {tier}: {parser!r} is not a tool parser of this vLLM"


@pytest.mark.parametrize("config", CONFIGS)
def test_every_autoscaling_option_is_a_field_of_rays_config(config: str) -> None:
    # Ray's `.options()` refuses unknown ray_actor_options and out-of-range values (build_app, test_app.py), but
    # takes an autoscaling_config with a misspelt key without a word.
    stack = load_config(ROOT / "configs" / config)
    for deployment in [tier.deployment for tier in stack.tiers] + [stack.gateway.deployment]:
        autoscaling = deployment_options(deployment).get("autoscaling_config")
        if autoscaling is not None:
            assert set(autoscaling) <= set(AutoscalingConfig.model_fields), sorted(autoscaling)
            assert AutoscalingConfig(**autoscaling).max_replicas == autoscaling["max_replicas"]


def test_the_gpu_smoke_tier_runs_on_a_gpu_with_vllms_defaults() -> None:
    config = load_config(ROOT / "configs" / "gpu-smoke.yaml")
    tier = config.tier("small")
    assert [t.name for t in config.tiers] == ["small"] and tier.prepared == "smollm2-135m-instruct"
    arguments = server_arguments(tier)
    assert arguments["enforce_eager"] is False and arguments["dtype"] == "bfloat16"
    assert "enable_chunked_prefill" not in arguments  # the CPU scheduler's whole prefills are for CPU only
    # Two engines share the GPU in the conformance test (the tier and vLLM's own server).
    assert arguments["gpu_memory_utilization"] <= 0.45
    assert engine_env(tier.deployment.num_gpus) == {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    replica = build_app(config)._bound_deployment.init_args[1]["small"]._bound_deployment
    assert replica.ray_actor_options["num_gpus"] == 1
    assert "VLLM_CPU_KVCACHE_SPACE" not in replica.ray_actor_options["runtime_env"]["env_vars"]


def test_the_gpu_smoke_slos_name_only_its_tier() -> None:
    # A tier in the SLO file that the stack lacks sees no request, and the gate fails it as unmeasured.
    slo = load_slo_file(ROOT / "configs" / "slo-gpu-smoke.yaml").for_scenario("chat")
    assert slo.targets() and set(slo.tiers) <= {t.name for t in load_config(ROOT / "configs" / "gpu-smoke.yaml").tiers}
