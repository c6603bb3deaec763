"""Client authentication at bc-authorize and the token endpoint (RFC 6749 2.3, OIDC Core 9).

Only confidential clients exist; each client has exactly one registered method,
and the request must use that method and no other:

- ``client_secret_basic``: ``Authorization: Basic`` with the form-urlencoded
  client_id and secret (RFC 6749 section 2.3.1);
- ``client_secret_post``: ``client_id`` and ``client_secret`` in the form;
- ``client_secret_jwt`` / ``private_key_jwt``: ``client_assertion_type`` (the
  RFC 7523 jwt-bearer URN) and ``client_assertion``; ``client_id`` is optional
  and must then match the assertion's ``sub``;
- ``tls_client_auth`` / ``self_signed_tls_client_auth`` (RFC 8705 section 2):
  ``client_id`` in the form and no other credentials; the TLS client
  certificate (``protocol.certificates``) proves the client.

Decisions:

- A request that uses more than one method (RFC 6749 section 2.3: a client
  MUST NOT) is a malformed request, answered ``invalid_request`` (400), as
  node-oidc-provider does; every failed authentication is ``invalid_client``.
- Every ``invalid_client`` (401) carries ``WWW-Authenticate: Basic realm="<issuer>"``:
  RFC 6749 section 5.2 requires the challenge when the client tried Basic, and
  RFC 9110 section 15.5.2 requires one on every 401. Form and JWT methods have no
  HTTP authentication scheme of their own, so Basic (the scheme this endpoint
  accepts) is named for them too; one challenge for all leaks no method.
- Whether a client exists, which method it is registered for, and why its
  credentials failed are not told apart on the wire: each such failure answers
  the same ``client authentication failed`` (no enumeration of client ids or
  methods); the precise reason is logged as ``client_auth_failed``. Malformed
  requests that do not depend on the registry keep their own description.
- Secrets are compared as SHA-256 digests with ``hmac.compare_digest``: constant
  time, and the length of the secret does not leak. Client secrets are high
  entropy (at least 16 characters), so a fast hash suffices and the token
  endpoint stays cheap.
- A ``Authorization`` header with another scheme (e.g. ``Bearer``) is not client
  authentication and is ignored here.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

import structlog

from ciba_gateway.config.model import TLS_AUTH_METHODS
from ciba_gateway.errors import InvalidClientError, InvalidRequestError
from ciba_gateway.protocol.certificates import key_in_key_set, matches_subject, verify_chain
from ciba_gateway.protocol.fapi import fapi_algs
from ciba_gateway.protocol.jose import (
    HMAC_ALGS,
    JwksError,
    peek_jwt,
    verify_client_assertion,
)

if TYPE_CHECKING:
    from cryptography.x509.verification import Store

    from ciba_gateway.config.model import ClientConfig, TenantConfig
    from ciba_gateway.protocol.certificates import ClientCertificate
    from ciba_gateway.protocol.context import Gateway, TenantContext
    from ciba_gateway.protocol.jose import JwksCache
    from ciba_gateway.store.values import Values

__all__ = ["CLIENT_ASSERTION_TYPE", "authenticate_client", "authenticate_request"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FAILED = "client authentication failed"
"""The one description of every failure that depends on the client registry."""
log = structlog.get_logger("ciba_gateway.client_auth")
VERIFIED_BASIC_MAX = 256
"""Verified Basic credentials remembered per tenant (then the dict starts again)."""


async def authenticate_request(
    gateway: Gateway,
    tenant: TenantContext,
    form: Mapping[str, str],
    *,
    authorization: str | None,
    certificate: ClientCertificate | None,
) -> ClientConfig:
    """``authenticate_client`` with the tenant's audiences, keys, replay cache and CAs."""
    return await authenticate_client(
        tenant.config,
        authorization=authorization,
        form=form,
        audiences=tenant.client_auth_audiences,
        jwks=gateway.jwks_cache,
        values=gateway.store,
        now=gateway.clock(),
        certificate=certificate,
        trust_anchors=tenant.client_ca,
        verified_basic=tenant.verified_basic,
    )


