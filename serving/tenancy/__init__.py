"""Tenants: API keys hashed in Redis, rate limits and budgets held across every gateway replica, the spend ledger.

(`serving.tenancy.pricing` prices requests from the stack config; it is imported from its module, so that the stack
config can import this package's config.)"""

from serving.tenancy.config import Limits, TenancyConfig, TenantPolicy
from serving.tenancy.keys import KeyDirectory, KeyRecord, KeyStore, Principal, Unauthenticated
from serving.tenancy.meter import Meter, QuotaExceeded, Settlement, Ticket

__all__ = [
    "KeyDirectory",
    "KeyRecord",
    "KeyStore",
    "Limits",
    "Meter",
    "Principal",
    "QuotaExceeded",
    "Settlement",
    "TenancyConfig",
    "TenantPolicy",
    "Ticket",
    "Unauthenticated",
]
