"""The httpx transport of every outbound client: aiohttp's HTTP/1.1 client underneath.

httpx builds requests and reads answers; aiohttp (its C response parser, fuzzed in
OSS-Fuzz, and its connection pool) does the wire. httpcore's pool costs about ten
times the CPU per call at the driver's concurrency (BENCHMARKS.md, "Upstream HTTP
client"), which is what a gateway polling thousands of orders every two seconds
pays. aiohttp's failures are raised as httpx's exception classes, so callers,
``is_transient`` and the retry policies see one family of errors.

HTTP/1.1 only, no proxies from the environment, no cookies, no redirects, no
decompression by aiohttp (httpx decodes ``Content-Encoding`` itself). The session
is opened on the first request, inside the running event loop, and is bound to it;
a request from another loop gets a session of its own.

``exchange`` sends one request and reads the whole answer. Through this transport it
skips httpx's Request and Response objects, which cost as much CPU as aiohttp's own
work for a small JSON call; through any other transport (a test's simulator) it
builds them as usual. A connector polling an upstream at scale calls it directly.

Both ways are traced here, once for every connector: inside an open span of the
gateway (``tracing.active()``) each request is a client span with its method,
host, port, scheme and status, never its path, query or body, and carries
``traceparent`` only when ``tracing.propagate`` is on.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import NamedTuple

import aiohttp
import httpx
from yarl import URL

from ciba_gateway.tracing import Span, Tracing, active

__all__ = ["AiohttpTransport", "Answer", "exchange"]

# An answer announcing at most this many bytes is read at once: the body of a JSON API
# call, without a stream to iterate. Longer or unannounced ones stream, so a caller
# that caps a body (JWKS, the CIBA connector) reads no more than its cap.
_READ_AT_ONCE = 64 * 1024

MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The largest answer ``exchange`` reads; a longer one is a ``RemoteProtocolError``."""

# Headers aiohttp would add on its own; httpx's request carries what should be sent.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")

# Most specific first: the first match decides httpx's class.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
    (TimeoutError, httpx.ReadTimeout),
)


class Answer(NamedTuple):
    """A whole upstream answer; ``headers`` match names case-insensitively."""

    status: int
    headers: Mapping[str, str]
    content: bytes


async def exchange(
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: httpx.URL,
    *,
    content: bytes = b"",
    headers: Mapping[str, str],
    timeouts: httpx.Timeout,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> Answer:
    """Send one request through ``transport`` and read its whole answer.

    Raises httpx's ``TransportError`` classes on any failure of the wire, and
    ``RemoteProtocolError`` for an answer over ``max_bytes``.
    """
    tracing = active()
    if tracing is None:
        return await _exchange(transport, method, url, content, headers, timeouts, max_bytes)
    with _http_span(tracing, method, url) as span:
        answer = await _exchange(
            transport, method, url, content, tracing.outgoing(headers), timeouts, max_bytes
        )
        _status(span, answer.status)
        return answer


def _http_span(tracing: Tracing, method: str, url: httpx.URL) -> AbstractContextManager[Span]:
    """The client span of one upstream request: where it went, not what it said."""
    return tracing.span(
        method,
        kind="client",
        attributes={
            "http.request.method": method,
            "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "url.scheme": url.scheme,
        },
    )


def _status(span: Span, status: int) -> None:
    span.set("http.response.status_code", status)
    if status >= 400:
        span.fail(str(status))


async def _exchange(
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: httpx.URL,
    content: bytes,
    headers: Mapping[str, str],
    timeouts: httpx.Timeout,
    max_bytes: int,
) -> Answer:
    if isinstance(transport, AiohttpTransport):
        return await transport.exchange(method, url, content, headers, timeouts, max_bytes)
    request = httpx.Request(
        method, url, headers=headers, content=content, extensions={"timeout": timeouts.as_dict()}
    )
    response = await transport.handle_async_request(request)
    try:
        chunks = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise httpx.RemoteProtocolError(f"answer larger than {max_bytes} bytes")
            chunks.append(chunk)
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, b"".join(chunks))


