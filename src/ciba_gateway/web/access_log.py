"""ASGI middleware writing one structured log event per HTTP request."""

from __future__ import annotations

import time
from typing import Any

import structlog

from ciba_gateway.metrics import Metrics

__all__ = ["UNROUTED", "AccessLogMiddleware"]

UNROUTED = "(unrouted)"
"""The endpoint label of requests no route or connector serves."""

log = structlog.get_logger("ciba_gateway.access")


class AccessLogMiddleware:
    """Logs tenant, client_id, endpoint, method, status and duration (ms) of each request.

    The endpoint is the path after the tenant segment, so no identifier in a
    URL (connector callback tokens) reaches the log: only its first segment.
    It wraps the whole app (not a route), so requests no route serves (404, 405,
    an unknown tenant or connector path) are logged and counted too, under the one
    endpoint label ``(unrouted)``: a scanner's paths never become label values.
    """

    def __init__(
        self, app: Any, metrics: Metrics | None = None, quiet_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.quiet_prefixes = quiet_prefixes
        """Paths (the in-process simulators' mounts) whose requests are not logged."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields: dict[str, Any] = {}
        scope["ciba_log"] = fields
        status = 500

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            scope["ciba_status"] = status  # the tracing middleware around it reads it
            seconds = time.perf_counter() - started
            if scope.get("route_handler") is None or fields.pop("unrouted", False):
                endpoint = UNROUTED
            else:
                endpoint = _endpoint(scope["path"], fields.get("tenant"))
            if not (self.quiet_prefixes and _request_path(scope).startswith(self.quiet_prefixes)):
                # What log.info does, without the proxy's __getattr__ miss on every line.
                log.bind().info(
                    "request",
                    method=scope["method"],
                    endpoint=endpoint,
                    status=status,
                    duration_ms=round(seconds * 1000, 2),
                    **fields,
                )
            if self.metrics is not None:
                self.metrics.observe_request(fields.get("tenant"), endpoint, status, seconds)


def _request_path(scope: dict[str, Any]) -> str:
    # A mount (a simulator) sees its own path in scope["path"]; raw_path is the request's.
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else scope["path"]


def _endpoint(path: str, tenant: str | None) -> str:
    parts = [p for p in path.split("/") if p]
    if tenant is not None and len(parts) >= 2:
        # /{tenant}/token -> token; /{tenant}/{connector}/link/<secret> -> {connector}/link
        return (
            "/".join(parts[1:3])
            if len(parts) > 2 and parts[1] != ".well-known"
            else "/".join(parts[1:])
        )
    return "/" + "/".join(parts[:2])
