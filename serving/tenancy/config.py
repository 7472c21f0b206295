"""What bounds a tenant: its limits and budget, how fresh the key directory is, and what to do when Redis is down."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Limits(BaseModel):
    """Rate limits and a budget; unset means unbounded. The same shape for a key (stored in Redis) and a tenant."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute (sliding window).")
    tpm: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per minute: prompt tokens counted at admission, completion tokens as they stream.",
    )
    max_concurrent: int | None = Field(default=None, ge=1, description="Requests in flight at once.")
    budget_usd: float | None = Field(default=None, gt=0, description="Spend allowed per budget window, USD.")
    budget_window: Literal["day", "month"] = Field(default="month", description="UTC calendar day or month.")

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_concurrent is None and self.budget_usd is None


class TenantPolicy(Limits):
    """A tenant's limits (over all its keys), plus what to do when Redis cannot be reached."""

    fail_open: bool | None = Field(
        default=None,
        description="Serve unmetered while Redis is down (True) or refuse with 429 (False); unset: tenancy.fail_open.",
    )


class TenancyConfig(BaseModel):
    """Keys, limits, budgets and cost accounting, shared by every gateway replica through Redis."""

    model_config = ConfigDict(extra="forbid")

    tenants: dict[str, TenantPolicy] = Field(
        default_factory=dict, description="Per tenant: rate limits, budget and fail mode, over all its keys."
    )
    default_tenant_policy: TenantPolicy = Field(
        default_factory=TenantPolicy, description="The policy of a tenant not listed under `tenants`."
    )
    fail_open: bool = Field(
        default=True,
        description="While Redis is down, serve unmetered (usage recorded and settled when it returns) or refuse.",
    )
    key_cache_s: float = Field(
        default=0.5, gt=0, le=1.0, description="How long a replica trusts a key it read (a revocation's delay)."
    )
    stale_key_s: float = Field(
        default=600.0, ge=0, description="While Redis is down, keys read within this long still authenticate."
    )
    redis_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Per-command timeout of the limits' and keys' Redis calls (a busy replica reads replies late; "
        "past this, Redis counts as down).",
    )
    window_s: int = Field(default=60, ge=1, description="The rate limits' sliding window (per minute: 60).")
    window_buckets: int = Field(default=12, ge=1, le=600, description="Buckets the window slides by.")
    cache_hit_price_per_1k_tokens: float = Field(
        default=0.0, ge=0, description="What a cache hit costs, per 1k tokens of the replayed answer (USD)."
    )
    soft_limit: float = Field(
        default=0.8, gt=0, le=1, description="Share of a budget past which tierserve_budget_soft_limit is raised."
    )
    spend_anomaly_factor: float = Field(
        default=3.0,
        gt=1,
        description="A tenant's spend per 5 minutes above this many times its trailing hourly average is an anomaly.",
    )
    completion_flush_tokens: int = Field(
        default=32, ge=1, description="Streamed completion tokens counted locally before they are added in Redis."
    )
    ledger_max_entries: int = Field(
        default=1_000_000, ge=1000, description="Ledger entries kept in Redis (the oldest are trimmed)."
    )

    @model_validator(mode="after")
    def _window(self) -> TenancyConfig:
        if (self.window_s * 1000) % self.window_buckets:
            raise ValueError("window_s * 1000 must be a multiple of window_buckets (whole-millisecond buckets)")
        return self

    def policy(self, tenant: str) -> TenantPolicy:
        return self.tenants.get(tenant, self.default_tenant_policy)

    def fails_open(self, tenant: str) -> bool:
        chosen = self.policy(tenant).fail_open
        return self.fail_open if chosen is None else chosen
