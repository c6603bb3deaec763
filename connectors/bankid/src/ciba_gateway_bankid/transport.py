"""A lean HTTP/1.1 connection pool under httpx, for the connector's calls to BankID.

httpcore's pool (over anyio and h11) costs the gateway 0.5-2 ms of CPU per BankID
call and grows with the number of connections (bench/profiles/); the driver
makes one call per pending order every two seconds. This pool keeps idle
keep-alive connections on asyncio streams and speaks the HTTP/1.1 that the RP API
needs: a request with a body, an answer with Content-Length, chunked, or
read-until-close. No proxies, no HTTP/2, no upgrades.

It plugs in as the ``_pool`` of an ``httpx.AsyncHTTPTransport``, so httpx still
builds requests, maps errors (it raises httpcore's exception classes) and decodes
answers, and tools that patch the transport (vcrpy) keep working.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, Iterable

import httpcore
import httpx

from ciba_gateway.connector import HttpSettings

__all__ = ["Http11Pool", "lean_transport"]

_MAX_HEADERS = 100
_MAX_BODY = 16 * 1024 * 1024
_DEFAULT_PORTS = {b"http": 80, b"https": 443}

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def lean_transport(settings: HttpSettings) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections are an ``Http11Pool`` built from ``settings``."""
    transport = httpx.AsyncHTTPTransport()
    transport._pool = Http11Pool(settings)  # type: ignore[assignment]
    return transport


def _ssl_context(settings: HttpSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    if settings.client_cert:
        ctx.load_cert_chain(settings.client_cert, settings.client_key)
    return ctx


class Http11Pool:
    """Keep-alive connections per origin, at most ``max_connections`` in use at once."""

    def __init__(self, settings: HttpSettings) -> None:
        self._settings = settings
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[tuple[bytes, bytes, int], list[Conn]] = {}
        self._slots = asyncio.Semaphore(settings.max_connections)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` and read the whole answer (httpcore's pool interface)."""
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80))
        body = await _read_all(request.stream)
        if self._slots.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpcore.PoolTimeout("no free connection in time") from None
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            conn = self._reuse(origin) or await self._connect(origin, timeouts.get("connect"))
            reader, writer = conn
            try:
                head = [request.method + b" " + url.target + b" HTTP/1.1\r\n"]
                head += [name + b": " + value + b"\r\n" for name, value in request.headers]
                writer.write(b"".join(head) + b"\r\n" + body)
                try:
                    async with asyncio.timeout(timeouts.get("write")):
                        await writer.drain()
                except TimeoutError:
                    raise httpcore.WriteTimeout("timed out sending the request") from None
                except OSError as exc:
                    raise httpcore.WriteError(str(exc)) from exc
                # The read timeout bounds the whole answer (httpcore's bounds each read;
                # the RP API's answers are a few hundred bytes).
                try:
                    async with asyncio.timeout(timeouts.get("read")):
                        answer = await _read_response(reader, request.method == b"HEAD")
                except TimeoutError:
                    raise httpcore.ReadTimeout("timed out reading the answer") from None
                status, reason, headers, content, keep = answer
            except BaseException:
                writer.close()
                raise
            if keep:
                self._idle.setdefault(origin, []).append(conn)
            else:
                writer.close()
        finally:
            self._slots.release()
        return httpcore.Response(
            status,
            headers=headers,
            content=content,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    def _reuse(self, origin: tuple[bytes, bytes, int]) -> Conn | None:
        idle = self._idle.get(origin)
        while idle:
            reader, writer = idle.pop()
            # The server may have closed it while idle: asyncio has seen the EOF.
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def _connect(self, origin: tuple[bytes, bytes, int], seconds: float | None) -> Conn:
        scheme, host, port = origin
        name = host.decode("ascii")
        tls: ssl.SSLContext | None = None
        if scheme == b"https":
            if self._ssl is None:
                self._ssl = _ssl_context(self._settings)
            tls = self._ssl
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.open_connection(
                    name, port, ssl=tls, server_hostname=name if tls else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {name}:{port}") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc

    async def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for _, writer in idle:
                writer.close()
        self._idle.clear()

    async def __aenter__(self) -> Http11Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _read_all(stream: Iterable[bytes] | AsyncIterable[bytes]) -> bytes:
    if isinstance(stream, bytes | bytearray):
        return bytes(stream)
    if isinstance(stream, AsyncIterable):
        return b"".join([chunk async for chunk in stream])
    return b"".join(stream)


async def _read_response(
    reader: asyncio.StreamReader, head_only: bool
) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
    """(status, reason, headers, body, keep-alive) of one answer."""
    try:
        line = await reader.readline()
        if not line:
            raise httpcore.RemoteProtocolError("Server disconnected without sending a response.")
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise httpcore.RemoteProtocolError(f"malformed status line {line[:80]!r}")
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        keep = version == b"HTTP/1.1"
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line or len(headers) >= _MAX_HEADERS:
                raise httpcore.RemoteProtocolError("malformed or endless header section")
            name, colon, value = line.partition(b":")
            if not colon:
                raise httpcore.RemoteProtocolError(f"malformed header line {line[:80]!r}")
            name, value = name.strip(), value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lower == b"connection":
                keep = b"close" not in value.lower() and (keep or b"keep-alive" in value.lower())
        status = int(code)
        if head_only or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = await _read_chunked(reader)
        elif length is not None:
            if length > _MAX_BODY:
                raise httpcore.RemoteProtocolError("answer body too large")
            body = await reader.readexactly(length)
        else:
            body = await _read_until_close(reader)
            keep = False
    except asyncio.IncompleteReadError:
        raise httpcore.RemoteProtocolError("Server disconnected mid-answer.") from None
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise httpcore.RemoteProtocolError(f"malformed answer: {exc}") from None
    except (ConnectionError, OSError) as exc:
        raise httpcore.ReadError(str(exc)) from exc
    return status, reason, headers, body, keep


async def _read_until_close(reader: asyncio.StreamReader) -> bytes:
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read to EOF.
    parts: list[bytes] = []
    total = 0
    while chunk := await reader.read(65_536):
        total += len(chunk)
        if total > _MAX_BODY:
            raise httpcore.RemoteProtocolError("answer body too large")
        parts.append(chunk)
    return b"".join(parts)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise httpcore.RemoteProtocolError("answer body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