@contextmanager
def _mapped() -> Iterator[None]:
    """aiohttp's failures as httpx's exception classes (the cause stays chained)."""
    try:
        yield
    except httpx.HTTPError:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc) or type(exc).__name__) from exc
        raise  # unreachable: the last two rows cover both caught classes


class _Body(httpx.AsyncByteStream):
    """An answer's body as aiohttp reads it; closing hands the connection back."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


async def _read(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    length = response.content_length
    if length is not None and length <= max_bytes:
        return await response.read()
    chunks = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise httpx.RemoteProtocolError(f"answer larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most ``max_connections`` keep-alive connections, verified with ``tls``.

    ``tls`` is what aiohttp's ``ssl`` takes: ``True`` for the system's trust store,
    or a context (mutual TLS, a pinned CA). Timeouts come from each request's
    ``timeout`` extension, as httpx sets them. aiohttp bounds the wait for a free
    connection and the connect together, so that bound is pool + connect (either
    ends as ``ConnectTimeout``: nothing was sent); it has no separate write
    timeout, the read timeout runs from the moment the request is sent.
    """

    def __init__(
        self,
        tls: ssl.SSLContext | bool = True,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._tls = tls
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _session_here(self) -> aiohttp.ClientSession:
        """The session of the running loop (aiohttp's are bound to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._drop()
            connector = aiohttp.TCPConnector(
                ssl=self._tls,
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
                trust_env=False,
            )
            self._loop = loop
        return self._session

    def _drop(self) -> None:
        """Forget the session, closing it later in its own loop (e.g. a test's other loop)."""
        session, loop = self._session, self._loop
        self._session = self._loop = None
        if session is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._close_in_loop, session)

    def _close_in_loop(self, session: aiohttp.ClientSession) -> None:
        task = asyncio.ensure_future(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _timeout(
        self, pool: float | None, connect: float | None, read: float | None
    ) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for httpx's (one object per distinct setting, reused)."""
        key = (pool, connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=None if pool is None or connect is None else pool + connect,
                sock_connect=connect,
                sock_read=read,
            )
            self._timeouts[key] = timeout
        return timeout

    async def exchange(
        self,
        method: str,
        url: httpx.URL,
        content: bytes,
        headers: Mapping[str, str],
        timeouts: httpx.Timeout,
        max_bytes: int,
    ) -> Answer:
        """``exchange`` on aiohttp alone; the answer is decompressed here."""
        session = self._session_here()
        with _mapped():
            async with session.request(
                method,
                URL(str(url), encoded=True),
                headers=headers,
                data=content or None,
                allow_redirects=False,
                auto_decompress=True,
                timeout=self._timeout(timeouts.pool, timeouts.connect, timeouts.read),
            ) as response:
                return Answer(response.status, response.headers, await _read(response, max_bytes))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the answer's body streams from the connection."""
        tracing = active()
        if tracing is None:
            return await self._send(request)
        with _http_span(tracing, request.method, request.url) as span:
            for name, value in tracing.outgoing({}).items():
                request.headers[name] = value
            response = await self._send(request)
            _status(span, response.status_code)
            return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        session = self._session_here()
        given = request.extensions.get("timeout", {})
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        with _mapped():
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(given.get("pool"), given.get("connect"), given.get("read")),
            )
            extensions = {
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1"),
            }
            length = response.content_length
            if length is not None and length <= _READ_AT_ONCE:
                try:
                    content = await response.read()
                finally:
                    response.release()
                return httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    content=content,
                    extensions=extensions,
                )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        """Close every connection; a later request opens a new session."""
        if self._session is not None and self._loop is asyncio.get_running_loop():
            session, self._session = self._session, None
            await session.close()
        else:
            self._drop()
