"""The per-tenant HTTP endpoints (DESIGN.md section 3) and the health probes."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from litestar import Request, Response, get, post, route
from litestar.exceptions import InternalServerException, MethodNotAllowedException
from litestar.handlers import ASGIRouteHandler
from litestar.params import FromPath
from litestar.types import ASGIApp

from ciba_gateway.config.model import ClientConfig
from ciba_gateway.errors import InvalidRequestError, InvalidTokenError, OAuthError
from ciba_gateway.metrics import CONTENT_TYPE
from ciba_gateway.protocol import backchannel, discovery, introspection, token
from ciba_gateway.protocol.certificates import ClientCertificate, presented_certificate
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.params import MAX_BODY_BYTES, parse_form
from ciba_gateway.web.openapi import docs
from ciba_gateway.web.responses import (
    NOSNIFF,
    ConstantAnswer,
    JsonAnswer,
    json_response,
    split_charset,
)

__all__ = ["ROUTE_HANDLERS", "tenant_routes"]

AnyRequest = Request[Any, Any, Any]
FormHandler = Callable[..., Awaitable[tuple[dict[str, Any] | token.Refusal, ClientConfig]]]
_PENDING = ConstantAnswer(token.AUTHORIZATION_PENDING.to_body(), token.AUTHORIZATION_PENDING.status)
"""The bytes ``JsonAnswer.error`` builds for authorization_pending, built once."""


def _tenant(request: AnyRequest, mount: str) -> tuple[Gateway, TenantContext]:
    return _scope_tenant(request.scope, mount)


def _scope_tenant(scope: Any, mount: str) -> tuple[Gateway, TenantContext]:
    gateway: Gateway = scope["litestar_app"].state.gateway
    tenant = gateway.tenant(mount)
    fields = _scope_log_fields(scope)
    if tenant is None:
        fields["unrouted"] = True
        raise InvalidRequestError("unknown tenant", status_code=404)
    fields["tenant"] = tenant.id
    return gateway, tenant


def log_fields(request: AnyRequest) -> dict[str, Any]:
    """The dict the access-log middleware reads for this request (tenant, client_id)."""
    return _scope_log_fields(request.scope)


def _scope_log_fields(scope: Any) -> dict[str, Any]:
    fields = scope.get("ciba_log")
    if fields is None:
        fields = scope["ciba_log"] = {}
    return fields


async def _body(receive: Any) -> bytes:
    """The request body, read straight from ASGI ``receive``.

    Cheaper than ``Request.body()`` on every token poll, and a body over
    ``MAX_BODY_BYTES`` is refused as soon as it is seen, not after buffering it.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InvalidRequestError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@get("/{tenant:str}/.well-known/openid-configuration", sync_to_thread=False, **docs["discovery"])
