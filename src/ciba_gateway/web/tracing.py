"""ASGI middleware opening one server span per HTTP request (only when tracing is on)."""

from __future__ import annotations

import re
from typing import Any

from ciba_gateway.tracing import Tracing

__all__ = ["TracingMiddleware"]

_PARAM_TYPE = re.compile(r"\{(\w+):\w+\}")


class TracingMiddleware:
    """Wraps the access log, so its ``request`` line carries the span's trace id.

    The status is the one the access log saw (``scope["ciba_status"]``).

    The span is named by method and route template (``POST /{tenant}/token``),
    never by the path, which may hold a connector's callback secret. Attributes:
    method, route, status, scheme, and the tenant and client_id the request was
    for; nothing of the body, query or headers (login hints, client secrets and
    assertions stay out).
    """

    def __init__(self, app: Any, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"traceparent", b"tracestate")
        }
        attributes = {"http.request.method": method, "url.scheme": scope.get("scheme", "http")}
        with self.tracing.span(
            method, kind="server", attributes=attributes, parent_headers=headers
        ) as span:
            try:
                await self.app(scope, receive, send)
            finally:
                template = scope.get("path_template") if scope.get("route_handler") else None
                if template:
                    route = _PARAM_TYPE.sub(r"{\1}", template)
                    span.set("http.route", route)
                    span.rename(f"{method} {route}")
                fields = scope.get("ciba_log") or {}
                for key in ("tenant", "client_id"):
                    if isinstance(fields.get(key), str):
                        span.set(f"ciba.{key}", fields[key])
                status = scope.get("ciba_status", 500)  # set by the access log inside
                span.set("http.response.status_code", status)
                if status >= 500:
                    span.fail(str(status))
