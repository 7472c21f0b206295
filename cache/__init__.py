"""Semantic cache: embeddings, an HNSW index per tenant, Redis as the shared store."""

from cache.config import CacheConfig, RedisConfig
from cache.embedder import Embedder, SentenceTransformerEmbedder
from cache.errors import CacheError, CacheUnavailable
from cache.keys import namespace_key
from cache.semantic import Lookup, Outcome, SemanticCache
from cache.store import CachedAnswer, CacheEntry, CacheStore
from cache.verify import LookalikeVerifier, VerifierConfig

__all__ = [
    "CacheConfig",
    "CacheEntry",
    "CacheError",
    "CacheStore",
    "CacheUnavailable",
    "CachedAnswer",
    "Embedder",
    "LookalikeVerifier",
    "Lookup",
    "Outcome",
    "RedisConfig",
    "SemanticCache",
    "SentenceTransformerEmbedder",
    "VerifierConfig",
    "namespace_key",
]
