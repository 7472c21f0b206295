"""The audit log's settings (`audit:` in the stack config)."""

from __future__ import annotations

from collections.abc import Mapping
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
    postgres_dsn_env: str = Field(
        default="TIERSERVE_AUDIT_DSN",
        description="The environment variable holding a PostgreSQL DSN (postgresql://user:pass@host/db): when set, "
        "every gateway replica also ships its records there (docs/security.md). A secret: never in the YAML.",
    )
    postgres_dsn_file: Path | None = Field(
        default=None, description="A file holding the PostgreSQL DSN instead (e.g. a mounted secret)."
    )
    postgres_table: str = Field(
        default="tierserve_audit", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="The table the records go to."
    )
    ship_interval_s: float = Field(
        default=1.0, gt=0, description="How often a shipper looks for new records (it is also woken by writes)."
    )
    retention_days: float = Field(
        default=90, gt=0, description="Closed segments older than this are deleted (the chain records the cut)."
    )

    def postgres_dsn(self, environ: Mapping[str, str]) -> str | None:
        """The DSN from the environment or the secret file, if either has one."""
        if self.postgres_dsn_file is not None:
            return self.postgres_dsn_file.read_text(encoding="utf-8").strip() or None
        return environ.get(self.postgres_dsn_env) or None