async def authenticate_client(
    tenant: TenantConfig,
    *,
    authorization: str | None,
    form: Mapping[str, str],
    audiences: Collection[str],
    jwks: JwksCache,
    values: Values,
    now: float,
    certificate: ClientCertificate | None = None,
    trust_anchors: Store | None = None,
    verified_basic: dict[str, ClientConfig] | None = None,
) -> ClientConfig:
    """The client this request authenticates as.

    Args:
        authorization: the ``Authorization`` header, if any.
        form: the request's form parameters (duplicates already refused).
        audiences: accepted ``aud`` values of client assertions.
        values: the store's values, for the jti replay cache of client assertions.
        certificate: the request's TLS client certificate, if any.
        trust_anchors: the tenant's CAs for ``tls_client_auth``.
        verified_basic: Basic credentials already verified -> their client, filled
            here (``TenantContext.verified_basic``: it lives as long as the config).

    Raises:
        InvalidClientError: authentication failed (401).
        InvalidRequestError: more than one authentication method was used.
    """
    try:
        return await _authenticate(
            tenant,
            authorization=authorization,
            form=form,
            audiences=audiences,
            jwks=jwks,
            values=values,
            now=now,
            certificate=certificate,
            trust_anchors=trust_anchors,
            verified_basic=verified_basic,
        )
    except InvalidClientError as exc:
        exc.headers = _challenge(tenant)
        raise


async def _authenticate(
    tenant: TenantConfig,
    *,
    authorization: str | None,
    form: Mapping[str, str],
    audiences: Collection[str],
    jwks: JwksCache,
    values: Values,
    now: float,
    certificate: ClientCertificate | None,
    trust_anchors: Store | None,
    verified_basic: dict[str, ClientConfig] | None,
) -> ClientConfig:
    basic = None
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            basic = credentials
    uses_post = "client_secret" in form
    uses_jwt = "client_assertion" in form or "client_assertion_type" in form
    if (basic is not None) + uses_post + uses_jwt > 1:
        raise InvalidRequestError("use exactly one client authentication method")
    if basic is not None:
        return _basic(tenant, basic, form.get("client_id"), verified_basic)
    if uses_post:
        return _post(tenant, form)
    if uses_jwt:
        return await _jwt(tenant, form, audiences=audiences, jwks=jwks, values=values, now=now)
    client_id = form.get("client_id")
    client = tenant.client(client_id) if client_id else None
    if client is not None and client.auth.method in TLS_AUTH_METHODS:
        await _mtls(client, certificate, trust_anchors, jwks)
        return client
    raise InvalidClientError("client authentication is required")


async def _mtls(
    client: ClientConfig,
    certificate: ClientCertificate | None,
    trust_anchors: Store | None,
    jwks: JwksCache,
) -> None:
    """RFC 8705 2.1 (CA-issued, subject matched) or 2.2 (self-signed, key in the JWKS)."""
    client_id = client.client_id
    if certificate is None:
        raise _failed(client_id, "no TLS client certificate")
    try:
        cert = certificate.certificate
        if client.auth.method == "tls_client_auth":
            if trust_anchors is None:
                raise _failed(client_id, "the tenant has no CA for tls_client_auth")
            verify_chain(certificate, trust_anchors)
            if not matches_subject(client.auth, cert):
                raise _failed(client_id, "the certificate's subject is not the registered one")
            return
        keys = await jwks.keys_for(client)
    except JwksError:
        raise _failed(client_id, "the client's keys cannot be loaded") from None
    except InvalidClientError as exc:
        if exc.description == FAILED:
            raise
        raise _failed(client_id, exc.description) from None
    if not key_in_key_set(cert, keys):
        raise _failed(client_id, "the certificate's key is not in the client's JWKS")


def _challenge(tenant: TenantConfig) -> dict[str, str]:
    return {"WWW-Authenticate": f'Basic realm="{tenant.issuer}"'}


