"""The audit log: one hash-chained, fsynced record per request and per admin action, per gateway replica."""

from serving.audit.chain import Verdict, read_records, verify
from serving.audit.config import AuditConfig
from serving.audit.log import AuditLog, iso, now_iso

__all__ = ["AuditConfig", "AuditLog", "Verdict", "iso", "now_iso", "read_records", "verify"]
