"""The connector's default transport (``build_transport``: aiohttp under httpx) on the wire.

No transport is injected: each test runs ``BankIDConnector`` against ``RawUpstream``, a
loopback server answering exact bytes, so what is checked is what goes over the socket -
the request BankID receives, keep-alive reuse, answer framings, and every failure of the
wire ending as ``UpstreamUnavailable``, never as another exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_bankid.connector import BankIDConnector, Config

from ciba_gateway.connector import (
    ConnectorDeps,
    HttpSettings,
    Pending,
    UpstreamUnavailable,
    build_transport,
)
from ciba_gateway.connector.testing import RawUpstream

PENDING = b'{"orderRef":"x","status":"pending","hintCode":"outstandingTransaction"}'
SESSION = {"orderRef": "x", "personalNumber": "199001011239"}


def framed(body: bytes, extra: bytes = b"") -> Callable[[bytes], bytes]:
    """A 200 JSON answer with Content-Length (and ``extra`` header lines)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra
    return lambda _: head + b"content-length: %d\r\n\r\n" % len(body) + body


def raw(answer: bytes) -> Callable[[bytes], bytes]:
    return lambda _: answer


@pytest.fixture
async def connect(deps: ConnectorDeps) -> AsyncIterator[Callable[..., BankIDConnector]]:
    """``connect(upstream, **http)``: a connector on its default transport, one try per call."""
    made: list[BankIDConnector] = []

    def factory(upstream: RawUpstream, **http: Any) -> BankIDConnector:
        settings = {"base_url": f"{upstream.url}/rp/v6.0", "http": {"retries": 1, **http}}
        connector = BankIDConnector(msgspec.convert(settings, Config), deps)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


async def test_keeps_one_connection_alive_and_sends_the_exact_request(
    connect: Callable[..., BankIDConnector],
) -> None:
    """Three collects, one connection; the request line, headers and body BankID expects."""
    async with RawUpstream(framed(PENDING)) as upstream:
        connector = connect(upstream)
        for _ in range(3):
            assert isinstance(await connector.poll(SESSION), Pending)
    assert upstream.connections == 1
    head, _, body = upstream.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /rp/v6.0/collect HTTP/1.1"
    headers = [line.partition(b":")[::2] for line in lines[1:]]
    content_types = [v.strip() for k, v in headers if k.lower() == b"content-type"]
    assert content_types == [b"application/json"]  # BankID answers 415 to a charset
    assert body == b'{"orderRef":"x"}'


async def test_concurrent_calls_stay_within_max_connections(
    connect: Callable[..., BankIDConnector],
) -> None:
    """With ``max_connections: 2``, eight concurrent collects share two connections."""
    async with RawUpstream(framed(PENDING), stall=0.05) as upstream:
        connector = connect(upstream, max_connections=2)
        results = await asyncio.gather(*(connector.poll(SESSION) for _ in range(8)))
    assert all(isinstance(r, Pending) for r in results)
    assert len(upstream.requests) == 8
    assert upstream.connections == 2


async def test_chunked_and_unframed_answers_are_read_whole(
    connect: Callable[..., BankIDConnector],
) -> None:
    """A chunked answer is joined (its connection reused); an unframed one is read to EOF."""
    chunked = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        b"10\r\n" + PENDING[:16] + b"\r\n"
        b"%x;ext=1\r\n" % (len(PENDING) - 16) + PENDING[16:] + b"\r\n0\r\n\r\n"
    )
    async with RawUpstream(raw(chunked)) as upstream:
        connector = connect(upstream)
        for _ in range(2):
            result = await connector.poll(SESSION)
            assert isinstance(result, Pending)
            assert result.hint == "outstandingTransaction"
    assert upstream.connections == 1

    unframed = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + PENDING
    async with RawUpstream(raw(unframed), hang_up=True) as upstream:
        result = await connect(upstream).poll(SESSION)
    assert isinstance(result, Pending)
    assert result.hint == "outstandingTransaction"


async def test_a_closed_connection_is_not_reused(
    connect: Callable[..., BankIDConnector],
) -> None:
    """``Connection: close``, or a server hanging up an idle keep-alive connection: a new one."""
    async with RawUpstream(framed(PENDING, b"connection: close\r\n"), hang_up=True) as upstream:
        connector = connect(upstream)
        for _ in range(2):
            assert isinstance(await connector.poll(SESSION), Pending)
    assert upstream.connections == 2

    async with RawUpstream(framed(PENDING), hang_up=True) as upstream:  # says keep-alive
        connector = connect(upstream)
        assert isinstance(await connector.poll(SESSION), Pending)
        await asyncio.sleep(0.05)  # the FIN reaches the idle connection
        assert isinstance(await connector.poll(SESSION), Pending)
    assert upstream.connections == 2


async def test_a_silent_upstream_times_out_as_unavailable(
    connect: Callable[..., BankIDConnector],
) -> None:
    """No answer within ``http.timeout``: UpstreamUnavailable after about that long."""
    async with RawUpstream(framed(PENDING), stall=5.0) as upstream:
        connector = connect(upstream, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await connector.poll(SESSION)
        waited = time.monotonic() - started
    assert 0.25 <= waited < 2.0


@pytest.mark.parametrize(
    ("answer", "options"),
    [
        pytest.param(b"", {"reset": True}, id="connection-reset"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n{",
            {"hang_up": True},
            id="body-cut-short",
        ),
        pytest.param(b"", {"hang_up": True}, id="closed-without-answer"),
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", {"hang_up": True}, id="not-http"),
        pytest.param(b"HTTP/1.1 2OO OK\r\n\r\n", {"hang_up": True}, id="bad-status-line"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
            {"hang_up": True},
            id="conflicting-lengths",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            {"hang_up": True},
            id="bad-chunk-size",
        ),
    ],
)
async def test_wire_failures_surface_as_upstream_unavailable(
    answer: bytes, options: dict[str, bool], connect: Callable[..., BankIDConnector]
) -> None:
    """A reset, a truncated body, silence or a malformed answer: UpstreamUnavailable only."""
    async with RawUpstream(raw(answer), **options) as upstream:
        with pytest.raises(UpstreamUnavailable):
            await connect(upstream).poll(SESSION)
    assert len(upstream.requests) == 1


async def test_refused_connection_is_unavailable(deps: ConnectorDeps) -> None:
    """Nothing listening: UpstreamUnavailable."""
    settings = {"base_url": "http://127.0.0.1:1/rp/v6.0", "http": {"retries": 1}}
    connector = BankIDConnector(msgspec.convert(settings, Config), deps)
    try:
        with pytest.raises(UpstreamUnavailable):
            await connector.poll(SESSION)
    finally:
        await connector.aclose()


async def test_the_transport_serves_another_event_loop() -> None:
    """A transport used from a second loop opens connections there (aiohttp binds to a loop)."""
    transport = build_transport(HttpSettings())
    async with RawUpstream(framed(PENDING)) as upstream:
        url = f"{upstream.url}/rp/v6.0/collect"
        async with httpx.AsyncClient(transport=transport) as client:
            first = await client.post(url, content=b"{}")

            def other_loop() -> int:
                async def call() -> int:
                    request = httpx.Request("POST", url, content=b"{}")
                    answer = await transport.handle_async_request(request)
                    await answer.aread()
                    await transport.aclose()
                    return answer.status_code

                return asyncio.run(call())

            second = await asyncio.to_thread(other_loop)
            third = await client.post(url, content=b"{}")
    assert (first.status_code, second, third.status_code) == (200, 200, 200)
    assert third.json()["status"] == "pending"
