"""Semantic cache: embeddings, an HNSW index per tenant, Redis as the shared store.

The door holds what the gateway and the commands use; the parts (index, batching, verifier internals) are reached
through their own modules by the cache's CLI, the benchmarks and the tests."""

from cache.batching import EmbeddingBatcher
from cache.config import CacheConfig
from cache.embedder import SentenceTransformerEmbedder, TokenCountingEmbedder
from cache.keys import namespace_key
from cache.redis_connect import connect_async, connect_sync
from cache.semantic import Outcome, SemanticCache
from cache.store import CachedAnswer, CacheStore
from cache.verify import LookalikeVerifier

__all__ = [
    "EmbeddingBatcher",
    "CacheConfig",
    "CacheStore",
    "CachedAnswer",
    "LookalikeVerifier",
    "Outcome",
    "SemanticCache",
    "SentenceTransformerEmbedder",
    "TokenCountingEmbedder",
    "connect_async",
    "connect_sync",
    "namespace_key",
]
