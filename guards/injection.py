"""The prompt-injection / jailbreak classifier: logistic regression over hashed character and word n-grams and
the message's sentence embedding (all-MiniLM-L6-v2, the one the cache and the router already compute).

Hashing needs no vocabulary, so the weights are one coefficient vector (shipped as a small .npz beside this
module, reproduced by `tierserve guards train`). The n-grams catch the wording of attacks seen in training; the
embedding carries their meaning to wordings it never saw (HackAPrompt's held-out TPR went from 20 % to 45 % with
it, docs/security.md). A long message (a retrieved document, a tool result) has its n-grams scored by
overlapping windows, the highest taken, so an instruction in the middle of a page is not averaged away.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_WEIGHTS", "Classifier", "InjectionClassifier", "Vectorizer", "load_classifier"]

DEFAULT_WEIGHTS = "injection.npz"
WINDOW_CHARS = 1200
WINDOW_STEP = 900


Vectors = Sequence[NDArray[np.float32]]


class Classifier(Protocol):
    """Scores texts: P(prompt injection or jailbreak) each; `threshold` is where a score counts as one. With
    `embedding_dim` > 0 it needs each text's unit-norm sentence embedding too."""

    threshold: float
    embedding_dim: int

    def score(self, texts: Sequence[str], vectors: Vectors | None = None) -> list[float]: ...


@dataclass(frozen=True)
class Vectorizer:
    """Hashed n-grams: characters within word boundaries (robust to spacing and spelling games) and words."""

    char_features: int = 2**18
    word_features: int = 2**17
    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] = (1, 3)

    def build(self) -> Any:
        from scipy import sparse
        from sklearn.feature_extraction.text import HashingVectorizer

        common: dict[str, Any] = {"alternate_sign": False, "norm": "l2", "lowercase": True, "dtype": np.float32}
        chars = HashingVectorizer(
            analyzer="char_wb", ngram_range=self.char_ngrams, n_features=self.char_features, **common
        )
        words = HashingVectorizer(
            analyzer="word",
            ngram_range=self.word_ngrams,
            n_features=self.word_features,
            token_pattern=r"(?u)\b\w+\b|[^\w\s]",
            **common,
        )

        def transform(texts: Sequence[str]) -> Any:
            clean = [normalise(t) for t in texts]
            return sparse.hstack([chars.transform(clean), words.transform(clean)], format="csr")

        return transform

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Vectorizer:
        return cls(
            char_features=int(meta["char_features"]),
            word_features=int(meta["word_features"]),
            char_ngrams=(int(meta["char_ngrams"][0]), int(meta["char_ngrams"][1])),
            word_ngrams=(int(meta["word_ngrams"][0]), int(meta["word_ngrams"][1])),
        )

    @property
    def width(self) -> int:
        return self.char_features + self.word_features


def normalise(text: str) -> str:
    # NFKC folds full-width and stylised letters (a common evasion) onto plain ones.
    return " ".join(unicodedata.normalize("NFKC", text).split())


def windows(text: str) -> list[str]:
    if len(text) <= WINDOW_CHARS:
        return [text]
    return [text[i : i + WINDOW_CHARS] for i in range(0, len(text) - WINDOW_CHARS + WINDOW_STEP, WINDOW_STEP)]


class InjectionClassifier:
    def __init__(self, coef: NDArray[np.float32], intercept: float, threshold: float, meta: dict[str, Any]) -> None:
        self._vectorizer = Vectorizer.from_meta(meta["vectorizer"])
        self.embedding_dim = int(meta.get("embedding_dim", 0))
        width = self._vectorizer.width + self.embedding_dim
        if coef.shape != (width,):
            raise ValueError(f"injection weights have {coef.shape[0]} coefficients, the features {width}")
        self._transform = self._vectorizer.build()
        self._coef = coef
        self._intercept = intercept
        self.threshold = threshold
        self.meta = meta
        digest = hashlib.sha256(coef.astype(np.float32).tobytes())
        digest.update(json.dumps([float(intercept), meta], sort_keys=True, default=str).encode())
        self.fingerprint = digest.hexdigest()[:16]  # these weights (and features): the same text scores the same

    def score(self, texts: Sequence[str], vectors: Vectors | None = None) -> list[float]:
        """P(injection) of each text: the highest over its windows (`vectors`: the texts' embeddings)."""
        if not texts:
            return []
        if self.embedding_dim and (vectors is None or len(vectors) != len(texts)):
            raise ValueError("this classifier needs one sentence embedding per text")
        pieces: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for piece in windows(text):
                pieces.append(piece)
                owner.append(i)
        split = self._vectorizer.width
        logits = self._transform(pieces) @ self._coef[:split] + self._intercept
        if self.embedding_dim and vectors is not None:
            semantic = np.stack([np.asarray(v, dtype=np.float32) for v in vectors]) @ self._coef[split:]
            logits = logits + semantic[owner]
        probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
        best = [0.0] * len(texts)
        for i, p in zip(owner, probabilities, strict=True):
            best[i] = max(best[i], float(p))
        return best

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            coef=self._coef.astype(np.float32),
            intercept=np.float64(self._intercept),
            threshold=np.float64(self.threshold),
            meta=np.array(json.dumps(self.meta)),
        )


def load_classifier(path: Path | None = None) -> InjectionClassifier:
    """The classifier from a weights file, or the packaged one."""
    source = resources.files("guards") / "weights" / DEFAULT_WEIGHTS if path is None else path
    with resources.as_file(source) as file, np.load(file, allow_pickle=False) as data:  # type: ignore[arg-type]
        return InjectionClassifier(
            data["coef"].astype(np.float32),
            float(data["intercept"]),
            float(data["threshold"]),
            json.loads(str(data["meta"])),
        )
