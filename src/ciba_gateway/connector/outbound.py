"""The one builder of outbound HTTP clients, and how connectors call their upstream.

Every client gets explicit timeouts and connection limits, optional mutual TLS
(client certificate + key, pinned CA bundle) and never follows redirects. Its
connections are ``transport.AiohttpTransport``'s (aiohttp under httpx).

The call shape every connector shares:

- ``call_with_retries``: the one retry helper (tenacity with an explicit stop,
  wait and predicate; tenacity's defaults retry forever). Idempotent calls retry
  ``is_transient`` failures; a start retries only what ``never_sent`` vouches for.
- ``unavailable_status``: the HTTP statuses that mean "try again later".
- ``best_effort``: a clean-up call (an upstream cancel, closing a client) with a
  short deadline whose failures are logged, masked, and never raised.
- ``ErrorBoundary``: the base of each connector's one error-translation boundary,
  which turns its upstream's failures into the documented ``ConnectorError`` s.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

import httpx
import msgspec
from msgspec import Meta
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ciba_gateway.connector.api import ConnectorError
from ciba_gateway.connector.masking import mask_text
from ciba_gateway.connector.transport import AiohttpTransport

__all__ = [
    "BEST_EFFORT_DEADLINE",
    "ErrorBoundary",
    "HttpSettings",
    "best_effort",
    "build_client",
    "build_transport",
    "call_with_retries",
    "is_transient",
    "never_sent",
    "tls_file_problems",
    "unavailable_status",
]

T = TypeVar("T")
_FIRST_WAIT = 0.1
"""Seconds before the second try; each later wait doubles, up to ``max_wait``."""
BEST_EFFORT_DEADLINE = 5.0
"""Seconds a ``best_effort`` call (retries included) may take before it is given up."""


class HttpSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Transport settings a connector's Config embeds (``http:`` in YAML)."""

    timeout: Annotated[float, Meta(gt=0, le=120)] = 10.0
    connect_timeout: Annotated[float, Meta(gt=0, le=60)] = 5.0
    client_cert: str | None = None
    """PEM file with the client certificate (mutual TLS)."""
    client_key: str | None = None
    """PEM file with the client key; may be omitted when ``client_cert`` holds both."""
    ca_file: str | None = None
    """PEM bundle to trust instead of the system store (pin the upstream's private root)."""
    max_connections: Annotated[int, Meta(ge=1, le=10000)] = 100
    retries: Annotated[int, Meta(ge=1, le=10)] = 3
    """Attempts (including the first) for calls that are safe to retry."""


def tls_file_problems(settings: HttpSettings) -> list[tuple[str, str]]:
    """``(field, message)`` for each TLS file of ``settings`` that would not load."""
    problems = []
    for name in ("client_cert", "client_key", "ca_file"):
        file = getattr(settings, name)
        if file is not None and not os.access(file, os.R_OK):
            reason = "cannot be read" if os.path.exists(file) else "does not exist"
            problems.append((name, f"file {file} {reason}"))
    if not problems:
        try:
            _ssl_context(settings)
        except (ssl.SSLError, OSError) as exc:
            problems.append(("", f"the TLS files do not load: {exc.strerror or exc}"))
    return problems


def _ssl_context(settings: HttpSettings) -> ssl.SSLContext | bool:
    if settings.ca_file is None and settings.client_cert is None:
        return True
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    if settings.client_cert:
        ctx.load_cert_chain(settings.client_cert, settings.client_key)
    return ctx


def build_transport(settings: HttpSettings | None = None) -> httpx.AsyncBaseTransport:
    """The connections of a client built from ``settings``: TLS files, connection limit.

    Raises ``ssl.SSLError`` or ``OSError`` when the TLS files do not load.
    """
    settings = settings or HttpSettings()
    return AiohttpTransport(_ssl_context(settings), max_connections=settings.max_connections)


