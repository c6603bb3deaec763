"""uvicorn under ``serve --server uvicorn`` closes connections whose headers dribble in."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from ciba_gateway.servers import HEADER_TIMEOUT, UVICORN_OPTIONS, HeaderTimeoutProtocol


class QuickTimeout(HeaderTimeoutProtocol):
    header_timeout = 0.5


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        hello, http=QuickTimeout, lifespan="off", log_config=None, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def closed_within(conn: socket.socket, seconds: float, drip: bytes = b"") -> bool:
    """True when the server closes ``conn`` within ``seconds`` while we drip a byte a tick."""
    conn.settimeout(0.1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if conn.recv(1024) == b"":
                return True
        except TimeoutError:
            pass
        except ConnectionResetError:
            return True
        if drip:
            try:
                conn.sendall(drip)
            except (BrokenPipeError, ConnectionResetError):
                return True
    return False


def test_serve_uses_the_protocol_with_granians_limit() -> None:
    """serve's uvicorn options name the protocol; its deadline is 30 s like granian's."""
    assert UVICORN_OPTIONS["http"] is HeaderTimeoutProtocol
    assert HEADER_TIMEOUT == 30.0


def test_dribbled_headers_are_cut_off(port: int) -> None:
    """A client that sends one header byte at a time is disconnected at the deadline."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert closed_within(conn, 3.0, drip=b"a")


def test_silent_connection_is_cut_off(port: int) -> None:
    """A connection that never sends a byte does not stay open either."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        assert closed_within(conn, 3.0)


def test_prompt_requests_are_served_and_kept_alive(port: int) -> None:
    """Headers sent in time get their answer, twice on one keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(5)
        for _ in range(2):
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = conn.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200") and b"ok" in answer
            time.sleep(0.8)  # longer than the header deadline, while idle: still open
