"""The lean HTTP/1.1 pool under httpx, against small asyncio servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from ciba_gateway_bankid.transport import lean_transport

from ciba_gateway.connector import HttpSettings


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


class Server:
    """A loopback server running ``answer(request) -> bytes`` per request; counts connections."""

    def __init__(self, answer: Callable[[bytes], bytes], *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                self.requests.append(request)
                writer.write(self.answer(request))
                await writer.drain()
                if self.close_after:
                    return
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Server], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(server: Server) -> str:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for srv in servers:
        srv.close()


def _ok(body: bytes, extra: bytes = b"") -> Callable[[bytes], bytes]:
    return lambda _: (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


async def _post(transport: httpx.AsyncBaseTransport, url: str, body: bytes) -> httpx.Response:
    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={"Content-Type": "application/json"},
        extensions={"timeout": httpx.Timeout(2.0).as_dict()},
    )
    response = await transport.handle_async_request(request)
    await response.aread()
    return response


async def test_keeps_the_connection_alive(serve: Callable[[Server], Awaitable[str]]) -> None:
    """Three calls, one connection; the request goes out with its body and headers."""
    server = Server(_ok(b'{"status":"pending"}'))
    base = await serve(server)
    transport = lean_transport(HttpSettings())
    for _ in range(3):
        response = await _post(transport, f"{base}/rp/v6.0/collect", b'{"orderRef":"x"}')
        assert response.status_code == 200
        assert response.json() == {"status": "pending"}
    await transport.aclose()
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /rp/v6.0/collect HTTP/1.1\r\n")
    assert server.requests[0].endswith(b'\r\n\r\n{"orderRef":"x"}')


async def test_reads_chunked_answers(serve: Callable[[Server], Awaitable[str]]) -> None:
    """A chunked body is joined; the connection is reused afterwards."""
    answer = (
        b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n"
        b'5\r\n{"err\r\n7;x=y\r\norCode"\r\n6\r\n:"a"}\n\r\n0\r\n\r\n'
    )
    server = Server(lambda _: answer)
    base = await serve(server)
    transport = lean_transport(HttpSettings())
    for _ in range(2):
        response = await _post(transport, base + "/x", b"{}")
        assert response.status_code == 400
        assert response.content == b'{"errorCode":"a"}\n'
    await transport.aclose()
    assert server.connections == 1


async def test_connection_close_opens_a_new_connection(
    serve: Callable[[Server], Awaitable[str]],
) -> None:
    """An answer with Connection: close, or a server that hangs up, is not reused."""
    server = Server(_ok(b"{}", b"connection: close\r\n"), close_after=True)
    base = await serve(server)
    transport = lean_transport(HttpSettings())
    for _ in range(2):
        assert (await _post(transport, base + "/x", b"{}")).status_code == 200
    await transport.aclose()
    assert server.connections == 2


async def test_idle_connection_closed_by_the_server_is_not_reused(
    serve: Callable[[Server], Awaitable[str]],
) -> None:
    """A keep-alive connection the server closed while idle is dropped, not written to."""
    server = Server(_ok(b"{}"), close_after=True)  # says keep-alive, then hangs up
    base = await serve(server)
    transport = lean_transport(HttpSettings())
    assert (await _post(transport, base + "/x", b"{}")).status_code == 200
    await asyncio.sleep(0.05)  # the EOF reaches the idle connection
    assert (await _post(transport, base + "/x", b"{}")).status_code == 200
    await transport.aclose()
    assert server.connections == 2


async def test_errors_are_httpx_errors(serve: Callable[[Server], Awaitable[str]]) -> None:
    """Refused connection, silent server and a dropped answer map to httpx's classes."""
    transport = lean_transport(HttpSettings())
    with pytest.raises(httpx.ConnectError):
        await _post(transport, "http://127.0.0.1:1/x", b"{}")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    request = httpx.Request(
        "POST",
        f"http://127.0.0.1:{port}/x",
        content=b"{}",
        extensions={"timeout": httpx.Timeout(0.2).as_dict()},
    )
    with pytest.raises(httpx.ReadTimeout):
        await transport.handle_async_request(request)
    srv.close()

    half = Server(lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: 64\r\n\r\n{", close_after=True)
    base = await serve(half)
    with pytest.raises(httpx.RemoteProtocolError):
        await _post(transport, base + "/x", b"{}")
    await transport.aclose()


async def test_reads_an_unframed_body_to_the_end() -> None:
    """No Content-Length and not chunked: the body is everything until the server closes."""
    first, second = b'{"status":"pen', b'ding","hintCode":"started"}'

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + first)
        await writer.drain()
        await asyncio.sleep(0.05)  # the rest arrives in a second segment
        writer.write(second)
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    transport = lean_transport(HttpSettings())
    response = await _post(transport, f"http://127.0.0.1:{port}/collect", b"{}")
    await transport.aclose()
    srv.close()
    assert response.content == first + second
    assert response.json() == {"status": "pending", "hintCode": "started"}
