"""Configuration owned by the cache package (composed into the stack config by serving.config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cache.redis_connect import parse_sentinel_url
from cache.verify import VerifierConfig


class RedisConfig(BaseModel):
    """Where the cache's Redis lives and how hard to try before bypassing it."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="An operator-run Redis: redis://host:port/db, or redis+sentinel://host:port[,host:port...]"
        "/service[/db] for the primary Sentinel names (it follows failovers). A password: in the URL, or "
        "TIERSERVE_REDIS_PASSWORD. Unset: the stack starts its own on loopback.",
    )
    socket_timeout_s: float = Field(
        default=0.25, gt=0, description="Per-command timeout; a slower Redis is treated as down."
    )
    connect_timeout_s: float = Field(default=0.25, gt=0, description="TCP connect timeout.")
    retry_after_s: float = Field(
        default=1.0,
        ge=0,
        description="After a Redis failure, bypass the cache this long before trying Redis again.",
    )
    key_prefix: str = Field(default="tierserve", min_length=1, description="Prefix of every key we write.")

    @field_validator("url")
    @classmethod
    def _known_url(cls, url: str | None) -> str | None:
        if url is not None:
            if not url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
                raise ValueError("give redis://, rediss://, unix:// or redis+sentinel:// (see docs/operations.md)")
            parse_sentinel_url(url)  # a malformed sentinel address is an error here, not at the first request
        return url


class CacheConfig(BaseModel):
    """Semantic cache policy."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Turn the semantic cache on or off.")
    similarity_threshold: float = Field(
        default=0.86,
        gt=0,
        le=1,
        description="Cosine similarity a candidate needs (after the exact parts matched) to be verified as a hit; "
        "0.86 was picked on tests/data/cache_pairs_dev.jsonl by the rule in docs/cache-verification.md (lower it "
        "for more hits at more false hits).",
    )
    degraded_threshold: float | None = Field(
        default=0.8,
        gt=0,
        le=1,
        description="When every tier that could answer a request (its tier and that tier's fallback chain) has its "
        "circuit breaker open, a cached answer of any of those tiers this similar (and verified) is served instead "
        "of a 503, marked x-tierserve-cache: degraded. Looser than similarity_threshold on purpose: an answer to a "
        "close question beats none while the fleet is down. Unset: a 503 with Retry-After.",
    )
    timing_protection: bool = Field(
        default=False,
        description="Make another tenant's questions undetectable by timing: vLLM's prefix cache is salted per "
        "tenant (a prompt another tenant sent is computed from scratch). The semantic cache and its "
        "single-flight are per tenant in any case.",
    )
    candidates: int = Field(default=4, ge=1, le=64, description="Nearest neighbours checked per lookup.")
    ttl_s: int = Field(default=86_400, ge=1, description="Lifetime of a stored answer in seconds.")
    max_temperature: float = Field(
        default=0.3,
        ge=0,
        description="Only requests sampled at or below this temperature are looked up and stored.",
    )
    store_truncated: bool = Field(
        default=True,
        description="Also store answers that stopped at max_tokens (finish_reason=length): max_tokens is part of "
        "the key, so only a request with the same limit gets one, as it would from the model.",
    )
    max_entries_per_tenant: int = Field(
        default=100_000, ge=1, description="Beyond this, a tenant's least recently used entries are evicted."
    )
    sweep_interval_s: float = Field(
        default=30.0, gt=0, description="How often replicas announce TTL-expired entries so indexes drop them."
    )
    index_capacity: int = Field(
        default=10_000, ge=16, description="Initial HNSW capacity per tenant; grows by doubling."
    )
    hnsw_m: int = Field(default=16, ge=4, le=64, description="HNSW graph degree (M).")
    hnsw_ef_construction: int = Field(default=200, ge=16, description="HNSW build-time beam width.")
    hnsw_ef_search: int = Field(default=64, ge=8, description="HNSW query-time beam width.")
    embed_batch_size: int = Field(default=64, ge=1, description="Most queries embedded in one batched call.")
    embed_max_wait_ms: float = Field(
        default=0.0, ge=0, description="How long a lone query waits for others to batch with (0: never waits)."
    )
    embedder_device: str = Field(default="cpu", description="torch device for the sentence embedder.")
    embedder_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch CPU threads of the gateway replica's embedder (unset: torch's default, one per core). "
        "Where vLLM engines decode on the same cores, 1 keeps batch-1 embeddings from stalling "
        "(docs/cache-benchmarks.md).",
    )
    verify: VerifierConfig = Field(
        default_factory=VerifierConfig,
        description="Look-alike checks (numbers, negation, antonyms, dates, names, units, scope) a similar "
        "candidate must pass before it counts as a hit.",
    )
    redis: RedisConfig = Field(default_factory=RedisConfig, description="The shared store.")
