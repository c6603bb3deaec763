"""JSON responses and the one handler that turns errors into OAuth JSON bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from ciba_gateway.errors import (
    InvalidRequestError,
    OAuthError,
    ServerError,
    StoreError,
    TemporarilyUnavailableError,
)

__all__ = [
    "EXCEPTION_HANDLERS",
    "ConstantAnswer",
    "JsonAnswer",
    "json_response",
    "oauth_error_response",
    "split_charset",
]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_NO_STORE_RAW = (
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
)
log = structlog.get_logger("ciba_gateway.web")
_encode = msgspec.json.encode


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, *, cache: bool = False
) -> Response[bytes]:
    """A JSON response with ``nosniff``; ``no-store`` unless ``cache`` (RFC 6749 5.1)."""
    merged = dict(NOSNIFF) if cache else {**NO_STORE, **NOSNIFF}
    if headers:
        merged.update(headers)
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=merged
    )


class JsonAnswer:
    """The bytes ``json_response`` would send, as a bare ASGI app a handler can return.

    The token endpoint answers through this: building Litestar's ``Response`` and
    its ``ASGIResponse`` costs more per poll than the whole answer is worth.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.body = _encode(body)
        self.status = status
        raw = list(_NO_STORE_RAW)
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-type", b"application/json"))
        raw.append((b"content-length", str(len(self.body)).encode()))
        self.headers = raw

    @classmethod
    def error(cls, exc: OAuthError) -> JsonAnswer:
        """RFC 6749 5.2 body with the error's status and headers."""
        return cls(exc.to_body(), exc.status_code, exc.headers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class ConstantAnswer(JsonAnswer):
    """A ``JsonAnswer`` built once and sent many times: each send gets its own header list."""

    __slots__ = ()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = list(self.headers)
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def oauth_error_response(exc: OAuthError) -> Response[bytes]:
    """RFC 6749 5.2 body with the error's status and headers."""
    return json_response(exc.to_body(), exc.status_code, exc.headers)


def _handle_oauth(_: Request[Any, Any, Any], exc: OAuthError) -> Response[bytes]:
    return oauth_error_response(exc)


def _handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    # Litestar's own refusals (unknown path, wrong method, bad body) in OAuth shape.
    status = exc.status_code
    if status >= 500:
        return oauth_error_response(ServerError("internal error"))
    error = InvalidRequestError(str(exc.detail) if exc.detail else "invalid request")
    headers = dict(exc.headers or {})
    return json_response(error.to_body(), status, headers)


def _handle_store(request: Request[Any, Any, Any], exc: StoreError) -> Response[bytes]:
    log.error("store_unavailable", error=str(exc))
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.store_errors.labels("request").inc()
    return oauth_error_response(
        TemporarilyUnavailableError("the service is temporarily unavailable")
    )


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return oauth_error_response(ServerError("internal error"))


EXCEPTION_HANDLERS = {
    OAuthError: _handle_oauth,
    HTTPException: _handle_http,
    StoreError: _handle_store,
    Exception: _handle_unexpected,
}


def split_charset(content_type: str) -> tuple[str, str]:
    """``text/html; charset=utf-8`` -> (``text/html``, ``utf-8``).

    Litestar appends ``; charset=<encoding>`` to every ``text/*`` type itself, so a
    charset already in the type would appear twice.
    """
    params = [p.strip() for p in content_type.split(";")]
    charset = "utf-8"
    kept = [params[0]]
    for param in params[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or charset
        elif param:
            kept.append(param)
    return "; ".join(kept), charset
