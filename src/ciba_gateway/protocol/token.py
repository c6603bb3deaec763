"""The token endpoint's CIBA grant (CIBA Core 1.0 sections 10 and 11) and userinfo.

Poll pacing is the engine's (``FlowEngine.poll``, one store call with the read): a poll earlier than
``interval - 0.5 s`` after the previous one answers ``slow_down`` and grows the
interval by 5 s (CIBA Core 11, RFC 8628 3.5). Redeeming is the engine's too
(``FlowEngine.redeem``: approved -> issued once, whatever the races).

Outcomes on the token endpoint: past ``expires_at`` -> ``expired_token`` whatever
the status (but issued), so an approval redeemed too late mints nothing; pending ->
``authorization_pending``; denied -> ``access_denied``; failed upstream ->
``transaction_failed`` (the CIBA push error code, a documented choice: there
is no token-endpoint code for it and ``access_denied`` would blame the user).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from ciba_gateway.config.model import CIBA_GRANT, REFRESH_GRANT, ClientConfig
from ciba_gateway.connector import details
from ciba_gateway.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTokenError,
    SlowDownError,
    TransactionFailedError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.protocol import refresh
from ciba_gateway.protocol.certificates import ClientCertificate
from ciba_gateway.protocol.client_auth import authenticate_request
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.subject_hints import subject_hint_value
from ciba_gateway.store import namespaces
from ciba_gateway.store.base import Value
from ciba_gateway.tokens.access_token import AccessRecord, new_opaque_token, token_key
from ciba_gateway.tokens.claims import SCOPE_CLAIMS, claims_for_scopes, subject_for
from ciba_gateway.tokens.id_token import mint_id_token, token_hash
from ciba_gateway.tokens.sealing import seal, unseal

__all__ = [
    "AUTHORIZATION_PENDING",
    "CIBA_GRANT",
    "Refusal",
    "access_record",
    "approved_details",
    "drop_access_token",
    "exchange",
    "holds_binding",
    "issue_tokens",
    "userinfo",
]

_record_decoder = msgspec.json.Decoder(AccessRecord)


class Refusal(NamedTuple):
    """An OAuth error answer (RFC 6749 5.2) returned instead of raised.

    Only the poll's most frequent answer is one: raising and catching an
    exception per pending poll costs more than the rest of the answer.
    """

    error: str
    description: str
    status: int

    def to_body(self) -> dict[str, str]:
        """The JSON body, as ``OAuthError.to_body`` has it."""
        return {"error": self.error, "error_description": self.description}


AUTHORIZATION_PENDING = Refusal(
    AuthorizationPendingError.error,
    "the user has not yet been authenticated",
    AuthorizationPendingError.status_code,
)


async def exchange(
    gateway: Gateway,
    tenant: TenantContext,
    params: Mapping[str, str],
    *,
    authorization: str | None,
    certificate: ClientCertificate | None = None,
) -> tuple[dict[str, Any] | Refusal, ClientConfig]:
    """Handle a token request; returns the JSON body (or ``AUTHORIZATION_PENDING``) and the client.

    Every other refusal is raised as an ``OAuthError``.
    """
    client = await authenticate_request(
        gateway, tenant, params, authorization=authorization, certificate=certificate
    )
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequestError("missing parameter: grant_type")
    if grant_type != CIBA_GRANT:
        if grant_type == REFRESH_GRANT:
            return await _refresh(gateway, tenant, client, params, certificate), client
        raise UnsupportedGrantTypeError(f"grant_type {grant_type!r} is not supported")
    if not client.uses_ciba:
        # RFC 6749 5.2: the client is not authorized to use this grant type.
        raise UnauthorizedClientError("this client is not registered for the CIBA grant")
    if client.delivery_mode == "push":
        raise UnauthorizedClientError("push mode clients receive tokens at their endpoint")
    auth_req_id = params.get("auth_req_id")
    if auth_req_id is None:
        raise InvalidRequestError("missing parameter: auth_req_id")
    if client.tls_client_certificate_bound_access_tokens and certificate is None:
        raise InvalidRequestError("certificate-bound tokens need a TLS client certificate")
    now = gateway.clock()
    # The poll is recorded only for the request's own client (Store.poll's owner).
    polled = await gateway.engine.poll(auth_req_id, tenant.id, client.client_id, now)
    if polled is None:
        raise InvalidGrantError("auth_req_id is unknown or belongs to another client")
    request, slowed = polled
    if request.tenant_id != tenant.id or request.client_id != client.client_id:
        raise InvalidGrantError("auth_req_id is unknown or belongs to another client")
    return await _redeem(gateway, tenant, client, request, slowed, now, certificate), client


async def _redeem(
    gateway: Gateway,
    tenant: TenantContext,
    client: ClientConfig,
    request: AuthRequest,
    slowed: int | None,
    now: float,
    certificate: ClientCertificate | None,
) -> dict[str, Any] | Refusal:
    """The answer to a poll of ``request`` at ``now`` (``slowed``: its grown interval)."""
    status = request.status
    if status is not Status.ISSUED and now >= request.expires_at:
        # CIBA Core 7.3 / 11: the auth_req_id is void after expires_in, whatever the
        # outcome; an approval the client did not redeem in time mints nothing.
        raise ExpiredTokenError("the authentication request expired")
    if status is Status.PENDING:
        if slowed is not None:
            raise SlowDownError(f"poll at most every {slowed} seconds")
        return AUTHORIZATION_PENDING
    if status is Status.APPROVED:
        if REFRESH_GRANT in client.grant_types:
            # Its refresh token is stored as it is minted: only once the redeem won.
            if await gateway.engine.redeem(request) is None:
                raise InvalidGrantError("auth_req_id was already redeemed")
            return await issue_tokens(gateway, tenant, client, request, certificate=certificate)
        # Minted first, so the issued mark and the access token's record are one store call.
        grant = await _grant(gateway, tenant, client, request, certificate)
        if await gateway.engine.redeem(request, grant.values) is None:
            raise InvalidGrantError("auth_req_id was already redeemed")
        return _response(tenant, client, request, grant)
    if status is Status.ISSUED:
        raise InvalidGrantError("auth_req_id was already redeemed")
    if status is Status.DENIED:
        # 403 is bc-authorize's status for access_denied; the token endpoint's is 400.
        raise AccessDeniedError(request.error_description or "the user declined", status_code=400)
    if status is Status.EXPIRED:
        raise ExpiredTokenError(request.error_description or "the authentication request expired")
    raise TransactionFailedError(request.error_description or "the authentication failed")


async def issue_tokens(
    gateway: Gateway,
    tenant: TenantContext,
    client: ClientConfig,
    request: AuthRequest,
    *,
    push: bool = False,
    certificate: ClientCertificate | None = None,
) -> dict[str, Any]:
    """Mint the token response for an approved request (already moved to issued).

    ``push`` adds the claims CIBA Core 10.3.1 requires in a pushed ID token; for a
    client with ``tls_client_certificate_bound_access_tokens`` the access token is
    bound to ``certificate`` (RFC 8705 3).
    """
    grant = await _grant(gateway, tenant, client, request, certificate)
    for value in grant.values:
        await gateway.store.put(value)
    return _response(tenant, client, request, grant, push=push)


class _Grant(NamedTuple):
    """The tokens of one approved request, minted; ``values`` are their records, unwritten."""

    sub: str
    approved: dict[str, Any]
    access_token: str
    refresh_token: str | None
    values: tuple[Value, ...]
    now: int


async def _grant(
    gateway: Gateway,
    tenant: TenantContext,
    client: ClientConfig,
    request: AuthRequest,
    certificate: ClientCertificate | None,
) -> _Grant:
    """Mint the access (and refresh) token of an approved request.

    The access token's record and the subject hint come back as ``values`` for
    the caller to store (a poll redeems with them: one store call). Only a
    refresh token and its family are stored here, for clients with that grant.
    """
    identity = request.identity
    assert identity is not None
    config = tenant.config
    now = int(gateway.clock())
    sub = subject_for(config.subject, identity)
    approved = approved_details(request)
    claims = {"sub": sub, **claims_for_scopes(identity, request.scope), **approved}
    refresh_token = family = None
    if REFRESH_GRANT in client.grant_types:
        family, family_exp = await refresh.new_family(gateway, tenant, now)
        refresh_token = await refresh.mint_refresh_token(
            gateway,
            tenant,
            family=family,
            family_exp=family_exp,
            client=client,
            sub=sub,
            scope=request.scope,
            claims=claims,
            certificate=certificate,
            now=now,
        )
    access_token, record = _access_token(
        gateway, tenant, client, sub, request.scope, claims, certificate, family, now
    )
    hint = subject_hint_value(gateway.store, config, sub, request.login_hint)
    return _Grant(sub, approved, access_token, refresh_token, (record, hint), now)


def _response(
    tenant: TenantContext,
    client: ClientConfig,
    request: AuthRequest,
    grant: _Grant,
    *,
    push: bool = False,
) -> dict[str, Any]:
    """The token response of a grant: its tokens and a freshly signed ID token."""
    identity = request.identity
    assert identity is not None
    config = tenant.config
    extra: dict[str, Any] = dict(grant.approved)
    if push:
        extra["urn:openid:params:jwt:claim:auth_req_id"] = request.auth_req_id
        extra["at_hash"] = token_hash(grant.access_token, config.current_key.alg)
        if grant.refresh_token is not None:
            extra["rt_hash"] = token_hash(grant.refresh_token, config.current_key.alg)
    id_token = mint_id_token(
        tenant.keys,
        issuer=tenant.issuer,
        audience=client.client_id,
        sub=grant.sub,
        identity=identity,
        scopes=request.scope,
        lifetime=config.lifetimes.id_token,
        now=grant.now,
        acr_fallback=request.route_acr,
        extra=extra,
    )
    body: dict[str, Any] = {
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": config.lifetimes.access_token,
        "id_token": id_token,
        **grant.approved,
    }
    if grant.refresh_token is not None:
        body["refresh_token"] = grant.refresh_token
    return body


def _access_token(
    gateway: Gateway,
    tenant: TenantContext,
    client: ClientConfig,
    sub: str,
    scope: tuple[str, ...],
    claims: dict[str, Any],
    certificate: ClientCertificate | None,
    family: str | None,
    now: int,
) -> tuple[str, Value]:
    """Mint an access token and its sealed record (bound when the client says so).

    The record is what userinfo, introspection and revocation read, whatever the
    token's format: a JWT access token is only a self-describing form of the same
    grant, and revoking it stops it here (a resource server that validates it
    locally learns of that only at its ``exp``).
    """
    lifetime = tenant.config.lifetimes.access_token
    bound = client.tls_client_certificate_bound_access_tokens and certificate is not None
    if client.access_token_format == "jwt":  # noqa: S105
        access_token = _access_jwt(
            tenant, client, sub, scope, claims, certificate if bound else None, now
        )
    else:
        access_token = new_opaque_token()
    record = AccessRecord(
        sub=sub,
        client_id=client.client_id,
        scope=scope,
        iat=now,
        exp=now + lifetime,
        claims=claims,
        x5t=certificate.thumbprint if bound and certificate is not None else None,
        family=family,
    )
    sealed = seal(access_token, msgspec.json.encode(record))
    records = gateway.store.namespace(namespaces.access_tokens(tenant.id))
    return access_token, records.value(token_key(access_token), sealed, lifetime)


def _access_jwt(
    tenant: TenantContext,
    client: ClientConfig,
    sub: str,
    scope: tuple[str, ...],
    claims: Mapping[str, Any],
    certificate: ClientCertificate | None,
    now: int,
) -> str:
    """An RFC 9068 access token: the section 2.2 claims, scope, binding and approved details.

    No identity claims beyond ``sub`` (names, national ids) go into it: it travels to
    resource servers; they ask userinfo for the rest.
    """
    body: dict[str, Any] = {
        "iss": tenant.issuer,
        "sub": sub,
        "aud": list(client.access_token_audience) or [f"{tenant.issuer}/userinfo"],
        "client_id": client.client_id,
        "iat": now,
        "exp": now + tenant.config.lifetimes.access_token,
        "jti": new_opaque_token(),
        "scope": " ".join(scope),
    }
    if certificate is not None:
        body["cnf"] = {"x5t#S256": certificate.thumbprint}
    for name in ("authorization_details", "authorization_details_digest"):
        if name in claims:
            body[name] = claims[name]
    return tenant.keys.sign(body, typ="at+jwt")


async def _refresh(
    gateway: Gateway,
    tenant: TenantContext,
    client: ClientConfig,
    params: Mapping[str, str],
    certificate: ClientCertificate | None,
) -> dict[str, Any]:
    """The refresh_token grant (RFC 6749 6): rotate the token, mint a new access token.

    ``scope`` may narrow the access token's scope (claims of dropped scopes go);
    the new refresh token keeps the grant's scope, as section 6 requires. No ID
    token is issued on refresh (OIDC Core 12.2 makes it optional).
    """
    if REFRESH_GRANT not in client.grant_types:
        raise UnauthorizedClientError("this client is not registered for refresh tokens")
    token = params.get("refresh_token")
    if not token:
        raise InvalidRequestError("missing parameter: refresh_token")
    if client.tls_client_certificate_bound_access_tokens and certificate is None:
        raise InvalidRequestError("certificate-bound tokens need a TLS client certificate")
    raw_scope = params.get("scope")
    scope = tuple(dict.fromkeys(raw_scope.split())) if raw_scope else None
    record = await refresh.rotate(gateway, tenant, client, token, certificate)
    claims = dict(record.claims)
    if scope is not None:
        beyond = [s for s in scope if s not in record.scope]
        if beyond:
            raise InvalidScopeError("scope beyond the original grant: " + " ".join(beyond))
        for dropped in set(record.scope) - set(scope):
            for claim in SCOPE_CLAIMS.get(dropped, ()):
                claims.pop(claim, None)
    now = int(gateway.clock())
    access_token, value = _access_token(
        gateway,
        tenant,
        client,
        record.sub,
        scope or record.scope,
        claims,
        certificate,
        record.family,
        now,
    )
    await gateway.store.put(value)
    new_token = await refresh.mint_refresh_token(
        gateway,
        tenant,
        family=record.family,
        family_exp=record.family_exp,
        client=client,
        sub=record.sub,
        scope=record.scope,
        claims=record.claims,
        certificate=certificate,
        now=now,
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": tenant.config.lifetimes.access_token,
        "refresh_token": new_token,
    }
    if scope is not None:
        body["scope"] = " ".join(scope)
    return body


def approved_details(request: AuthRequest) -> dict[str, Any]:
    """RFC 9396 section 7: the approved ``authorization_details`` and their digest.

    The digest (``connector.details.digest``) is what a signing connector put in the
    upstream signature (BankID ``userNonVisibleData``), so the token and the
    signature name the same bytes. Empty when the request carried no details.
    """
    if not request.authorization_details:
        return {}
    entries = [dict(entry) for entry in request.authorization_details]
    return {
        "authorization_details": entries,
        "authorization_details_digest": details.digest(entries),
    }


async def access_record(
    gateway: Gateway, tenant: TenantContext, access_token: str
) -> AccessRecord | None:
    """The live record of an access token of this tenant, or None."""
    records = gateway.store.namespace(namespaces.access_tokens(tenant.id))
    blob = await records.get(token_key(access_token))
    if blob is None:
        return None
    try:
        record = _record_decoder.decode(unseal(access_token, blob))
    except Exception:
        return None
    if record.exp <= gateway.clock():
        return None
    if record.family is not None and not await refresh.family_alive(gateway, tenant, record.family):
        return None
    return record


async def drop_access_token(gateway: Gateway, tenant: TenantContext, access_token: str) -> None:
    """Forget an access token (revocation): it is invalid from now on, on every replica."""
    records = gateway.store.namespace(namespaces.access_tokens(tenant.id))
    await records.take(token_key(access_token))


def holds_binding(record: AccessRecord, certificate: ClientCertificate | None) -> bool:
    """The presented certificate is the one a bound token names (RFC 8705 3)."""
    if record.x5t is None:
        return True
    return certificate is not None and hmac.compare_digest(certificate.thumbprint, record.x5t)


async def userinfo(
    gateway: Gateway,
    tenant: TenantContext,
    access_token: str | None,
    certificate: ClientCertificate | None = None,
) -> dict[str, Any]:
    """The claims of an access token (OIDC Core 5.3); a bound token needs its certificate.

    A 401 challenges with ``WWW-Authenticate: Bearer realm="<issuer>"`` (RFC 6750
    section 3), adding ``error="invalid_token"`` only when a token was sent (3.1).
    """
    realm = f'Bearer realm="{tenant.issuer}"'
    if not access_token:
        raise InvalidTokenError(
            "a Bearer access token is required", headers={"WWW-Authenticate": realm}
        )
    challenge = {"WWW-Authenticate": f'{realm}, error="invalid_token"'}
    record = await access_record(gateway, tenant, access_token)
    if record is None:
        raise InvalidTokenError("the access token is invalid or expired", headers=challenge)
    if not holds_binding(record, certificate):
        raise InvalidTokenError(
            "the access token is bound to another TLS client certificate", headers=challenge
        )
    return record.claims
