"""The audit log's settings (`audit:` in the stack config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Write one audit record per request and per admin action.")
    dir: Path | None = Field(
        default=None,
        description="Where the segment files live (one folder per gateway replica); unset: data_dir/audit.",
    )
    fsync: bool = Field(
        default=True,
        description="fsync each batch before the requests in it are answered: an acknowledged request's record "
        "survives a crash of the replica or the machine. Off: survives a crash of the replica only.",
    )
    segment_max_bytes: int = Field(default=64 * 2**20, ge=4096, description="A segment file is closed at this size.")
    retention_days: float = Field(
        default=90, gt=0, description="Closed segments older than this are deleted (the chain records the cut)."
    )
