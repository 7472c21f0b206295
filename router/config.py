"""Configuration owned by the router package."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FeatureWeights(BaseModel):
    """Heuristic scorer weights (a logistic of the weighted features); the trained scorer adds `output_length`
    and `turns` as priors, which its single-turn training data cannot teach."""

    model_config = ConfigDict(extra="forbid")

    bias: float = Field(default=-2.0, description="Logit of a prompt with no difficulty cues.")
    length: float = Field(default=1.2, description="Per log2(words/16) of prompt length beyond 16 words.")
    code: float = Field(default=1.5, description="Prompt contains code or asks for code.")
    math: float = Field(default=1.3, description="Prompt contains formulas or asks for a calculation/proof.")
    reasoning: float = Field(default=1.2, description="Multi-step reasoning cues (explain why, step by step).")
    output_length: float = Field(default=0.6, description="Per log2(max_tokens/256) beyond 256 tokens.")
    turns: float = Field(default=0.3, description="Per earlier conversation turn.")


class TenantRouting(BaseModel):
    """Routing overrides for one tenant's `model="auto"` requests."""

    model_config = ConfigDict(extra="forbid")

    pin_tier: str | None = Field(default=None, description="Send every auto request of this tenant to this tier.")
    max_tier: str | None = Field(
        default=None,
        description="Highest tier this tenant may use: routed requests are capped to it, "
        "explicit ones above it get 403.",
    )


class EscalationConfig(BaseModel):
    """Retry a routed request once on the next tier up when its tier could not answer."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description='Escalate routed (`model="auto"`) requests at all.')
    on_error: bool = Field(
        default=True,
        description="Escalate when the tier fails (5xx: down, engine error) before any text was sent; not on timeouts.",
    )
    on_empty_length: bool = Field(
        default=True, description="Escalate when the tier stops at max_tokens having produced no text."
    )


class RouterConfig(BaseModel):
    """Maps a difficulty score in [0, 1] to a tier: tier i serves scores below thresholds[i]."""

    model_config = ConfigDict(extra="forbid")

    thresholds: list[float] = Field(
        default_factory=lambda: [0.5],
        description="Ascending cut points in (0, 1); exactly one fewer than there are tiers "
        "(`tierserve router calibrate` sets them from a target traffic share per tier).",
    )
    scorer: Literal["blend", "trained", "heuristic"] = Field(
        default="blend",
        description="`trained`: logistic model over the request embedding + surface features (shipped weights); "
        "`heuristic`: hand-weighted surface features only; `blend`: `blend_trained_share` x trained + the rest x "
        "heuristic (the trained model knows MMLU's topics, the heuristic transfers to other benchmarks: "
        "docs/router.md).",
    )
    blend_trained_share: float = Field(
        default=0.75,
        ge=0.0,
        le=1.0,
        description="Weight of the trained score in `blend` (0.75: best of 0, 0.25 ... 1 on MMLU's held-out split).",
    )
    weights_path: Path | None = Field(
        default=None, description="Weights of the trained scorer (`tierserve router train --out`); unset: shipped."
    )
    weights: FeatureWeights = Field(default_factory=FeatureWeights, description="Heuristic scorer weights.")
    embed_when_bypassed: bool = Field(
        default=True,
        description="Embed the prompt for the router even when the cache is bypassed (hot sampling, Redis down); "
        "false: score those from surface features only. Without a cache there is never an embedding.",
    )
    request_overrides: bool = Field(
        default=True,
        description="Honour the `x-tierserve-pin-tier` / `x-tierserve-max-tier` request headers on auto requests.",
    )
    tenants: dict[str, TenantRouting] = Field(
        default_factory=dict, description="Per-tenant routing overrides (tenant id -> pin/cap)."
    )
    escalation: EscalationConfig = Field(
        default_factory=EscalationConfig, description="Retry once on the next tier when a routed tier fails."
    )
    calibrated_shares: dict[str, float] | None = Field(
        default=None,
        description="Share of the calibration traffic each tier got under these thresholds (tier -> fraction, "
        "cheapest first), written by `tierserve router calibrate` beside them; `tierserve plan` takes its default "
        "traffic mix from it. A record of the calibration, not a control: routing reads only the thresholds.",
    )

    @field_validator("thresholds")
    @classmethod
    def _ascending_in_unit_interval(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < t < 1.0 for t in value):
            raise ValueError("every threshold must lie strictly between 0 and 1")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("thresholds must be strictly ascending")
        return value

    @model_validator(mode="after")
    def _shares_match_thresholds(self) -> RouterConfig:
        shares = self.calibrated_shares
        if shares is None:
            return self
        if len(shares) != len(self.thresholds) + 1:
            raise ValueError(
                f"calibrated_shares names {len(shares)} tier(s); {len(self.thresholds)} threshold(s) cut "
                f"{len(self.thresholds) + 1}"
            )
        if any(not 0.0 <= v <= 1.0 for v in shares.values()):
            raise ValueError("calibrated_shares: every share lies between 0 and 1")
        # calibrate writes them rounded to 4 decimals: allow that much rounding, not a mistyped mix
        if abs(sum(shares.values()) - 1.0) > 0.01:
            raise ValueError(f"calibrated_shares add up to {sum(shares.values()):.4f}, not 1")
        return self

    def tier_names_used(self) -> set[str]:
        """Tier names this config refers to (checked against the stack's tiers)."""
        names: set[str] = set()
        for tenant in self.tenants.values():
            names.update(n for n in (tenant.pin_tier, tenant.max_tier) if n is not None)
        names.update(self.calibrated_shares or {})
        return names
