"""Mounting of connector callback routes under ``{issuer}/{connector instance}/``.

Connectors describe their routes with framework-neutral ``CallbackRoute``s;
this handler matches the rest of the path against their templates and
converts the Litestar request into a ``CallbackRequest`` and back.

Bodies are capped at 64 KiB while they are read (Litestar's
``request_max_body_size``: an announced ``Content-Length`` over the cap is
refused before reading, a streamed body as soon as it passes the cap), so
concurrent huge POSTs to a link cannot grow the worker. Refusals are JSON: 413
for a body over the cap, 404 for a path no connector serves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Request, Response, route
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from ciba_gateway.connector import CallbackRequest, CallbackRoute
from ciba_gateway.web.endpoints import _tenant, log_fields
from ciba_gateway.web.responses import split_charset

__all__ = ["MAX_CALLBACK_BODY", "connector_callback", "match_route"]

MAX_CALLBACK_BODY = 64 * 1024
"""Bytes a connector callback may receive (an approval form is well under 1 KiB)."""


def match_route(
    routes: tuple[CallbackRoute, ...] | list[CallbackRoute], method: str, path: str
) -> tuple[CallbackRoute, dict[str, str]] | None:
    """The route whose template matches ``path`` (``/link/{token}``) and its parameters."""
    parts = [p for p in path.split("/") if p]
    for candidate in routes:
        if method not in candidate.methods:
            continue
        template = [p for p in candidate.path.split("/") if p]
        if len(template) != len(parts):
            continue
        params: dict[str, str] = {}
        for want, got in zip(template, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return candidate, params
    return None


@route(
    "/{tenant:str}/{connector:str}/{rest:path}",
    http_method=["GET", "POST"],
    request_max_body_size=MAX_CALLBACK_BODY,
    include_in_schema=False,  # each connector's own pages and callbacks, not the gateway's API
)
async def connector_callback(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    connector: FromPath[str],
    rest: FromPath[str],
) -> Response[bytes | str]:
    """Dispatch to a connector's callback route."""
    _, ctx = _tenant(request, tenant)
    instance = ctx.connectors.get(connector)
    found = match_route(list(instance.routes()), request.method, rest) if instance else None
    if found is None:
        log_fields(request)["unrouted"] = True
        raise NotFoundException("no such endpoint")
    callback, params = found
    body = await request.body()
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    answer = await callback.handler(
        CallbackRequest(
            method=request.method,
            path_params=params,
            query=dict(request.query_params),
            form=form,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            client_ip=request.client.host if request.client else "",
        )
    )
    media_type, encoding = split_charset(answer.media_type)
    return Response(
        answer.body,
        status_code=answer.status,
        media_type=media_type,
        encoding=encoding,
        headers=answer.headers,
    )
