"""The per-tenant HTTP endpoints (DESIGN.md section 3) and the health probes."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post, route
from litestar.params import FromPath

from ciba_gateway.errors import InvalidRequestError, OAuthError
from ciba_gateway.metrics import CONTENT_TYPE
from ciba_gateway.protocol import backchannel, discovery, token
from ciba_gateway.protocol.context import Gateway, TenantContext
from ciba_gateway.protocol.params import parse_form
from ciba_gateway.web.responses import json_response, oauth_error_response

__all__ = ["ROUTE_HANDLERS"]

AnyRequest = Request[Any, Any, Any]


def _gateway(request: AnyRequest) -> Gateway:
    return request.app.state.gateway


def _tenant(request: AnyRequest, mount: str) -> tuple[Gateway, TenantContext]:
    gateway = _gateway(request)
    tenant = gateway.tenant(mount)
    if tenant is None:
        raise InvalidRequestError("unknown tenant")
    log_fields(request)["tenant"] = tenant.id
    return gateway, tenant


def log_fields(request: AnyRequest) -> dict[str, Any]:
    """The dict the access-log middleware reads for this request (tenant, client_id)."""
    return request.scope.setdefault("ciba_log", {})  # type: ignore[typeddict-item]


async def _form(request: AnyRequest) -> dict[str, str]:
    return parse_form(await request.body(), request.headers.get("content-type"))


@get("/{tenant:str}/.well-known/openid-configuration", sync_to_thread=False)
def openid_configuration(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """OIDC discovery document with the CIBA metadata."""
    _, ctx = _tenant(request, tenant)
    return json_response(discovery.metadata(ctx), cache=True)


@get("/{tenant:str}/jwks", sync_to_thread=False)
def jwks(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """The tenant's public signing keys."""
    _, ctx = _tenant(request, tenant)
    return Response(
        ctx.keys.jwks_json(),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@post("/{tenant:str}/bc-authorize", status_code=200)
async def bc_authorize(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """CIBA backchannel authentication endpoint."""
    gateway, ctx = _tenant(request, tenant)
    params = await _form(request)
    client_ip = request.client.host if request.client else "127.0.0.1"
    body, client = await backchannel.authorize(
        gateway,
        ctx,
        params,
        authorization=request.headers.get("authorization"),
        end_user_ip=client_ip,
    )
    log_fields(request)["client_id"] = client.client_id
    return json_response(body)


@post("/{tenant:str}/token", status_code=200)
async def token_endpoint(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """Token endpoint (CIBA grant).

    OAuth errors are answered here rather than raised to Litestar's exception
    middleware: authorization_pending is this endpoint's most frequent answer,
    and the middleware's path costs about a tenth of a request (bench/profiles).
    """
    try:
        gateway, ctx = _tenant(request, tenant)
        params = await _form(request)
        body, client = await token.exchange(
            gateway, ctx, params, authorization=request.headers.get("authorization")
        )
    except OAuthError as exc:
        return oauth_error_response(exc)
    log_fields(request)["client_id"] = client.client_id
    return json_response(body)


@route("/{tenant:str}/userinfo", http_method=["GET", "POST"])
async def userinfo(request: AnyRequest, tenant: FromPath[str]) -> Response[bytes]:
    """UserInfo endpoint: the claims of a Bearer access token."""
    gateway, ctx = _tenant(request, tenant)
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    access_token = value.strip() if scheme.lower() == "bearer" else None
    claims = await token.userinfo(gateway, ctx, access_token)
    return json_response(claims)


@get("/healthz", sync_to_thread=False)
def healthz() -> Response[bytes]:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@get("/readyz")
async def readyz(request: AnyRequest) -> Response[bytes]:
    """Readiness: the store answers, keys are loaded, connectors are constructed."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        return json_response({"status": "starting"}, 503)
    try:
        store_ok = await gateway.store.ping()
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


@get("/metrics")
async def metrics(request: AnyRequest) -> Response[bytes]:
    """Prometheus text exposition of this process's metrics."""
    registry = request.app.state.metrics
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is not None:
        try:
            registry.pending.set(await gateway.store.count_pending())
        except Exception:
            registry.pending.set(float("nan"))
    return Response(registry.render(), media_type=CONTENT_TYPE)


ROUTE_HANDLERS = [
    openid_configuration,
    jwks,
    bc_authorize,
    token_endpoint,
    userinfo,
    healthz,
    readyz,
    metrics,
]
