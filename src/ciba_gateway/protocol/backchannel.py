"""The backchannel authentication endpoint (CIBA Core 1.0 sections 7 and 13).

``authorize`` runs an ordered tuple of small checks over one request, then
starts the routed connector and persists the pending request. A refused
request raises an OAuthError and writes nothing: the only write is the final
``create`` after the upstream accepted.

user_code (CIBA Core 7.1): for a client with ``user_code_required``, the code is
verified by the routed connector's optional ``verify_user_code(hint, code)``
hook; a connector without the hook cannot verify codes, so such requests fail
with ``invalid_user_code`` (and discovery reports user codes as unsupported
when no connector of the tenant has the hook).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ciba_gateway.config.model import ClientConfig, RouteConfig
from ciba_gateway.connector import (
    Connector,
    ConnectorError,
    InvalidAuthorizationDetails,
    InvalidHint,
    LoginHint,
    UpstreamRejected,
    UpstreamUnavailable,
    UserBusy,
    UserNotFound,
    decode_json,
    details,
)
from ciba_gateway.errors import (
    AccessDeniedError,
    InvalidAuthorizationDetailsError,
    InvalidBindingMessageError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidUserCodeError,
    MissingUserCodeError,
    OAuthError,
    RequestUriNotSupportedError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnknownUserIdError,
)
from ciba_gateway.flow.engine import NewRequest
from ciba_gateway.protocol.certificates import ClientCertificate
from ciba_gateway.protocol.client_auth import authenticate_request
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.fapi import fapi_algs, run_fapi_checks
from ciba_gateway.protocol.hints import parse_login_hint
from ciba_gateway.protocol.jose import (
    verify_id_token_hint,
    verify_login_hint_token,
    verify_request_object,
)
from ciba_gateway.protocol.routing import select_route
from ciba_gateway.protocol.subject_hints import recall_subject_hint

__all__ = ["authorize"]

CLIENT_AUTH_PARAMS = frozenset(
    {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)
NOTIFICATION_TOKEN_MAX = 1024
AUTHORIZATION_DETAILS_MAX = 8192
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 section 2.1 ``b64token``: padding only at the end."""
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
"""RFC 6749 section 3.3 ``scope-token`` (NQCHAR)."""


def space_separated(raw: str) -> tuple[str, ...]:
    """The items of a space-delimited parameter: split on U+0020 only (RFC 6749 3.3)."""
    return tuple(item for item in raw.split(" ") if item)


@dataclass(slots=True)
class BackchannelRequest:
    """The working state of one bc-authorize call as the checks fill it in."""

    gateway: Gateway
    tenant: TenantContext
    params: dict[str, Any]
    authorization: str | None
    end_user_ip: str = "127.0.0.1"
    certificate: ClientCertificate | None = None
    client: ClientConfig | None = None
    scope: tuple[str, ...] = ()
    hint: LoginHint | None = None
    binding_message: str | None = None
    expires_in: int = 0
    acr_values: tuple[str, ...] = ()
    route: RouteConfig | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    notification_token: str | None = None

    @property
    def the_client(self) -> ClientConfig:
        assert self.client is not None
        return self.client

    @property
    def connector(self) -> Connector:
        assert self.route is not None
        return self.tenant.connectors[self.route.connector]

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise InvalidRequestError(f"parameter {name} must be a string")
        return value


async def authenticate(req: BackchannelRequest) -> None:
    """Client authentication (CIBA Core 7.1, RFC 6749 2.3); the client needs the CIBA grant."""
    req.client = await authenticate_request(
        req.gateway,
        req.tenant,
        req.params,
        authorization=req.authorization,
        certificate=req.certificate,
    )
    if not req.client.uses_ciba:
        # CIBA Core 13: a client not registered for CIBA.
        raise UnauthorizedClientError("this client is not registered for the CIBA grant")