@functools.lru_cache(maxsize=1024)
def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _secret_matches(given: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(
        hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(), _digest(expected)
    )


def _failed(client_id: str, reason: str) -> InvalidClientError:
    """The generic refusal on the wire; the reason goes to the log only."""
    log.info("client_auth_failed", client_id=client_id[:64], reason=reason)
    return InvalidClientError(FAILED)


def _registered(tenant: TenantConfig, client_id: str, method: str) -> ClientConfig:
    client = tenant.client(client_id)
    if client is None:
        raise _failed(client_id, "unknown client")
    if client.auth.method != method:
        raise _failed(client_id, f"{method} is not the client's registered method")
    return client


def _check_secret(tenant: TenantConfig, client_id: str, secret: str, method: str) -> ClientConfig:
    client = _registered(tenant, client_id, method)
    if not _secret_matches(secret, client.auth.secret):
        raise _failed(client_id, "wrong client secret")
    return client


def _basic(
    tenant: TenantConfig,
    credentials: str,
    form_client_id: str | None,
    verified: dict[str, ClientConfig] | None = None,
) -> ClientConfig:
    """``client_secret_basic``; credentials that verified once are looked up in ``verified``.

    Only a success is remembered (an attacker's guesses never grow the dict), keyed
    by the whole credentials string: a lookup compares no secret byte by byte. The
    dict belongs to one tenant context, so a reload that changes or revokes a
    secret starts from an empty one.
    """
    client = verified.get(credentials) if verified is not None else None
    if client is not None:
        if form_client_id is not None and form_client_id != client.client_id:
            raise InvalidClientError("client_id does not match the Basic credentials")
        return client
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError("malformed Basic credentials") from None
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon or not raw_id:
        raise InvalidClientError("malformed Basic credentials")
    client_id = _form_decode(raw_id)
    if form_client_id is not None and form_client_id != client_id:
        raise InvalidClientError("client_id does not match the Basic credentials")
    client = _check_secret(tenant, client_id, _form_decode(raw_secret), "client_secret_basic")
    if verified is not None:
        if len(verified) >= VERIFIED_BASIC_MAX:
            verified.clear()
        verified[credentials] = client
    return client


def _form_decode(text: str) -> str:
    # RFC 6749 2.3.1: Basic credentials are form-urlencoded first.
    return unquote_plus(text) if "%" in text or "+" in text else text


def _post(tenant: TenantConfig, form: Mapping[str, str]) -> ClientConfig:
    client_id = form.get("client_id")
    if not client_id:
        raise InvalidClientError("client_secret needs client_id")
    return _check_secret(tenant, client_id, form["client_secret"], "client_secret_post")


async def _jwt(
    tenant: TenantConfig,
    form: Mapping[str, str],
    *,
    audiences: Collection[str],
    jwks: JwksCache,
    values: Values,
    now: float,
) -> ClientConfig:
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise InvalidClientError(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
    assertion = form.get("client_assertion")
    if not assertion:
        raise InvalidClientError("client_assertion is missing")
    try:
        header, claims = peek_jwt(assertion)
    except ValueError:
        raise InvalidClientError("client_assertion is not a JWT") from None
    client_id = claims.get("sub")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidClientError("client_assertion has no sub")
    form_client_id = form.get("client_id")
    if form_client_id is not None and form_client_id != client_id:
        raise InvalidClientError("client_id does not match the client assertion")
    used = "client_secret_jwt" if header.get("alg") in HMAC_ALGS else "private_key_jwt"
    client = _registered(tenant, client_id, used)
    try:
        await verify_client_assertion(
            assertion,
            client=client,
            audiences=audiences,
            allowed_algs=fapi_algs(tenant, client, tenant.signing_algs),
            keys=jwks,
            values=values,
            now=now,
            tenant_id=tenant.id,
        )
    except InvalidClientError as exc:
        raise _failed(client_id, exc.description) from None
    return client
