"""Token introspection (RFC 7662) and revocation (RFC 7009), per tenant.

Both endpoints authenticate the caller as any client of the tenant (a
resource-server client without the CIBA grant included) and take the token in
the ``token`` form parameter, ``token_type_hint`` optional (an unknown hint is
ignored, RFC 7009 2.1). Opaque tokens are found by their SHA-256 in the store
and opened with the token itself, so a caller must hold the token.

Introspection answers ``{"active": false}`` for anything unknown, expired,
revoked, rotated or of another tenant, and for an active token ``scope``,
``client_id``, ``token_type`` (access tokens: ``Bearer``), ``sub``, ``iss``,
``exp``, ``iat`` and, for a certificate-bound
token, ``cnf: {"x5t#S256"}`` so the resource server can check the binding
(RFC 8705 3.2), and the approved ``authorization_details`` with their digest
(RFC 9396 section 9.2) when the request carried some. Revocation answers 200
with an empty object whether or not the token was known (RFC 7009 2.2);
revoking a refresh token revokes its family (every refresh and access token of
the grant). A token issued to another client is refused with
``unauthorized_client`` and left alone (2.1: the server "verifies whether the
token was issued to the client making the revocation request").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ciba_gateway.config.model import ClientConfig
from ciba_gateway.errors import InvalidRequestError, UnauthorizedClientError
from ciba_gateway.protocol import refresh
from ciba_gateway.protocol.certificates import ClientCertificate
from ciba_gateway.protocol.client_auth import authenticate_request
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.refresh import RefreshRecord
from ciba_gateway.protocol.token import access_record, drop_access_token
from ciba_gateway.tokens.access_token import AccessRecord

__all__ = ["introspect", "revoke"]

INACTIVE: dict[str, Any] = {"active": False}
APPROVED_CLAIMS = ("authorization_details", "authorization_details_digest")


async def _caller_and_token(
    gateway: Gateway,
    tenant: TenantContext,
    params: Mapping[str, str],
    authorization: str | None,
    certificate: ClientCertificate | None,
) -> tuple[ClientConfig, str]:
    client = await authenticate_request(
        gateway, tenant, params, authorization=authorization, certificate=certificate
    )
    token = params.get("token")
    if not token:
        raise InvalidRequestError("missing parameter: token")
    return client, token


async def introspect(
    gateway: Gateway,
    tenant: TenantContext,
    params: Mapping[str, str],
    *,
    authorization: str | None,
    certificate: ClientCertificate | None = None,
) -> tuple[dict[str, Any], ClientConfig]:
    """RFC 7662 section 2: the introspection response and the calling client."""
    client, token = await _caller_and_token(gateway, tenant, params, authorization, certificate)
    record: AccessRecord | RefreshRecord | None = await access_record(gateway, tenant, token)
    extra = {"token_type": "Bearer"}
    if record is None:
        record, extra = await refresh.is_active(gateway, tenant, token), {}
    if record is None:
        return dict(INACTIVE), client
    body: dict[str, Any] = {
        "active": True,
        "scope": " ".join(record.scope),
        "client_id": record.client_id,
        **extra,
        "sub": record.sub,
        "iss": tenant.issuer,
        "exp": record.exp,
        "iat": record.iat,
    }
    if record.x5t is not None:
        body["cnf"] = {"x5t#S256": record.x5t}
    for name in APPROVED_CLAIMS:  # RFC 9396 section 9.2
        if name in record.claims:
            body[name] = record.claims[name]
    return body, client


async def revoke(
    gateway: Gateway,
    tenant: TenantContext,
    params: Mapping[str, str],
    *,
    authorization: str | None,
    certificate: ClientCertificate | None = None,
) -> tuple[dict[str, Any], ClientConfig]:
    """RFC 7009 section 2: revoke an access token, or a refresh token's whole grant."""
    client, token = await _caller_and_token(gateway, tenant, params, authorization, certificate)
    record = await access_record(gateway, tenant, token)
    if record is not None:
        _owned_by(record.client_id, client)
        await drop_access_token(gateway, tenant, token)
        return {}, client
    grant = await refresh.refresh_record(gateway, tenant, token)
    if grant is not None:
        _owned_by(grant.client_id, client)
        # RFC 7009 2.1: revoking a refresh token also ends the access tokens of its grant.
        await refresh.revoke_family(gateway, tenant, grant.family)
    return {}, client


def _owned_by(owner: str, client: ClientConfig) -> None:
    if owner != client.client_id:
        raise UnauthorizedClientError("the token was issued to another client")
