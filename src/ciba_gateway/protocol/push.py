"""What the notifier needs from the protocol layer: push token minting and endpoints.

The push token response is minted once (CIBA Core 10.3.1: the ID token carries
``urn:openid:params:jwt:claim:auth_req_id`` and ``at_hash``; no refresh token is
issued, so no ``rt_hash``) and kept with the request, sealed (AES-GCM) under a
key derived from the tenant's subject salt and the auth_req_id, until delivered.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ciba_gateway.flow.model import AuthRequest
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.token import issue_tokens
from ciba_gateway.tokens.sealing import seal, unseal

__all__ = ["PushHooks"]


class PushHooks:
    """Notifier callbacks reading the current Gateway (it changes on reload)."""

    def __init__(self, current: Callable[[], Gateway]) -> None:
        self.current = current

    def _find(self, request: AuthRequest) -> TenantContext | None:
        for tenant in self.current().tenants.values():
            if tenant.id == request.tenant_id:
                return tenant
        return None

    def _tenant(self, request: AuthRequest) -> TenantContext:
        tenant = self._find(request)
        if tenant is None:
            raise LookupError("the tenant is no longer configured")
        return tenant

    def _key(self, request: AuthRequest) -> str:
        tenant = self._tenant(request).config
        return f"push:{tenant.id}:{tenant.subject.salt}:{request.auth_req_id}"

    def endpoint_for(self, request: AuthRequest) -> str | None:
        """The client's notification endpoint, or None when it is gone from the config."""
        tenant = self._find(request)
        client = tenant.config.client(request.client_id) if tenant else None
        return client.notification_endpoint if client else None

    async def build_push(self, request: AuthRequest) -> bytes:
        """Mint the push token response of an approved request; return it sealed."""
        tenant = self._tenant(request)
        client = tenant.config.client(request.client_id)
        if client is None:
            raise LookupError("the client is no longer configured")
        body = await issue_tokens(self.current(), tenant, client, request, push=True)
        payload = msgspec.json.encode({**body, "auth_req_id": request.auth_req_id})
        return seal(self._key(request), payload)

    def open_push(self, request: AuthRequest) -> bytes:
        """The stored push payload in clear."""
        assert request.notify_payload is not None
        return unseal(self._key(request), request.notify_payload)
