"""build_client's transport (aiohttp under httpx) and ``exchange``, against raw loopback servers."""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest

from ciba_gateway.connector import HttpSettings, build_client, build_transport, exchange
from ciba_gateway.connector.testing import RawUpstream

BIG = bytes(range(256)) * 800  # 200 KiB: longer than what is read at once


def chunked(body: bytes, size: int = 16_384) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(parts) + b"0\r\n\r\n"


async def test_a_long_answer_streams_whole_and_the_connection_is_reused() -> None:
    """An unannounced 200 KiB body streams whole; the next call reuses the connection."""
    async with RawUpstream(lambda _: chunked(BIG)) as upstream:
        async with build_client(upstream.url) as client:
            for _ in range(2):
                async with client.stream("GET", "/big") as response:
                    pieces = [chunk async for chunk in response.aiter_bytes()]
                assert b"".join(pieces) == BIG
    assert upstream.connections == 1


async def test_a_compressed_answer_is_decoded_once() -> None:
    """httpx decodes Content-Encoding; aiohttp must not have done it already."""
    body = gzip.compress(b'{"keys": []}')
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )
    async with RawUpstream(lambda _: answer) as upstream:
        async with build_client(upstream.url) as client:
            response = await client.get("/jwks")
    assert response.json() == {"keys": []}
    assert b"accept-encoding: gzip" in upstream.requests[0].lower()


async def test_a_stream_cut_short_is_an_httpx_error() -> None:
    """The server hangs up mid-body: the reader gets httpx's RemoteProtocolError."""
    cut = chunked(BIG)[:50_000]
    async with RawUpstream(lambda _: cut, hang_up=True) as upstream:
        async with build_client(upstream.url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.stream("GET", "/big") as response:
                    async for _ in response.aiter_bytes():
                        pass


@pytest.mark.parametrize("announced", [True, False])
async def test_exchange_refuses_an_answer_over_max_bytes(announced: bool) -> None:
    """Over ``max_bytes``, announced or streamed: RemoteProtocolError, on either transport."""
    long = (
        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(BIG) + BIG
        if announced
        else chunked(BIG)
    )
    timeouts = httpx.Timeout(2.0)
    async with RawUpstream(lambda _: long) as upstream:
        url = httpx.URL(upstream.url + "/x")
        fast = build_transport(HttpSettings())
        answer = await exchange(fast, "GET", url, headers={}, timeouts=timeouts)
        assert answer.content == BIG
        with pytest.raises(httpx.RemoteProtocolError):
            await exchange(fast, "GET", url, headers={}, timeouts=timeouts, max_bytes=10_000)
        await fast.aclose()
    other = httpx.MockTransport(lambda _: httpx.Response(200, content=BIG))
    assert (await exchange(other, "GET", url, headers={}, timeouts=timeouts)).content == BIG
    with pytest.raises(httpx.RemoteProtocolError):
        await exchange(other, "GET", url, headers={}, timeouts=timeouts, max_bytes=10_000)


async def test_only_failures_before_sending_are_connect_errors() -> None:
    """Refused, or no free connection in time: ConnectError/ConnectTimeout (the request surely
    never left, so a BankID start may be sent again); a stall or reset after sending is not."""
    post = {"content": b"{}", "headers": {}, "timeouts": httpx.Timeout(0.6, connect=0.1, pool=0.1)}
    transport = build_transport(HttpSettings(max_connections=1))
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    try:
        with pytest.raises(httpx.ConnectError):
            await exchange(transport, "POST", httpx.URL("http://127.0.0.1:1/x"), **post)
        async with RawUpstream(lambda _: answer, stall=1.0) as upstream:
            url = httpx.URL(upstream.url + "/x")
            busy = asyncio.ensure_future(exchange(transport, "POST", url, **post))
            await asyncio.sleep(0.05)  # the only connection is taken
            with pytest.raises(httpx.ConnectTimeout):
                await exchange(transport, "POST", url, **post)
            with pytest.raises(httpx.ReadTimeout):
                await busy
        async with RawUpstream(lambda _: b"", reset=True) as upstream:
            with pytest.raises(httpx.TransportError) as reset:
                await exchange(transport, "POST", httpx.URL(upstream.url + "/x"), **post)
        assert not isinstance(reset.value, httpx.ConnectError | httpx.ConnectTimeout)
    finally:
        await transport.aclose()
