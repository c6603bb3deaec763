"""``profile: fapi-ciba``: the FAPI-CIBA requirements a configuration must meet (check-config).

FAPI-CIBA ("FAPI: Client Initiated Backchannel Authentication Profile", clause
5.2.2) requires of the authorization server its own list and the provisions of
FAPI 1.0 Part 1 and Part 2 clause 5.2.2 and Part 2 clause 8.6. The clauses that
a configuration decides are checked here, one small named check each, when
the config is loaded; the ones a request decides are in
``ciba_gateway.protocol.fapi``. docs/protocol.md has the table clause ->
check -> test.

A client follows the profile when its own ``profile`` says ``fapi-ciba``, or
when it says nothing and its tenant's does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ciba_gateway.config.model import ClientConfig, TenantConfig

__all__ = ["CLIENT_CHECKS", "FAPI_ALGS", "FAPI_AUTH_METHODS", "TENANT_CHECKS", "problems"]

FAPI = "fapi-ciba"
FAPI_ALGS = ("PS256", "ES256")
"""FAPI 1.0 Part 2 8.6-1: the only JWS algorithms."""
FAPI_AUTH_METHODS = ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
"""FAPI 1.0 Part 2 5.2.2-14: the only client authentication methods."""
_RSA_MIN_BITS = 2048
_EC_MIN_BITS = 160
_CURVE_BITS = {"P-256": 256, "P-384": 384, "P-521": 521, "secp256k1": 256}


def no_push_mode(client: ClientConfig) -> str | None:
    """FAPI-CIBA 5.2.2-3: shall not support CIBA push mode."""
    if client.delivery_mode == "push":
        return "FAPI-CIBA 5.2.2-3: push mode is not allowed (use poll or ping)"
    return None


def strong_client_auth(client: ClientConfig) -> str | None:
    """FAPI 1.0 Part 2 5.2.2-14: private_key_jwt, tls_client_auth or self_signed_tls_client_auth."""
    if client.auth.method not in FAPI_AUTH_METHODS:
        return (
            f"FAPI 1.0 Part 2 5.2.2-14: auth.method {client.auth.method} is not allowed "
            f"(use {', '.join(FAPI_AUTH_METHODS)})"
        )
    return None


def sender_constrained_tokens(client: ClientConfig) -> str | None:
    """FAPI 1.0 Part 2 5.2.2-5/-6: only sender-constrained (RFC 8705) access tokens."""
    if client.uses_ciba and not client.tls_client_certificate_bound_access_tokens:
        return (
            "FAPI 1.0 Part 2 5.2.2-5: access tokens must be sender-constrained "
            "(tls_client_certificate_bound_access_tokens: true)"
        )
    return None


def client_algs(client: ClientConfig) -> str | None:
    """FAPI 1.0 Part 2 8.6-1: pinned request-object and assertion algs are PS256 or ES256."""
    pinned = {"request_signing_alg": client.request_signing_alg, "auth.signing_alg": None}
    pinned["auth.signing_alg"] = client.auth.signing_alg
    for name, alg in pinned.items():
        if alg is not None and alg not in FAPI_ALGS:
            return f"FAPI 1.0 Part 2 8.6-1: {name} {alg} is not PS256 or ES256"
    return None


def client_key_sizes(client: ClientConfig) -> str | None:
    """FAPI 1.0 Part 1 5.2.2-5/-6: client RSA keys >= 2048 bits, EC keys >= 160 bits."""
    keys: Any = (client.auth.jwks or {}).get("keys", [])
    for key in keys if isinstance(keys, list) else []:
        if not isinstance(key, dict):
            continue
        if key.get("kty") == "RSA":
            bits = _rsa_bits(key.get("n"))
            if bits is not None and bits < _RSA_MIN_BITS:
                return f"FAPI 1.0 Part 1 5.2.2-5: RSA key of {bits} bits (at least 2048)"
        if key.get("kty") == "EC":
            bits = _CURVE_BITS.get(str(key.get("crv")), 0)
            if bits < _EC_MIN_BITS:
                return f"FAPI 1.0 Part 1 5.2.2-6: EC key on curve {key.get('crv')!r} is too small"
    return None


def _rsa_bits(n: object) -> int | None:
    if not isinstance(n, str):
        return None
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except ValueError:
        return None
    return int.from_bytes(raw, "big").bit_length()


def tenant_signing_keys(tenant: TenantConfig) -> str | None:
    """FAPI 1.0 Part 2 8.6-1: ID tokens are signed with PS256 or ES256 (every usable key)."""
    for key in tenant.keys:
        if key.state != "retired" and key.alg not in FAPI_ALGS:
            return f"FAPI 1.0 Part 2 8.6-1: key {key.kid} uses {key.alg}, not PS256 or ES256"
    return None


def tenant_accepted_algs(tenant: TenantConfig) -> str | None:
    """FAPI 1.0 Part 2 8.6-1: signing_algs must leave PS256 or ES256 to accept."""
    if not set(tenant.signing_algs) & set(FAPI_ALGS):
        return "FAPI 1.0 Part 2 8.6-1: signing_algs has neither PS256 nor ES256"
    return None


def tenant_routes_have_acr(tenant: TenantConfig) -> str | None:
    """FAPI-CIBA 5.2.2-7/-8: every route names the acr it authenticates at (returned as acr)."""
    for i, route in enumerate(tenant.routes):
        if route.acr is None:
            return (
                f"FAPI-CIBA 5.2.2-7/-8: routes[{i}] has no acr: the authentication level "
                "of every route must be known and returned in the ID token"
            )
    return None


def tenant_mtls(tenant: TenantConfig) -> str | None:
    """FAPI 1.0 Part 2 5.2.2-6: RFC 8705 is supported (the tenant has mtls settings)."""
    if tenant.mtls is None:
        return "FAPI 1.0 Part 2 5.2.2-6: the tenant needs mtls settings (RFC 8705)"
    return None


CLIENT_CHECKS: tuple[Callable[[ClientConfig], str | None], ...] = (
    no_push_mode,
    strong_client_auth,
    sender_constrained_tokens,
    client_algs,
    client_key_sizes,
)
"""Checks of each fapi-ciba client."""

TENANT_CHECKS: tuple[Callable[[TenantConfig], str | None], ...] = (
    tenant_mtls,
    tenant_signing_keys,
    tenant_accepted_algs,
    tenant_routes_have_acr,
)
"""Checks of a tenant with at least one fapi-ciba client."""


def is_fapi(tenant: TenantConfig, client: ClientConfig) -> bool:
    """The client follows the fapi-ciba profile (its own setting, else its tenant's)."""
    profile = client.profile if client.profile is not None else tenant.profile
    return profile == FAPI


def problems(tenant: TenantConfig) -> list[str]:
    """Every FAPI-CIBA requirement the tenant's configuration fails, with its clause."""
    found: list[str] = []
    fapi_clients = [c for c in tenant.clients if is_fapi(tenant, c)]
    if tenant.profile == FAPI or fapi_clients:
        found.extend(p for check in TENANT_CHECKS if (p := check(tenant)) is not None)
    for client in fapi_clients:
        found.extend(
            f"client {client.client_id}: {p}"
            for check in CLIENT_CHECKS
            if (p := check(client)) is not None
        )
    return found