def build_client(
    base_url: str,
    settings: HttpSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
    mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with bounded timeouts, limits and optional mTLS.

    ``mounts`` routes URL patterns (``"https://rp.example:443"``) to their own
    transports, e.g. ``build_transport(HttpSettings(ca_file=...))`` trusting a
    private CA. ``transport`` replaces the network (tests).
    """
    settings = settings or HttpSettings()
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        follow_redirects=False,
        headers=headers,
        mounts=mounts,
        transport=transport or build_transport(settings),
    )


def is_transient(exc: BaseException) -> bool:
    """Timeouts, connection errors and 502/503/504 answers: worth another try."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in {502, 503, 504}
    return False


def never_sent(exc: BaseException) -> bool:
    """True when the request surely did not reach the upstream, so sending it again is safe.

    Only a connection that never opened (refused, connect timeout, no free pooled
    connection) qualifies: after a read timeout or a dropped answer the upstream
    may have acted (started an order, sent a text, consumed a grant).
    """
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def unavailable_status(status: int) -> bool:
    """5xx, 408 and 429: the upstream failed or is busy, so trying again later may succeed."""
    return status >= 500 or status in (408, 429)


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    attempts: int = 3,
    *,
    predicate: Callable[[BaseException], bool] = is_transient,
    max_wait: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """``await call()``, tried up to ``attempts`` times while ``predicate(error)`` holds.

    Waits 0.1 s before the second try, doubling each time up to ``max_wait``; the
    last error is raised. The first try runs outside tenacity: it nearly always
    succeeds, and building a retry policy per call cost more than a fast upstream
    call itself (bench/profiles/driver_scale). Only after a retryable failure is
    the policy built, for the remaining tries.
    """
    try:
        return await call()
    except Exception as exc:
        if attempts <= 1 or not predicate(exc):
            raise
    await (sleep or asyncio.sleep)(min(_FIRST_WAIT, max_wait))
    kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts - 1),
        wait=wait_exponential(multiplier=2 * _FIRST_WAIT, max=max_wait),
        retry=retry_if_exception(predicate),
        reraise=True,
        **kwargs,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: the policy reraises the last error")


class ErrorBoundary:
    """Base of a connector's error-translation boundary: ``with boundary: <upstream calls>``.

    A subclass implements ``translate``: for an exception escaping the block, the
    ``ConnectorError`` to raise instead (chained to it), or None to let it pass (a
    ConnectorError already, or a bug). As httpx maps transport exceptions in one
    context manager, each connector maps its upstream's failures in one place; a
    class, not a generator, so it costs next to nothing on a hot path.
    """

    __slots__ = ()

    def translate(self, exc: Exception) -> ConnectorError | None:
        """The ConnectorError ``exc`` stands for, or None to let ``exc`` pass."""
        raise NotImplementedError

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if not isinstance(exc, Exception) or isinstance(exc, ConnectorError):
            return False
        translated = self.translate(exc)
        if translated is None:
            return False
        raise translated from exc


class _Logger(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...


async def best_effort(
    call: Callable[[], Awaitable[object]],
    *,
    log: _Logger,
    event: str,
    deadline: float = BEST_EFFORT_DEADLINE,
    not_pending: Callable[[BaseException], bool] | None = None,
) -> bool:
    """Run a clean-up call that must not fail its caller; True when it completed.

    For an upstream cancel (the person may have finished meanwhile, the upstream
    may be down) and for closing clients. The call gets ``deadline`` seconds,
    retries included; a failure is swallowed and logged once: ``{event}_not_pending``
    (info) when ``not_pending(error)`` says the upstream had nothing left to cancel,
    else ``{event}_failed`` (warning) with the error's class and its text masked
    (``mask_text``: upstream errors may echo the person's identifiers). Task
    cancellation is never swallowed.
    """
    try:
        async with asyncio.timeout(deadline):
            await call()
    except Exception as exc:
        if not_pending is not None and not_pending(exc):
            log.info(f"{event}_not_pending")
            return False
        text = exc.description if isinstance(exc, ConnectorError) else str(exc)
        if isinstance(exc, TimeoutError) and not text:
            text = f"no answer within {deadline:g} s"
        log.warning(f"{event}_failed", error=type(exc).__name__, reason=mask_text(text)[:200])
        return False
    return True
