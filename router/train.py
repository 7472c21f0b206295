"""`tierserve router train`: fit the difficulty scorer on outcome data, deterministically.

Label: "hard" = the weak model answered wrongly where the strong one was right (`gain`): the failures a
larger tier fixes, which is what routing is for and what PGR counts. Prompts that both models fail are not
worth a larger tier. `weak-wrong` (the weak model failed, whatever the strong one did) is the literal
variant; on the same held-out split it ranks worse (APGR 0.590 vs 0.643, docs/router.md).

Split by a hash of the prompt (stable under any file order; duplicates land together): 20 % test (never seen
by training or model selection), 10 % validation (picks the regularisation by APGR), 70 % train. The shipped
heads are refit on train + validation; the test figures in the weights file are therefore honest held-out
numbers. A second check holds out whole files (MMLU subjects: domains the model never saw), five folds of
every fifth subject, and reports their pooled APGR.

scikit-learn is used here only (imported inside the functions); serving reads the JSON with numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from router.data import OutcomeSet
from router.evaluate import RoutingReport, evaluate_scores
from router.features import SURFACE_FEATURES, surface_vector
from router.model import EMBEDDER_NAME, LinearHead, RouterWeights

__all__ = ["EmbedFn", "Label", "TrainResult", "embed_prompts", "split_of", "surface_matrix", "train"]

Label = Literal["weak-wrong", "gain"]

EmbedFn = Callable[[Sequence[str]], NDArray[np.float32]]
Progress = Callable[[int, int], None]

_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
_TEST_BUCKETS = 20  # of 100
_VAL_BUCKETS = 10
_EMBED_CHUNK = 256
_DECIMALS = 6  # rounding the weights makes the file byte-identical across reruns


def split_of(prompt: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "big") % 100
    if bucket < _TEST_BUCKETS:
        return "test"
    if bucket < _TEST_BUCKETS + _VAL_BUCKETS:
        return "val"
    return "train"


def surface_matrix(prompts: Sequence[str]) -> NDArray[np.float64]:
    return np.stack([surface_vector(p) for p in prompts]) if prompts else np.zeros((0, len(SURFACE_FEATURES)))


def embed_prompts(
    prompts: Sequence[str], embed: EmbedFn, cache_dir: Path | None = None, progress: Progress | None = None
) -> NDArray[np.float32]:
    """Embeddings of every prompt, reused from `cache_dir` when the same prompts were embedded before."""
    digest = hashlib.sha256(EMBEDDER_NAME.encode())
    for prompt in prompts:
        digest.update(hashlib.sha256(prompt.encode("utf-8")).digest())
    cache_file = cache_dir / f"embeddings-{digest.hexdigest()[:20]}.npy" if cache_dir is not None else None
    if cache_file is not None and cache_file.is_file():
        cached = np.load(cache_file)
        if cached.shape[0] == len(prompts):
            if progress is not None:
                progress(len(prompts), len(prompts))
            return np.asarray(cached, dtype=np.float32)
    rows: list[NDArray[np.float32]] = []
    for start in range(0, len(prompts), _EMBED_CHUNK):
        rows.append(np.asarray(embed(list(prompts[start : start + _EMBED_CHUNK])), dtype=np.float32))
        if progress is not None:
            progress(min(start + _EMBED_CHUNK, len(prompts)), len(prompts))
    vectors = np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache_file, vectors)
    return vectors


@dataclass(frozen=True)
class TrainResult:
    weights: RouterWeights
    test: RoutingReport  # full head on the held-out 20 %
    test_features_only: RoutingReport
    unseen_subjects: RoutingReport | None  # pooled over the five subject folds
    unseen_folds: list[float]  # APGR of each fold
    validation: dict[str, dict[float, float]]  # head -> C -> validation APGR


def _fit(x: NDArray[np.float64], y: NDArray[np.bool_], c: float) -> tuple[NDArray[np.float64], float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="lbfgs", max_iter=5000, tol=1e-8)
    model.fit(x, y)
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])


def _scores(x: NDArray[np.float64], coef: NDArray[np.float64], intercept: float) -> NDArray[np.float64]:
    return np.asarray(x @ coef + intercept, dtype=np.float64)  # logits rank like probabilities


def _select_c(
    x: NDArray[np.float64], y: NDArray[np.bool_], train: NDArray[np.bool_], val: NDArray[np.bool_], data: OutcomeSet
) -> tuple[float, dict[float, float]]:
    results: dict[float, float] = {}
    for c in _C_GRID:
        coef, intercept = _fit(x[train], y[train], c)
        results[c] = evaluate_scores(_scores(x[val], coef, intercept), data.weak[val], data.strong[val]).apgr
    best = max(_C_GRID, key=lambda c: (round(results[c], 4), -c))  # ties: the stronger regularisation
    return best, results


def _round(values: NDArray[np.float64]) -> list[float]:
    return [round(float(v), _DECIMALS) for v in values]


def data_fingerprint(data: OutcomeSet) -> str:
    digest = hashlib.sha256()
    for prompt, weak, strong in zip(data.prompts, data.weak, data.strong, strict=True):
        digest.update(hashlib.sha256(prompt.encode("utf-8")).digest() + bytes([int(weak), int(strong)]))
    return digest.hexdigest()


def _unseen_subjects(
    data: OutcomeSet, x: NDArray[np.float64], y: NDArray[np.bool_], fit_rows: NDArray[np.bool_], c: float
) -> tuple[RoutingReport | None, list[float]]:
    """Five folds of whole subjects: fit without a fold, score it; the pooled scores give one curve."""
    subjects = sorted(set(data.groups))
    if len(subjects) < 5:
        return None, []
    groups = np.array(data.groups)
    scores = np.zeros(len(data))
    folds: list[float] = []
    for k in range(5):
        held = np.isin(groups, subjects[k::5])
        coef, b = _fit(x[fit_rows & ~held], y[fit_rows & ~held], c)
        scores[held] = _scores(x[held], coef, b)
        # Logits of different folds are on comparable scales (same features, same regularisation).
        if data.strong[held].sum() > data.weak[held].sum():
            folds.append(round(evaluate_scores(scores[held], data.weak[held], data.strong[held]).apgr, 4))
    return evaluate_scores(scores, data.weak, data.strong), folds


def train(data: OutcomeSet, embeddings: NDArray[np.float32], source: str = "", label: Label = "gain") -> TrainResult:
    """Fit both heads (embedding + features, features only) and evaluate them on held-out data."""
    if embeddings.shape[0] != len(data):
        raise ValueError("one embedding per prompt is needed")
    # hard: only the strong model was right (or, for "weak-wrong", the weak model failed)
    y = ~data.weak if label == "weak-wrong" else data.strong & ~data.weak
    split = np.array([split_of(p) for p in data.prompts])
    train_rows, val_rows, test_rows = split == "train", split == "val", split == "test"
    fit_rows = train_rows | val_rows
    raw = surface_matrix(data.prompts)
    # Rounded before use, so the evaluation below scores exactly what the shipped file will.
    mean = np.round(raw[fit_rows].mean(axis=0), _DECIMALS)
    scale = np.round(raw[fit_rows].std(axis=0), _DECIMALS)
    z = (raw - mean) / np.where(scale > 0, scale, 1.0)
    full_x = np.hstack([embeddings.astype(np.float64), z])

    c_full, val_full = _select_c(full_x, y, train_rows, val_rows, data)
    c_feat, val_feat = _select_c(z, y, train_rows, val_rows, data)
    full_coef, full_b = _fit(full_x[fit_rows], y[fit_rows], c_full)
    feat_coef, feat_b = _fit(z[fit_rows], y[fit_rows], c_feat)

    dim = embeddings.shape[1]
    full_coef, full_b = np.round(full_coef, _DECIMALS), round(full_b, _DECIMALS)
    feat_coef, feat_b = np.round(feat_coef, _DECIMALS), round(feat_b, _DECIMALS)
    test = evaluate_scores(_scores(full_x[test_rows], full_coef, full_b), data.weak[test_rows], data.strong[test_rows])
    test_feat = evaluate_scores(_scores(z[test_rows], feat_coef, feat_b), data.weak[test_rows], data.strong[test_rows])

    unseen, folds = _unseen_subjects(data, full_x, y, fit_rows, c_full)

    training: dict[str, Any] = {
        "source": source,
        "data_sha256": data_fingerprint(data),
        "rows": len(data),
        "label": label,
        "weak_column": data.weak_column,
        "strong_column": data.strong_column,
        "split": "sha256(prompt) % 100: <20 test, <30 validation, else train; heads refit on train+validation",
        "c_full": c_full,
        "c_features_only": c_feat,
        "test_full": test.as_dict(brief=True),
        "test_features_only": test_feat.as_dict(brief=True),
    }
    if unseen is not None:
        training["unseen_subjects"] = {
            **unseen.as_dict(brief=True),
            "fold_apgr": folds,
            "folds": "sorted subjects[k::5]",
        }
    weights = RouterWeights(
        embedder=EMBEDDER_NAME,
        dimension=dim,
        label="P(weak model answers wrongly)" if label == "weak-wrong" else "P(only the strong model is right)",
        features=list(SURFACE_FEATURES),
        feature_mean=_round(mean),
        feature_scale=_round(np.where(scale > 0, scale, 0.0)),
        full=LinearHead(
            coef_embedding=_round(full_coef[:dim]), coef_features=_round(full_coef[dim:]), intercept=full_b
        ),
        features_only=LinearHead(coef_features=_round(feat_coef), intercept=feat_b),
        training=training,
    )
    return TrainResult(
        weights=weights,
        test=test,
        test_features_only=test_feat,
        unseen_subjects=unseen,
        unseen_folds=folds,
        validation={"full": val_full, "features_only": val_feat},
    )