async def unpack_request_object(req: BackchannelRequest) -> None:
    """Signed authentication requests (CIBA Core 7.1.1)."""
    client = req.the_client
    if req.params.get("request_uri"):
        raise RequestUriNotSupportedError("request_uri is not supported; send request instead")
    request_jwt = req.text("request")
    if request_jwt is None:
        if client.request_signing_alg is not None:
            raise InvalidRequestError("this client must send a signed request object")
        return
    outside = set(req.params) - CLIENT_AUTH_PARAMS - {"request"}
    if outside:
        raise InvalidRequestError(
            "parameters outside the signed request object: " + ", ".join(sorted(outside))
        )
    algs: Collection[str] = req.tenant.config.signing_algs
    if client.request_signing_alg is not None:
        algs = (client.request_signing_alg,)
    claims = await verify_request_object(
        request_jwt,
        client=client,
        issuer=req.tenant.issuer,
        allowed_algs=fapi_algs(req.tenant.config, client, algs),
        keys=req.gateway.jwks_cache,
        values=req.gateway.store,
        now=req.gateway.clock(),
        tenant_id=req.tenant.id,
    )
    if "request" in claims or "request_uri" in claims:
        raise InvalidRequestError("a request object must not contain request or request_uri")
    params: dict[str, Any] = {}
    for name, value in claims.items():
        if name in {"iss", "aud", "exp", "iat", "nbf", "jti"}:
            continue
        if name == "requested_expiry" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        params[name] = value
    req.params = params


def check_delivery_mode(req: BackchannelRequest) -> None:
    """Ping and push clients must send a client_notification_token (CIBA Core 7.1)."""
    client = req.the_client
    token = req.text("client_notification_token")
    if client.delivery_mode == "poll":
        return
    if token is None:
        raise InvalidRequestError(
            f"client_notification_token is required for {client.delivery_mode} mode"
        )
    if len(token) > NOTIFICATION_TOKEN_MAX or not _B64TOKEN.fullmatch(token):
        raise InvalidRequestError("client_notification_token must be a bearer token (RFC 6750)")
    req.notification_token = token


def check_scope(req: BackchannelRequest) -> None:
    """scope must contain openid and stay within the client's scopes."""
    raw = req.text("scope")
    if raw is None:
        raise InvalidRequestError("missing parameter: scope")
    scope = tuple(dict.fromkeys(space_separated(raw)))
    if not all(_SCOPE_TOKEN.fullmatch(s) for s in scope):
        raise InvalidScopeError(
            "scope values are printable ASCII separated by spaces (RFC 6749 3.3)"
        )
    if "openid" not in scope:
        raise InvalidScopeError("scope must contain openid")
    unknown = [s for s in scope if s not in req.the_client.scopes]
    if unknown:
        raise InvalidScopeError("scope not allowed for this client: " + " ".join(unknown))
    req.scope = scope


def resolve_hint(req: BackchannelRequest) -> Awaitable[None] | None:
    """Exactly one of login_hint, login_hint_token, id_token_hint (CIBA Core 7.1).

    A login_hint is parsed here; the two token hints are verified by the awaitable
    returned (a key fetch, a store read).
    """
    given = [n for n in ("login_hint", "login_hint_token", "id_token_hint") if req.text(n)]
    if len(given) != 1:
        raise InvalidRequestError(
            "exactly one of login_hint, login_hint_token and id_token_hint is required"
        )
    kind = given[0]
    value = req.text(kind) or ""
    if kind == "login_hint":
        req.hint = parse_login_hint(value)
        return None
    return _resolve_token_hint(req, kind, value)


async def _resolve_token_hint(req: BackchannelRequest, kind: str, value: str) -> None:
    gw, tenant, client = req.gateway, req.tenant, req.the_client
    if kind == "login_hint_token":
        claims = await verify_login_hint_token(
            value,
            client=client,
            keys=gw.jwks_cache,
            allowed_algs=tenant.config.signing_algs,
            now=gw.clock(),
        )
        req.hint = parse_login_hint(_hint_from_subject_id(claims.get("sub_id")))
    else:
        claims = verify_id_token_hint(
            value,
            keys=tenant.keys,
            audience_client_id=client.client_id,
            issuer=tenant.issuer,
            now=gw.clock(),
            max_age=tenant.config.lifetimes.id_token_hint,
        )
        hint = await recall_subject_hint(gw.store, tenant.config, str(claims.get("sub", "")))
        if hint is None:
            raise UnknownUserIdError("the id_token_hint's subject is not known any more")
        req.hint = hint


