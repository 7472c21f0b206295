"""What a GPU machine can check of tierserve without vLLM's CUDA build: the GPU fleet config loads, the gateway's
embedder runs on CUDA (`cache.embedder_device: cuda`) with the same vectors as on the CPU, how fast, and the
router's decisions on GPU embeddings equal those on CPU embeddings. With vLLM importable it also says so (a GPU
tier smoke then belongs here). Prints one JSON report; exits 1 when a check fails.

    python3 scripts/gpu_smoke.py --model DIR [--prompts tests/data/routellm_gsm8k_first164.csv]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True, help="all-MiniLM-L6-v2 folder (sentence-transformers)")
    parser.add_argument("--prompts", type=Path, default=ROOT / "tests/data/routellm_gsm8k_first164.csv")
    args = parser.parse_args()

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

    with args.prompts.open(newline="") as handle:
        prompts = [row["prompt"] for row in csv.DictReader(handle)]
    cpu = SentenceTransformerEmbedder(args.model, device="cpu")
    cpu._model.float()  # the reference in float32: CPU half precision is slow and loose
    gpu = SentenceTransformerEmbedder(args.model, device="cuda")
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


if __name__ == "__main__":
    raise SystemExit(main())