def openid_configuration(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """OIDC discovery document with the CIBA metadata."""
    _, ctx = _tenant(request, tenant)
    return json_response(discovery.metadata(ctx), cache=True)


@get("/{tenant:str}/jwks", sync_to_thread=False, **docs["jwks"])
def jwks(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """The tenant's public signing keys."""
    _, ctx = _tenant(request, tenant)
    return Response(
        ctx.keys.jwks_json(),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300", **NOSNIFF},
    )


class _FormEndpoint:
    """The ASGI app a form endpoint's handler returns: it reads the request itself.

    The handlers ask Litestar for no parameters (no ``Request``, no path
    parameter), so no kwargs are parsed per request: the tenant comes from the
    scope's ``path_params``, the body from ``receive``. Its most frequent answer
    (the token endpoint's authorization_pending) is the hot path: OAuth errors are
    answered here (not through Litestar's exception middleware), headers are read
    once from the scope, and the answer is a ``JsonAnswer``.

    ``handle(gateway, tenant, params, authorization=..., certificate=...)`` returns
    the JSON body and the authenticated client (whose id goes to the access log).
    """

    __slots__ = ("handle", "with_ip")

    def __init__(self, handle: FormHandler, *, with_ip: bool = False) -> None:
        self.handle = handle
        self.with_ip = with_ip
        """Pass ``end_user_ip`` (the peer address) to ``handle``."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        answer = await self._answer(scope, receive, scope["path_params"]["tenant"])
        await answer(scope, receive, send)

    async def _answer(self, scope: Any, receive: Any, mount: str) -> JsonAnswer:
        content_type, authorization, cert, cert_chain = _form_headers(scope)
        handle = self.handle
        if self.with_ip:
            client = scope.get("client")
            handle = functools.partial(handle, end_user_ip=client[0] if client else "127.0.0.1")
        try:
            gateway, ctx = _scope_tenant(scope, mount)
            certificate = _certificate(scope, gateway, cert, cert_chain)
            params = parse_form(await _body(receive), content_type)
            body, client = await handle(
                gateway, ctx, params, authorization=authorization, certificate=certificate
            )
        except OAuthError as exc:
            return JsonAnswer.error(exc)
        if body is token.AUTHORIZATION_PENDING:
            return _PENDING  # logged as the raised error was: without client_id
        scope["ciba_log"]["client_id"] = client.client_id
        return JsonAnswer(body)


_BC_AUTHORIZE = _FormEndpoint(backchannel.authorize, with_ip=True)
_TOKEN = _FormEndpoint(token.exchange)
_INTROSPECT = _FormEndpoint(introspection.introspect)
_REVOKE = _FormEndpoint(introspection.revoke)


@post("/{tenant:str}/bc-authorize", status_code=200, sync_to_thread=False, **docs["bc-authorize"])
def bc_authorize() -> ASGIApp:
    """CIBA backchannel authentication endpoint (answers as the token endpoint does)."""
    return _BC_AUTHORIZE


@post("/{tenant:str}/token", status_code=200, sync_to_thread=False, **docs["token"])
def token_endpoint() -> ASGIApp:
    """Token endpoint (CIBA grant); the hot path, see ``_FormEndpoint``."""
    return _TOKEN


@post("/{tenant:str}/introspect", status_code=200, sync_to_thread=False, **docs["introspect"])
def introspect() -> ASGIApp:
    """Token introspection (RFC 7662), for clients of the tenant (resource servers)."""
    return _INTROSPECT


@post("/{tenant:str}/revoke", status_code=200, sync_to_thread=False, **docs["revoke"])
def revoke() -> ASGIApp:
    """Token revocation (RFC 7009)."""
    return _REVOKE


_NO_BODY = {"type": "http.response.body", "body": b"", "more_body": False}
_OPTIONS_START = {
    "type": "http.response.start",
    "status": 204,
    "headers": [(b"allow", b"OPTIONS, POST")],
}


class _TenantFormRoute:
    """``POST /{mount}/{name}`` of one tenant as a static ASGI route (``tenant_routes``).

    Litestar resolves a path without parameters by one dict lookup and runs an ASGI
    handler without building a ``Request`` or looking for parameters, guards and
    caches: on the two hot endpoints that is about 6 us per request. Other methods
    are answered as the ``/{tenant}/...`` route answers them: OPTIONS 204 with
    ``Allow``, the rest 405 (logged and counted as unrouted).
    """

    __slots__ = ("endpoint", "mount", "template")

    def __init__(self, endpoint: _FormEndpoint, mount: str, template: str) -> None:
        self.endpoint = endpoint
        self.mount = mount
        self.template = template
        """The parameter route's template: spans and logs name the route, not the tenant."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope["path_template"] = self.template
        scope["path_params"] = {"tenant": self.mount}
        method = scope["method"]
        if method == "POST":
            answer = await self.endpoint._answer(scope, receive, self.mount)
            await answer(scope, receive, send)
        elif method == "OPTIONS":
            await send(_OPTIONS_START)
            await send(_NO_BODY)
        else:
            _scope_log_fields(scope)["unrouted"] = True
            raise MethodNotAllowedException(headers={"Allow": "POST, OPTIONS"})


_HOT_FORM_ENDPOINTS = {"bc-authorize": _BC_AUTHORIZE, "token": _TOKEN}


def tenant_routes(mounts: Iterable[str]) -> list[ASGIRouteHandler]:
    """Static routes of the hot form endpoints (token, bc-authorize) for these tenants.

    Built from the tenants of the config the app starts with. The ``/{tenant}/...``
    routes stay for the OpenAPI document and for tenants a later reload adds; a
    tenant a reload removes is answered 404 here as there (the handler looks the
    mount up in the current gateway).
    """
    routes: list[ASGIRouteHandler] = []
    for mount in mounts:
        for name, endpoint in _HOT_FORM_ENDPOINTS.items():
            route = _TenantFormRoute(endpoint, mount, f"/{{tenant:str}}/{name}")
            handler = ASGIRouteHandler(f"/{mount}/{name}", copy_scope=False, name=f"{name}:{mount}")
            routes.append(handler(route))
    return routes


def _form_headers(scope: Any) -> tuple[str | None, ...]:
    """Content-Type, Authorization, Client-Cert and Client-Cert-Chain (the first of each)."""
    content_type = authorization = cert = chain = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"client-cert" and cert is None:
            cert = value.decode("latin-1")
        elif name == b"client-cert-chain" and chain is None:
            chain = value.decode("latin-1")
    return content_type, authorization, cert, chain


def _certificate(
    scope: Any, gateway: Gateway, header: str | None, chain: str | None
) -> ClientCertificate | None:
    """The request's TLS client certificate (RFC 9440 header or the ASGI TLS extension)."""
    tls = scope.get("extensions", {}).get("tls") if "extensions" in scope else None
    if header is None and chain is None and not tls:
        return None
    peer = scope["client"][0] if scope.get("client") else None
    return presented_certificate(
        header=header, chain_header=chain, peer=peer, trusted=gateway.trusted_proxies, tls=tls
    )


@route("/{tenant:str}/userinfo", http_method=["GET", "POST"], **docs["userinfo"])
async def userinfo(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """UserInfo endpoint: the claims of a Bearer access token."""
    gateway, ctx = _tenant(request, tenant)
    headers = request.headers
    header = headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    access_token = value.strip() if scheme.lower() == "bearer" else None
    certificate = _certificate(
        request.scope, gateway, headers.get("client-cert"), headers.get("client-cert-chain")
    )
    claims = await token.userinfo(gateway, ctx, access_token, certificate)
    return json_response(claims)


@get("/healthz", sync_to_thread=False, **docs["health"])
def healthz() -> Response[bytes]:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@get("/readyz", **docs["ready"])
async def readyz(request: AnyRequest) -> Response[bytes]:
    """Readiness: the store answers, keys are loaded, connectors are constructed."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        return json_response({"status": "starting"}, 503)
    try:
        store_ok = await gateway.engine.store.ping()
    except Exception:
        store_ok = False
    tenants = {
        t.id: {
            "keys": len(t.keys.jwks()["keys"]),
            "connectors": sorted(t.connectors),
        }
        for t in gateway.tenants.values()
    }
    connectors_ok = all(
        set(t.connectors) == set(t.config.connectors) for t in gateway.tenants.values()
    )
    ready = store_ok and connectors_ok
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {"store": store_ok, "connectors": connectors_ok, "tenants": tenants},
    }
    return json_response(body, 200 if ready else 503)


def _check_metrics_token(expected: str | None, request: AnyRequest) -> None:
    if expected is None:
        return
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogatepass"), expected.encode("utf-8")
    ):
        return
    challenge = 'Bearer realm="metrics"' + (', error="invalid_token"' if given else "")
    raise InvalidTokenError(
        "a Bearer token is required for /metrics", headers={"WWW-Authenticate": challenge}
    )


@get("/metrics", **docs["metrics"])
async def metrics(request: AnyRequest) -> Response[bytes]:
    """Prometheus text exposition of this process's metrics (behind ``server.metrics_token``)."""
    registry = request.app.state.metrics
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is not None:
        _check_metrics_token(gateway.config.server.metrics_token, request)
        try:
            registry.pending.set(await gateway.engine.store.count_pending())
        except Exception:
            registry.pending.set(float("nan"))
    media_type, encoding = split_charset(CONTENT_TYPE)
    return Response(registry.render(), media_type=media_type, encoding=encoding)


ROUTE_HANDLERS = [
    openid_configuration,
    jwks,
    bc_authorize,
    token_endpoint,
    introspect,
    revoke,
    userinfo,
    healthz,
    readyz,
    metrics,
]