def _hint_from_subject_id(sub_id: Any) -> str:
    """RFC 9493 subject identifier -> our login hint grammar."""
    if not isinstance(sub_id, Mapping):
        raise InvalidRequestError("login_hint_token must carry a sub_id object")
    fmt = sub_id.get("format")
    if fmt == "phone_number" and isinstance(sub_id.get("phone_number"), str):
        return f"tel:{sub_id['phone_number']}"
    if fmt == "email" and isinstance(sub_id.get("email"), str):
        return f"email:{sub_id['email']}"
    if fmt == "ssn" and isinstance(sub_id.get("ssn"), str):
        country = sub_id.get("country")
        return (
            f"ssn:{country}:{sub_id['ssn']}" if isinstance(country, str) else f"ssn:{sub_id['ssn']}"
        )
    raise InvalidRequestError("unsupported sub_id format in login_hint_token")


def check_binding_message(req: BackchannelRequest) -> None:
    """binding_message: short, printable, no control characters (CIBA Core 7.1)."""
    message = req.text("binding_message")
    if message is None:
        return
    limit = req.tenant.config.binding_message_max_length
    if len(message) > limit:
        raise InvalidBindingMessageError(f"binding_message is longer than {limit} characters")
    for ch in message:
        category = unicodedata.category(ch)
        if category[0] in {"C", "Z"} and ch != " ":
            raise InvalidBindingMessageError(
                "binding_message may contain only printable characters and spaces"
            )
    if message.strip() != message or not message:
        raise InvalidBindingMessageError("binding_message must not start or end with spaces")
    req.binding_message = message


def check_requested_expiry(req: BackchannelRequest) -> None:
    """requested_expiry: a positive integer, capped by the tenant's maximum."""
    lifetimes = req.tenant.config.lifetimes
    raw = req.text("requested_expiry")
    if raw is None:
        req.expires_in = lifetimes.auth_request
        return
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) <= 0:
        raise InvalidRequestError("requested_expiry must be a positive integer")
    req.expires_in = min(int(raw), lifetimes.auth_request_max)


def route_request(req: BackchannelRequest) -> None:
    """Pick the connector by acr_values, then login hint kind."""
    raw = req.text("acr_values")
    acr = space_separated(raw) if raw else req.the_client.default_acr_values
    req.acr_values = acr
    assert req.hint is not None
    req.route = select_route(req.tenant.config.routes, acr, req.hint)
    if req.hint.kind not in req.connector.login_hint_kinds:
        raise InvalidRequestError(f"login hints of kind {req.hint.kind!r} are not served here")


def check_authorization_details(req: BackchannelRequest) -> None:
    """RFC 9396: a JSON array of objects of types both the client and the connector may use.

    Entries of the core's typed kinds (``connector.details``) are validated strictly
    and kept in their canonical form; other types pass as sent to the connector.
    """
    raw = req.params.get("authorization_details")
    if raw is None or raw == "":
        return
    if isinstance(raw, str):
        if len(raw) > AUTHORIZATION_DETAILS_MAX:
            raise InvalidAuthorizationDetailsError(
                f"authorization_details is longer than {AUTHORIZATION_DETAILS_MAX} characters"
            )
        try:
            raw = decode_json(raw)
        except ValueError:
            raise InvalidAuthorizationDetailsError("authorization_details is not JSON") from None
    if not isinstance(raw, list) or not raw:
        raise InvalidAuthorizationDetailsError("authorization_details must be a non-empty array")
    allowed = set(req.the_client.authorization_details_types)
    accepted = req.connector.authorization_details_types
    entries: list[dict[str, Any]] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise InvalidAuthorizationDetailsError(
                f"authorization_details[{i}] must be an object with a string type"
            )
        kind = entry["type"]
        if kind not in allowed:
            raise InvalidAuthorizationDetailsError(
                f"authorization_details type {kind!r} is not allowed for this client"
            )
        if kind not in accepted:
            raise InvalidAuthorizationDetailsError(
                f"authorization_details type {kind!r} is not supported here"
            )
        if kind in details.TYPED_DETAILS:
            try:
                entry = details.validate(entry)
            except details.DetailsProblem as exc:
                raise InvalidAuthorizationDetailsError(
                    f"authorization_details[{i}]: {exc}"
                ) from None
        entries.append(entry)
    if sum(e["type"] in details.TYPED_DETAILS for e in entries) > details.MAX_ENTRIES:
        raise InvalidAuthorizationDetailsError(
            f"at most {details.MAX_ENTRIES} payment_initiation or approval entries"
        )
    req.authorization_details = tuple(entries)


