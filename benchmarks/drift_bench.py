"""How fast the drift detector sees a shifted query mix, and how often it cries wolf on an unshifted one.

    python -m benchmarks.drift_bench [--json-out docs/drift-bench.json]

Real queries, embedded with all-MiniLM-L6-v2 as the gateway embeds them:
- baseline and the unshifted stream: ShareGPT first turns (chat), in the file's order, disjoint slices;
- shift 1, to math word problems: GSM8K questions (RouteLLM's outcome file in tests/data);
- shift 2, to code: ShareGPT first turns that hold code (a code fence, `def `, `function `, `SELECT `).
Each shifted run first sends `lead` unshifted requests after the baseline, then switches; the delay is the number
of shifted requests until the alarm. The false-alarm figure is the share of checks that raised an alarm over a
long unshifted stream (and whether the alarm ever went up).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from drift.detector import DriftConfigValues, DriftDetector

ROOT = Path(__file__).resolve().parents[1]
_CODE = re.compile(r"```|\bdef \w+\(|\bfunction \w+\(|\bSELECT\b|#include|public static")


def _run(config: DriftConfigValues, baseline: np.ndarray, stream: np.ndarray) -> tuple[int | None, int, int]:
    """(requests of `stream` until the first alarm or None, checks made, checks with an alarm up)."""
    detector = DriftDetector(config)
    for vector in baseline:
        detector.observe(vector, {})
    first: int | None = None
    checks = alarms = 0
    for i, vector in enumerate(stream, 1):
        detector.observe(vector, {})
        if i % config.check_every == 0:
            checks += 1
            if "queries" in detector.alarms():
                alarms += 1
                first = first if first is not None else i
    return first, checks, alarms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--unshifted", type=int, default=3000)
    parser.add_argument("--lead", type=int, default=150)
    args = parser.parse_args()
    from cache import SentenceTransformerEmbedder
    from loadtest.workloads import load_sharegpt

    prompts = [c.prompt for c in load_sharegpt(100_000)]
    chat = [p for p in prompts if not _CODE.search(p)]
    code = [p for p in prompts if _CODE.search(p)]
    with (ROOT / "tests" / "data" / "routellm_gsm8k.csv").open(encoding="utf-8", newline="") as handle:
        math_prompts = [row["prompt"] for row in csv.DictReader(handle)]
    config = DriftConfigValues()
    embedder = SentenceTransformerEmbedder()

    def embed(texts: list[str]) -> np.ndarray:
        return np.concatenate([embedder.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])

    baseline = embed(chat[: config.baseline_size])
    unshifted = embed(chat[config.baseline_size : config.baseline_size + args.unshifted])
    lead = unshifted[: args.lead]
    results: dict[str, Any] = {"config": config.__dict__, "chat_prompts": len(chat), "code_prompts": len(code)}
    first, checks, alarms = _run(config, baseline, unshifted)
    results["unshifted"] = {
        "requests": len(unshifted),
        "checks": checks,
        "checks_in_alarm": alarms,
        "false_alarm_rate_per_check": round(alarms / checks, 4) if checks else None,
        "first_alarm_at": first,
    }
    for name, texts in (("to_math", math_prompts[:600]), ("to_code", code[:600])):
        shifted = embed(texts)
        first, _, _ = _run(config, baseline, np.concatenate([lead, shifted]))
        results[name] = {
            "shifted_requests": len(shifted),
            "alarm_after_shifted_requests": None if first is None else first - len(lead),
        }
    text = json.dumps(results, indent=1)
    print(text)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
