"""The drift detector's settings (`drift:` in the stack config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drift.detector import DriftConfigValues


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Watch the traffic for drift against a baseline.")
    baseline_size: int = Field(default=300, ge=20, description="Requests that make the baseline (the first seen).")
    window: int = Field(default=150, ge=10, description="Recent requests compared with the baseline.")
    check_every: int = Field(default=25, ge=1, description="Requests between two checks.")
    margin: float = Field(
        default=1.5, gt=0, description="Query-embedding alarm: this times the 99th percentile of baseline splits."
    )
    z_threshold: float = Field(default=4.0, gt=0, description="Scalar signals: alarm beyond this z score.")
    patience: int = Field(default=2, ge=1, description="Checks in a row over threshold before the alarm.")
    eval_drop: float = Field(
        default=0.05, ge=0, le=1, description="A recorded eval run this far under its set's baseline raises its alarm."
    )

    def values(self) -> DriftConfigValues:
        return DriftConfigValues(
            baseline_size=self.baseline_size,
            window=self.window,
            check_every=self.check_every,
            margin=self.margin,
            z_threshold=self.z_threshold,
            patience=self.patience,
        )