def check_user_code(req: BackchannelRequest) -> Awaitable[None] | None:
    """user_code for clients that require it (CIBA Core 7.1), verified by the connector."""
    if not req.the_client.user_code_required:
        return None
    code = req.text("user_code")
    if code is None:
        raise MissingUserCodeError("this client requires a user_code")
    return _verify_user_code(req, code)


async def _verify_user_code(req: BackchannelRequest, code: str) -> None:
    verify: Callable[[LoginHint, str], Awaitable[bool | None]] | None = getattr(
        req.connector, "verify_user_code", None
    )
    assert req.hint is not None
    ok = await verify(req.hint, code) if verify is not None else None
    if not ok:
        raise InvalidUserCodeError("the user_code is not valid")


def connector_error_to_oauth(exc: ConnectorError) -> OAuthError:
    """Map a connector's refusal at start to the CIBA error that fits (CIBA Core 13)."""
    if isinstance(exc, UserNotFound):
        return UnknownUserIdError(exc.description)
    if isinstance(exc, InvalidHint | UserBusy):
        return InvalidRequestError(exc.description)
    if isinstance(exc, InvalidAuthorizationDetails):
        return InvalidAuthorizationDetailsError(exc.description)
    if isinstance(exc, UpstreamUnavailable):
        return TemporarilyUnavailableError(exc.description)
    if isinstance(exc, UpstreamRejected):
        return AccessDeniedError(exc.description)
    return AccessDeniedError(exc.description)


async def start_and_persist(req: BackchannelRequest) -> dict[str, Any]:
    """Ask the engine to start the upstream authentication and persist the pending request."""
    gw, tenant, client = req.gateway, req.tenant, req.the_client
    assert req.hint is not None and req.route is not None
    interval = tenant.config.lifetimes.poll_interval
    new = NewRequest(
        tenant_id=tenant.id,
        client_id=client.client_id,
        client_name=client.display_name,
        login_hint=req.hint,
        scope=req.scope,
        connector=req.route.connector,
        expires_in=req.expires_in,
        interval=interval,
        acr_values=req.acr_values,
        route_acr=req.route.acr,
        binding_message=req.binding_message,
        authorization_details=req.authorization_details,
        delivery_mode=client.delivery_mode,
        client_notification_token=req.notification_token,
        end_user_ip=req.end_user_ip,
    )
    try:
        request = await gw.engine.begin(new, req.connector)
    except ConnectorError as exc:
        raise connector_error_to_oauth(exc) from exc
    body: dict[str, Any] = {"auth_req_id": request.auth_req_id, "expires_in": req.expires_in}
    if client.delivery_mode != "push":
        body["interval"] = interval
    return body


def check_start_limits(req: BackchannelRequest) -> Awaitable[None] | None:
    """Abuse limits: starts per client and per login hint (429 slow_down, Retry-After)."""
    limiter = req.gateway.start_limiter
    if limiter is None:
        return None
    assert req.hint is not None
    return limiter.check(req.tenant.config, req.the_client, req.hint)


def check_fapi_profile(req: BackchannelRequest) -> None:
    """FAPI-CIBA clauses a request decides, for a client of that profile (``protocol.fapi``)."""
    run_fapi_checks(req)


STEPS: tuple[Callable[[BackchannelRequest], Awaitable[None] | None], ...] = (
    authenticate,
    unpack_request_object,
    check_delivery_mode,
    check_scope,
    resolve_hint,
    check_binding_message,
    check_requested_expiry,
    route_request,
    check_authorization_details,
    check_user_code,
    check_fapi_profile,
    check_start_limits,
)
"""The checks of a backchannel request, in the order they run; the limits count
only requests that passed every other check (each would start an upstream order).
A check that needs no I/O is a plain function (no coroutine per request); one that
does is ``async`` and its awaitable is awaited."""


async def authorize(
    gateway: Gateway,
    tenant: TenantContext,
    params: dict[str, str],
    *,
    authorization: str | None,
    end_user_ip: str = "127.0.0.1",
    certificate: ClientCertificate | None = None,
) -> tuple[dict[str, Any], ClientConfig]:
    """Handle one bc-authorize request; returns the JSON body and the authenticated client."""
    req = BackchannelRequest(
        gateway=gateway,
        tenant=tenant,
        params=dict(params),
        authorization=authorization,
        end_user_ip=end_user_ip,
        certificate=certificate,
    )
    for step in STEPS:
        pending = step(req)
        if pending is not None:
            await pending
    return await start_and_persist(req), req.the_client
