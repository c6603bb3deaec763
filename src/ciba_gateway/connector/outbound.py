"""The one builder of outbound HTTP clients and retry policies, for core and connectors.

Every client gets explicit timeouts and connection limits, optional mutual TLS
(client certificate + key, pinned CA bundle) and never follows redirects. Its
connections are ``transport.AiohttpTransport``'s (aiohttp under httpx).
Retry policies are tenacity ``AsyncRetrying`` objects with an explicit stop,
wait and predicate (tenacity's defaults retry forever).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import httpx
import msgspec
from msgspec import Meta
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ciba_gateway.connector.transport import AiohttpTransport

__all__ = [
    "HttpSettings",
    "build_client",
    "build_transport",
    "call_with_retries",
    "is_transient",
    "retrying",
    "tls_file_problems",
]

T = TypeVar("T")
_FIRST_WAIT = 0.1
"""Seconds before the second try; each later wait doubles, up to ``max_wait``."""


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


def retrying(
    attempts: int = 3,
    *,
    predicate: Callable[[BaseException], bool] = is_transient,
    max_wait: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """A bounded retry policy: ``attempts`` tries, exponential wait up to ``max_wait`` s."""
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=_FIRST_WAIT, max=max_wait),
        retry=retry_if_exception(predicate),
        reraise=True,
        **kwargs,
    )


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    attempts: int = 3,
    *,
    predicate: Callable[[BaseException], bool] = is_transient,
    max_wait: float = 2.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """``await call()`` with the tries and waits of ``retrying(attempts, ...)``.

    The first try runs outside tenacity: it nearly always succeeds, and building
    a retry policy per call cost more than a fast upstream call itself
    (bench/profiles/driver_scale). Only after a retryable failure is the policy
    built, for the remaining tries, with the waits they would have had.
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
