"""The trained difficulty scorer: a logistic model over the request's embedding and its surface features.

Inference is plain numpy over weights read from a small JSON file (no pickle, no scikit-learn at serving
time). The score is the model's estimate of P(only the strong model answers this request correctly: the weak
tier would fail where a larger one succeeds), plus configured priors for
the two cues the training data cannot teach (requested output length and conversation depth: every training
prompt is single-turn with the same output budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.config import FeatureWeights
from router.errors import RouterError
from router.features import SURFACE_FEATURES, RouteInput, output_length_feature, surface_vector

__all__ = [
    "DEFAULT_WEIGHTS",
    "EMBEDDER_NAME",
    "Contribution",
    "Explanation",
    "LinearHead",
    "RouterWeights",
    "TrainedScorer",
    "load_weights",
]

EMBEDDER_NAME = "all-MiniLM-L6-v2"
DEFAULT_WEIGHTS = "minilm-mmlu.json"


class LinearHead(BaseModel):
    """logit = intercept + coef_embedding . embedding + coef_features . standardised(features)."""

    model_config = ConfigDict(extra="forbid")

    coef_embedding: list[float] = Field(default_factory=list)
    coef_features: list[float]
    intercept: float


class RouterWeights(BaseModel):
    """The shipped (or trained) weights; `training` records how they were made, for reproducibility."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    embedder: str
    dimension: int
    label: str
    features: list[str]
    feature_mean: list[float]
    feature_scale: list[float]
    full: LinearHead
    features_only: LinearHead
    training: dict[str, Any] = Field(default_factory=dict)


def load_weights(path: Path | None = None) -> RouterWeights:
    """Weights from `path`, or the ones shipped in this package."""
    try:
        if path is None:
            text = resources.files("router").joinpath("weights", DEFAULT_WEIGHTS).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise RouterError(f"cannot read router weights {path or DEFAULT_WEIGHTS}: {error.strerror}") from None
    try:
        weights = RouterWeights.model_validate_json(text)
    except ValidationError as error:
        raise RouterError(f"router weights {path or DEFAULT_WEIGHTS} are invalid: {error}") from None
    if tuple(weights.features) != SURFACE_FEATURES:
        raise RouterError(
            f"router weights {path or DEFAULT_WEIGHTS} were trained on features {weights.features}, "
            f"this version computes {list(SURFACE_FEATURES)}: retrain with `tierserve router train`"
        )
    if len(weights.full.coef_embedding) != weights.dimension:
        raise RouterError("router weights: coef_embedding length differs from the declared dimension")
    return weights


@dataclass(frozen=True)
class Contribution:
    name: str
    value: float  # the feature's raw value
    logit: float  # what it adds to the logit


@dataclass(frozen=True)
class Explanation:
    score: float
    logit: float
    intercept: float
    used_embedding: bool
    embedding_logit: float  # the topic's share of the logit (0 when no embedding was given)
    contributions: list[Contribution]


def _sigmoid(x: float) -> float:
    # Stable for large |x|: math.exp overflows past ~709.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class TrainedScorer:
    """Scores with the full head when the request carries an embedding, else with the features-only head."""

    def __init__(self, weights: RouterWeights, priors: FeatureWeights | None = None) -> None:
        self._weights = weights
        self._dimension = weights.dimension
        self._mean = np.asarray(weights.feature_mean, dtype=np.float64)
        scale = np.asarray(weights.feature_scale, dtype=np.float64)
        self._inv_scale = np.where(scale > 0, 1.0 / np.where(scale > 0, scale, 1.0), 0.0)
        self._full_emb = np.asarray(weights.full.coef_embedding, dtype=np.float32)
        self._full_feat = np.asarray(weights.full.coef_features, dtype=np.float64)
        self._only_feat = np.asarray(weights.features_only.coef_features, dtype=np.float64)
        priors = priors or FeatureWeights()
        self._prior_output = priors.output_length
        self._prior_turns = priors.turns

    @property
    def weights(self) -> RouterWeights:
        return self._weights

    def _embedding(self, request: RouteInput) -> NDArray[np.float32] | None:
        vector = request.embedding
        if vector is None:
            return None
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        if flat.shape[0] != self._dimension:
            raise RouterError(
                f"the router's weights expect {self._dimension}-d embeddings ({self._weights.embedder}), "
                f"got {flat.shape[0]}-d"
            )
        return flat

    def _priors(self, request: RouteInput) -> float:
        return self._prior_output * output_length_feature(request.max_tokens) + self._prior_turns * float(
            request.earlier_turns
        )

    def logit(self, request: RouteInput) -> float:
        z = (surface_vector(request.text) - self._mean) * self._inv_scale
        embedding = self._embedding(request)
        if embedding is None:
            value = self._weights.features_only.intercept + float(self._only_feat @ z)
        else:
            value = self._weights.full.intercept + float(self._full_feat @ z) + float(self._full_emb @ embedding)
        return value + self._priors(request)

    def score(self, request: RouteInput) -> float:
        return _sigmoid(self.logit(request))

    def explain(self, request: RouteInput) -> Explanation:
        raw = surface_vector(request.text)
        z = (raw - self._mean) * self._inv_scale
        embedding = self._embedding(request)
        head = self._weights.features_only if embedding is None else self._weights.full
        coef = self._only_feat if embedding is None else self._full_feat
        contributions = [
            Contribution(name, float(value), float(c * zi))
            for name, value, c, zi in zip(SURFACE_FEATURES, raw, coef, z, strict=True)
        ]
        contributions += [
            Contribution(
                "output_length (prior)",
                output_length_feature(request.max_tokens),
                self._prior_output * output_length_feature(request.max_tokens),
            ),
            Contribution(
                "earlier_turns (prior)", float(request.earlier_turns), self._prior_turns * request.earlier_turns
            ),
        ]
        embedding_logit = 0.0 if embedding is None else float(self._full_emb @ embedding)
        logit = head.intercept + embedding_logit + sum(c.logit for c in contributions)
        return Explanation(
            score=_sigmoid(logit),
            logit=logit,
            intercept=head.intercept,
            used_embedding=embedding is not None,
            embedding_logit=embedding_logit,
            contributions=contributions,
        )
