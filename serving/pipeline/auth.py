"""The auth stage: an API key names the tenant (constant-time comparison); the admin API has its own key. With no
key configured the stack is open and every request belongs to the default tenant."""

from __future__ import annotations

import hmac

from serving.config import GatewayConfig
from serving.errors import AuthenticationFailed, Forbidden


class ApiKeys:
    name = "auth"

    def __init__(self, config: GatewayConfig) -> None:
        self._keys = [(key.encode(), tenant) for key, tenant in config.api_keys.items()]
        self._default_tenant = config.default_tenant
        self._admin_key = config.admin_key

    def tenant(self, authorization: str | None) -> str:
        if not self._keys:
            return self._default_tenant
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode()
        tenant = None
        if scheme.lower() == "bearer":
            for key, owner in self._keys:  # every key compared, so the time taken tells nothing of which matched
                if hmac.compare_digest(given, key):
                    tenant = owner
        if tenant is None:
            raise AuthenticationFailed("Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'.")
        return tenant

    def admin(self, authorization: str | None) -> None:
        if self._admin_key is None:
            raise Forbidden("The admin API is disabled: set gateway.admin_key to enable it.")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._admin_key.encode()):
            raise AuthenticationFailed("Incorrect or missing admin key.")
