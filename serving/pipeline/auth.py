"""The auth step at the HTTP edge: a bearer key names the principal (tenant, key id, allowed models, limits), from
the YAML bootstrap keys or the hashed keys in Redis (serving.tenancy.keys). With no key anywhere the stack is open
and every request belongs to the default tenant. The admin API has its own key, from the environment or a file."""

from __future__ import annotations

import hashlib
import hmac

from serving.errors import AuthenticationFailed, Forbidden
from serving.tenancy import KeyDirectory, Principal, Unauthenticated


class Authenticator:
    name = "auth"

    def __init__(self, directory: KeyDirectory, admin_key: str | None) -> None:
        self._directory = directory
        self._admin_digest = hashlib.sha256(admin_key.encode()).digest() if admin_key else None

    async def principal(self, authorization: str | None) -> Principal:
        try:
            return await self._directory.authenticate(authorization)
        except Unauthenticated as error:
            raise AuthenticationFailed(str(error), code="invalid_api_key") from None

    def admin(self, authorization: str | None) -> None:
        if self._admin_digest is None:
            raise Forbidden(
                "The admin API is disabled: set TIERSERVE_ADMIN_KEY (or gateway.admin_key_file) where the stack starts."
            )
        scheme, _, token = (authorization or "").partition(" ")
        given = hashlib.sha256(token.strip().encode()).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self._admin_digest):
            raise AuthenticationFailed("Incorrect or missing admin key.", code="invalid_api_key")
