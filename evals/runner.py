"""Run a golden set through a running stack over HTTP, as a client would, and score it; compare with a baseline.

Each case is one chat completion at temperature 0 (unless the case says otherwise) to `--model` (a tier, or
`auto` for the router's choice; `--tier` pins the router to one tier). The tier that answered, the cost and the
latency come from the response (`x-tierserve-tier`, `usage.cost_usd`). A `judge` case asks the largest tier
whether the answer matches the expectation."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from evals.golden import Case, grade

__all__ = ["CaseResult", "EvalRun", "compare", "run_set", "summarise"]

_JUDGE_PROMPT = (
    "You grade answers. Expected answer: {expected}\nGiven answer: {answer}\n"
    "Does the given answer state the same thing as the expected one? Reply with one word: yes or no."
)


@dataclass(frozen=True)
class CaseResult:
    name: str
    grader: str
    score: float
    tier: str | None
    cache: str | None
    latency_ms: float
    cost_usd: float
    answer: str
    error: str | None = None


@dataclass(frozen=True)
class EvalRun:
    url: str
    model: str
    tier: str | None
    results: list[CaseResult]

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "tier": self.tier,
            "summary": summarise(self.results),
            "cases": [asdict(r) for r in self.results],
        }


def _post(client: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = client.post("/v1/chat/completions", json=body, headers=headers)
    return response, (time.perf_counter() - start) * 1e3


def _answer(response: httpx.Response) -> str:
    message = response.json()["choices"][0]["message"]
    if message.get("tool_calls"):
        return json.dumps(message["tool_calls"])
    return str(message.get("content") or "")


def run_set(
    cases: Sequence[Case],
    url: str,
    model: str = "auto",
    tier: str | None = None,
    api_key: str | None = None,
    judge_model: str | None = None,
    similarity: Callable[[str, str], float] | None = None,
    concurrency: int = 2,
    timeout_s: float = 300,
) -> EvalRun:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    if tier is not None:
        headers["x-tierserve-pin-tier"] = tier
    client = httpx.Client(base_url=url, timeout=timeout_s)

    def judge(case: Case, answer: str) -> bool:
        prompt = _JUDGE_PROMPT.format(expected=case.expected, answer=answer)
        body = {"model": judge_model or model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 3}
        response, _ = _post(
            client, {**body, "temperature": 0}, {k: v for k, v in headers.items() if k != "x-tierserve-pin-tier"}
        )
        return response.status_code == 200 and _answer(response).strip().lower().startswith("yes")

    def one(indexed: tuple[int, Case]) -> CaseResult:
        index, case = indexed
        body = {"model": model, "messages": case.messages, "temperature": 0, "max_tokens": 64, **case.request}
        response, latency = _post(client, body, headers)
        if response.status_code != 200:
            error = response.text[:300]
            return CaseResult(case.name(index), case.grader, 0.0, None, None, latency, 0.0, "", error)
        answer = _answer(response)
        usage = response.json().get("usage") or {}
        score = grade(case, answer, similarity, judge)
        return CaseResult(
            case.name(index),
            case.grader,
            score,
            response.headers.get("x-tierserve-tier"),
            response.headers.get("x-tierserve-cache"),
            round(latency, 1),
            float(usage.get("cost_usd") or 0.0),
            answer,
        )

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            results = list(pool.map(one, enumerate(cases)))
    finally:
        client.close()
    return EvalRun(url, model, tier, results)


def _stats(results: Sequence[CaseResult]) -> dict[str, Any]:
    latencies = sorted(r.latency_ms for r in results)
    return {
        "cases": len(results),
        "mean_score": round(statistics.fmean(r.score for r in results), 4) if results else None,
        "errors": sum(1 for r in results if r.error),
        "cost_usd": round(sum(r.cost_usd for r in results), 8),
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
    }


def summarise(results: Sequence[CaseResult]) -> dict[str, Any]:
    tiers = sorted({r.tier for r in results if r.tier})
    return {
        "overall": _stats(results),
        "by_tier": {t: _stats([r for r in results if r.tier == t]) for t in tiers},
        "by_grader": {g: _stats([r for r in results if r.grader == g]) for g in sorted({r.grader for r in results})},
    }


def compare(run: dict[str, Any], baseline: dict[str, Any], cases: Sequence[Case]) -> list[str]:
    """The regressions: cases whose score dropped by more than their tolerance (default 0) against the baseline."""
    before = {c["name"]: c["score"] for c in baseline.get("cases", [])}
    tolerance = {case.name(i): case.tolerance or 0.0 for i, case in enumerate(cases)}
    drops = []
    for case in run["cases"]:
        old = before.get(case["name"])
        if old is not None and old - case["score"] > tolerance.get(case["name"], 0.0) + 1e-9:
            drops.append(f"{case['name']}: {old:.2f} -> {case['score']:.2f}")
    return drops
