"""Refresh-token families: rotation on every use and reuse detection (RFC 6749 6, RFC 9700 4.14).

A client with ``refresh_token`` in its ``grant_types`` gets a refresh token
with its CIBA tokens. Every token of one grant belongs to one *family*. All
state is values in the store (namespaced per tenant), never the AuthRequest:

- ``rt:<tenant>`` token_key(token) -> the sealed ``RefreshRecord`` (opened only
  with the token itself, like access tokens), expiring after
  ``lifetimes.refresh_token`` (idle limit) or at the family's end;
- ``rtuse:<tenant>`` token_key(token): remembered once (``Namespace.remember``,
  atomic on every store) when the token is used, so of two replicas redeeming the
  same token at once exactly one rotates it; the winner also writes
  ``rtused:<tenant>`` (a readable marker: introspection reports the token inactive);
- ``rtfam:<tenant>`` family id: present while the family lives, at most
  ``lifetimes.refresh_token_max`` after the CIBA grant (absolute limit).

Using a token that was already used (a rotated token replayed), a token of
another client, or a certificate-bound token without its certificate deletes
the family: every refresh token of the grant and every access token minted from
it (access records name their family) stop working at once, on every replica.
"""

from __future__ import annotations

import hmac
import secrets

import msgspec

from ciba_gateway.config.model import ClientConfig
from ciba_gateway.errors import InvalidGrantError
from ciba_gateway.protocol.certificates import ClientCertificate
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.store import namespaces
from ciba_gateway.tokens.access_token import new_opaque_token, token_key
from ciba_gateway.tokens.sealing import seal, unseal

__all__ = [
    "RefreshRecord",
    "family_alive",
    "is_active",
    "mint_refresh_token",
    "new_family",
    "refresh_record",
    "revoke_family",
    "rotate",
]

_ALIVE = b"1"


class RefreshRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the store keeps, sealed, for one refresh token."""

    family: str
    client_id: str
    sub: str
    scope: tuple[str, ...]
    claims: dict[str, object]
    """The userinfo claims the grant released (carried to every new access token)."""
    iat: int
    exp: int
    family_exp: int
    x5t: str | None = None
    """The certificate the family is bound to (``tls_client_certificate_bound_access_tokens``)."""


_decoder = msgspec.json.Decoder(RefreshRecord)


async def new_family(gateway: Gateway, tenant: TenantContext, now: int) -> tuple[str, int]:
    """Start a family; returns its id and its absolute end (epoch seconds)."""
    family = secrets.token_urlsafe(16)
    lifetime = tenant.config.lifetimes.refresh_token_max
    families = gateway.store.namespace(namespaces.refresh_families(tenant.id))
    await families.put(family, _ALIVE, lifetime)
    return family, now + lifetime


async def mint_refresh_token(
    gateway: Gateway,
    tenant: TenantContext,
    *,
    family: str,
    family_exp: int,
    client: ClientConfig,
    sub: str,
    scope: tuple[str, ...],
    claims: dict[str, object],
    certificate: ClientCertificate | None,
    now: int,
) -> str:
    """A new refresh token of ``family``, valid for the idle lifetime within the family's."""
    token = new_opaque_token()
    ttl = min(tenant.config.lifetimes.refresh_token, family_exp - now)
    bound = client.tls_client_certificate_bound_access_tokens and certificate is not None
    record = RefreshRecord(
        family=family,
        client_id=client.client_id,
        sub=sub,
        scope=scope,
        claims=claims,
        iat=now,
        exp=now + ttl,
        family_exp=family_exp,
        x5t=certificate.thumbprint if bound and certificate is not None else None,
    )
    blob = seal(token, msgspec.json.encode(record))
    tokens = gateway.store.namespace(namespaces.refresh_tokens(tenant.id))
    await tokens.put(token_key(token), blob, max(ttl, 1))
    return token


async def family_alive(gateway: Gateway, tenant: TenantContext, family: str) -> bool:
    """False once the family was revoked or reached its absolute lifetime."""
    families = gateway.store.namespace(namespaces.refresh_families(tenant.id))
    return await families.get(family) is not None


async def revoke_family(gateway: Gateway, tenant: TenantContext, family: str) -> None:
    """End every refresh and access token of the family."""
    await gateway.store.namespace(namespaces.refresh_families(tenant.id)).take(family)


async def refresh_record(
    gateway: Gateway, tenant: TenantContext, token: str
) -> RefreshRecord | None:
    """The record of a refresh token of this tenant (used or not), or None."""
    tokens = gateway.store.namespace(namespaces.refresh_tokens(tenant.id))
    blob = await tokens.get(token_key(token))
    if blob is None:
        return None
    try:
        record = _decoder.decode(unseal(token, blob))
    except Exception:
        return None
    return record if record.exp > gateway.clock() else None


async def is_active(gateway: Gateway, tenant: TenantContext, token: str) -> RefreshRecord | None:
    """The record of a refresh token that can still be used (introspection), or None."""
    record = await refresh_record(gateway, tenant, token)
    if record is None or not await family_alive(gateway, tenant, record.family):
        return None
    used = gateway.store.namespace(namespaces.refresh_used(tenant.id))
    if await used.get(token_key(token)) is not None:
        return None
    return record


async def rotate(
    gateway: Gateway,
    tenant: TenantContext,
    client: ClientConfig,
    token: str,
    certificate: ClientCertificate | None,
) -> RefreshRecord:
    """Use a refresh token once: its record, for minting the next tokens of the family.

    Raises:
        InvalidGrantError: unknown, expired, revoked, reused (the family is
            revoked), another client's, or bound to another certificate.
    """
    record = await refresh_record(gateway, tenant, token)
    if record is None:
        raise InvalidGrantError("the refresh token is invalid or expired")
    ttl = max(record.exp - gateway.clock(), 1.0)
    uses = gateway.store.namespace(namespaces.refresh_uses(tenant.id))
    first = await uses.remember(token_key(token), ttl)
    misuse = None
    if not first:
        misuse = "the refresh token was already used; its grant is revoked"
    elif record.client_id != client.client_id:
        misuse = "the refresh token was issued to another client; its grant is revoked"
    elif record.x5t is not None and (
        certificate is None or not hmac.compare_digest(certificate.thumbprint, record.x5t)
    ):
        misuse = "the refresh token is bound to another TLS client certificate"
    if misuse is not None:
        await revoke_family(gateway, tenant, record.family)
        raise InvalidGrantError(misuse)
    if record.family_exp <= gateway.clock() or not await family_alive(
        gateway, tenant, record.family
    ):
        raise InvalidGrantError("the refresh token's grant was revoked or has ended")
    used = gateway.store.namespace(namespaces.refresh_used(tenant.id))
    await used.put(token_key(token), _ALIVE, ttl)
    return record
