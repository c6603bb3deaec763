"""OpenID Provider metadata (OIDC Discovery 1.0 section 3, CIBA Core 1.0 section 4).

Everything listed is derived from what the tenant really does: its routes'
acr values, the algorithms it accepts, its current keys' algorithms, the scopes
its clients may ask for, whether a routed connector verifies user codes, and the
authorization_details types its routed connectors accept. Delivery modes are
always poll, ping and push: every tenant serves all three, a client picks one.
"""

from __future__ import annotations

from typing import Any

from ciba_gateway.config.fapi import FAPI_ALGS, FAPI_AUTH_METHODS
from ciba_gateway.config.model import CIBA_GRANT, REFRESH_GRANT
from ciba_gateway.connector import BaseConnector
from ciba_gateway.protocol.context import TenantContext
from ciba_gateway.tokens.claims import SCOPE_CLAIMS

__all__ = ["metadata"]

_AUTH_METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
]
_HMAC_ALGS = ["HS256", "HS384", "HS512"]


def metadata(tenant: TenantContext) -> dict[str, Any]:
    """The discovery document of one tenant."""
    config = tenant.config
    connectors = [
        tenant.connectors[name] for name in dict.fromkeys(r.connector for r in config.routes)
    ]
    scopes = sorted({s for client in config.clients for s in client.scopes} | {"openid"})
    claims = {"sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr"}
    for scope in scopes:
        claims.update(SCOPE_CLAIMS.get(scope, ()))
    details_types = sorted({t for c in connectors for t in c.authorization_details_types})
    user_codes = any(_verifies_user_codes(c) for c in connectors)
    signing = list(config.signing_algs)
    key_algs = sorted({k.alg for k in config.keys if k.state == "current"})
    # Only grants some client can use (a refresh_token grant nobody has is not listed).
    grants = [CIBA_GRANT]
    if any(REFRESH_GRANT in c.grant_types for c in config.clients):
        grants.append(REFRESH_GRANT)
    document = {
        "issuer": tenant.issuer,
        "jwks_uri": tenant.jwks_uri,
        "token_endpoint": tenant.token_endpoint,
        "userinfo_endpoint": tenant.userinfo_endpoint,
        "backchannel_authentication_endpoint": tenant.backchannel_endpoint,
        "backchannel_token_delivery_modes_supported": ["poll", "ping", "push"],
        "backchannel_authentication_request_signing_alg_values_supported": signing,
        "backchannel_user_code_parameter_supported": user_codes,
        "grant_types_supported": grants,
        "response_types_supported": ["id_token"],
        "token_endpoint_auth_methods_supported": _AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": [*signing, *_HMAC_ALGS],
        "id_token_signing_alg_values_supported": key_algs,
        "userinfo_signing_alg_values_supported": [],
        "acr_values_supported": list(dict.fromkeys(r.acr for r in config.routes if r.acr)),
        "scopes_supported": scopes,
        "claims_supported": sorted(claims),
        # One sub per person per tenant, the same for every client: "public" (OIDC Core 8).
        "subject_types_supported": ["public"],
        "authorization_details_types_supported": details_types,
        "request_object_signing_alg_values_supported": signing,
        "claims_parameter_supported": False,
        "request_parameter_supported": True,
        # Omitted means true (OIDC Discovery 3); request_uri is refused.
        "request_uri_parameter_supported": False,
        "introspection_endpoint": tenant.introspection_endpoint,
        "introspection_endpoint_auth_methods_supported": _AUTH_METHODS,
        "revocation_endpoint": tenant.revocation_endpoint,
        "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
    }
    if config.mtls is not None:
        document.update(_mtls_metadata(tenant))
    if config.profile == "fapi-ciba":
        document.update(_fapi_metadata(document))
    return document


def _fapi_metadata(document: dict[str, Any]) -> dict[str, Any]:
    """A fapi-ciba tenant advertises only what the profile allows (FAPI-CIBA 5.2.2-3,
    FAPI 1.0 Part 2 5.2.2-14 and 8.6-1)."""
    extra: dict[str, Any] = {"backchannel_token_delivery_modes_supported": ["poll", "ping"]}
    for name in (
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ):
        extra[name] = [m for m in document[name] if m in FAPI_AUTH_METHODS]
    for name in (
        "backchannel_authentication_request_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "id_token_signing_alg_values_supported",
    ):
        extra[name] = [a for a in document[name] if a in FAPI_ALGS]
    return extra


def _mtls_metadata(tenant: TenantContext) -> dict[str, Any]:
    """RFC 8705 sections 2.1, 3 and 5: mTLS auth methods, bound tokens, endpoint aliases."""
    mtls = tenant.config.mtls
    assert mtls is not None
    methods = ["self_signed_tls_client_auth"]
    if mtls.ca_file is not None:
        methods.insert(0, "tls_client_auth")
    all_methods = [*_AUTH_METHODS, *methods]
    extra: dict[str, Any] = {
        "token_endpoint_auth_methods_supported": all_methods,
        "introspection_endpoint_auth_methods_supported": all_methods,
        "revocation_endpoint_auth_methods_supported": all_methods,
        "tls_client_certificate_bound_access_tokens": True,
    }
    if mtls.endpoint_base is not None:
        base = mtls.endpoint_base.rstrip("/")
        extra["mtls_endpoint_aliases"] = {
            name: f"{base}/{path}" for name, path in MTLS_ENDPOINTS.items()
        }
    return extra


MTLS_ENDPOINTS = {
    "token_endpoint": "token",
    "backchannel_authentication_endpoint": "bc-authorize",
    "userinfo_endpoint": "userinfo",
    "introspection_endpoint": "introspect",
    "revocation_endpoint": "revoke",
}
"""The endpoints reachable on the mTLS host (``mtls_endpoint_aliases``)."""


def _verifies_user_codes(connector: object) -> bool:
    """True when a connector overrides the default (no-op) verify_user_code hook."""
    hook = getattr(type(connector), "verify_user_code", None)
    return hook is not None and hook is not BaseConnector.verify_user_code
