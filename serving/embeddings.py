"""POST /v1/embeddings: the sentence embedder the gateway already loads for its cache and router, in OpenAI's shape.

Texts are embedded off the event loop, all of a request's inputs in one batch. An input longer than the model
reads is refused (400) rather than silently cut, as OpenAI does; token-id inputs are refused too (this model's
ids are not what a client's tokenizer would produce).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cache import TokenCountingEmbedder
from serving.errors import InvalidRequest, NotFound

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_MODEL_ALIASES = frozenset({EMBEDDING_MODEL, f"sentence-transformers/{EMBEDDING_MODEL}"})
MAX_INPUTS = 2048  # OpenAI's limit per request


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if self.input and not all(isinstance(item, str) for item in self.input):
            raise InvalidRequest(
                f"input: token ids are not accepted; send text ({EMBEDDING_MODEL} tokenizes it itself).",
                param="input",
            )
        return [str(item) for item in self.input]


class EmbeddingsService:
    def __init__(self, embedder: TokenCountingEmbedder | None) -> None:
        self._embedder = embedder

    async def create(self, request: EmbeddingsRequest) -> dict[str, Any]:
        embedder = self._embedder
        if embedder is None or request.model not in EMBEDDING_MODEL_ALIASES:
            available = EMBEDDING_MODEL if embedder is not None else "none (the cache, which loads it, is disabled)"
            raise NotFound(
                f"The embedding model '{request.model}' does not exist. Available: {available}.", param="model"
            )
        if request.dimensions is not None and request.dimensions != embedder.dimension:
            raise InvalidRequest(
                f"dimensions: {EMBEDDING_MODEL} embeds in {embedder.dimension} dimensions only.", param="dimensions"
            )
        texts = request.texts()
        if not texts or len(texts) > MAX_INPUTS:
            raise InvalidRequest(f"input: send between 1 and {MAX_INPUTS} texts.", param="input")
        if any(not text for text in texts):
            raise InvalidRequest("input: an input must not be empty.", param="input")
        counts = await asyncio.to_thread(embedder.count_tokens, texts)
        too_long = [(i, n) for i, n in enumerate(counts) if n > embedder.max_tokens]
        if too_long:
            index, tokens = too_long[0]
            raise InvalidRequest(
                f"input[{index}] is {tokens} tokens; {EMBEDDING_MODEL} reads at most {embedder.max_tokens}.",
                param="input",
                code="context_length_exceeded",
            )
        vectors = await asyncio.to_thread(embedder.embed, texts)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(row, request.encoding_format)}
            for i, row in enumerate(vectors)
        ]
        total = sum(counts)
        return {
            "object": "list",
            "data": data,
            "model": EMBEDDING_MODEL,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }


def _encode(row: np.ndarray[Any, Any], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it (the official client asks for this)
        return base64.b64encode(np.ascontiguousarray(row, dtype="<f4").tobytes()).decode()
    return [float(value) for value in row]
