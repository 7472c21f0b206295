"""Configuration owned by the router package."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FeatureWeights(BaseModel):
    """Weights of the heuristic difficulty features; the score is a logistic of their weighted sum."""

    model_config = ConfigDict(extra="forbid")

    bias: float = Field(default=-2.0, description="Logit of a prompt with no difficulty cues.")
    length: float = Field(default=1.2, description="Per log2(words/16) of prompt length beyond 16 words.")
    code: float = Field(default=1.5, description="Prompt contains code or asks for code.")
    math: float = Field(default=1.3, description="Prompt contains formulas or asks for a calculation/proof.")
    reasoning: float = Field(default=1.2, description="Multi-step reasoning cues (explain why, step by step).")
    output_length: float = Field(default=0.6, description="Per log2(max_tokens/256) beyond 256 tokens.")
    turns: float = Field(default=0.3, description="Per earlier conversation turn.")


class RouterConfig(BaseModel):
    """Maps a difficulty score in [0, 1] to a tier: tier i serves scores below thresholds[i]."""

    model_config = ConfigDict(extra="forbid")

    thresholds: list[float] = Field(
        default_factory=lambda: [0.5],
        description="Ascending cut points in (0, 1); exactly one fewer than there are tiers.",
    )
    weights: FeatureWeights = Field(default_factory=FeatureWeights, description="Heuristic scorer weights.")

    @field_validator("thresholds")
    @classmethod
    def _ascending_in_unit_interval(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < t < 1.0 for t in value):
            raise ValueError("every threshold must lie strictly between 0 and 1")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("thresholds must be strictly ascending")
        return value
