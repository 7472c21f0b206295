"""The audit log: one hash-chained, fsynced record per request and per admin action, per gateway replica."""

from serving.audit.chain import Verdict, read_records, verify
from serving.audit.config import AuditConfig
from serving.audit.log import AuditLog, now_iso

__all__ = ["AuditConfig", "AuditLog", "Verdict", "now_iso", "read_records", "verify"]
