"""Loopback servers for simulators (plain HTTP, mutual TLS), a raw one, a headless Chromium."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from ciba_gateway.connector.testing.pki import TestPki


@contextmanager
def _serve(app: Any, scheme: str, **tls: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="critical",
        lifespan="off",
        http="h11",
        ws="none",
        **tls,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_mutual_tls(app: Any, pki: TestPki) -> Iterator[str]:
    """Serve ``app`` (ASGI) on a loopback port over TLS that requires a client certificate.

    Yields the ``https://127.0.0.1:PORT`` base URL; the server runs in a thread
    and stops when the block ends.
    """
    with _serve(
        app,
        "https",
        ssl_certfile=pki.server,
        ssl_ca_certs=pki.ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as url:
        yield url


@contextmanager
def serve_http(app: Any) -> Iterator[str]:
    """Serve ``app`` (ASGI, e.g. a simulator for a browser test) over plain HTTP on loopback.

    Yields the ``http://127.0.0.1:PORT`` base URL; the server runs in a thread.
    """
    with _serve(app, "http") as url:
        yield url


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


class RawUpstream:
    """A loopback server that answers exact bytes: for tests of a connector's wire.

    ``answer(request)`` returns the bytes written for each request (the request is
    its head and Content-Length body as received). ``hang_up`` closes the
    connection after each answer, ``reset`` resets it (RST) instead of answering,
    ``stall`` waits that many seconds first. ``connections`` and ``requests``
    record what arrived::

        async with RawUpstream(lambda _: b"HTTP/1.1 200 OK\r\n...") as upstream:
            connector = MyConnector(Config(base_url=upstream.url), deps)
    """

    def __init__(
        self,
        answer: Callable[[bytes], bytes],
        *,
        hang_up: bool = False,
        reset: bool = False,
        stall: float = 0.0,
    ) -> None:
        self.answer = answer
        self.hang_up = hang_up
        self.reset = reset
        self.stall = stall
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while the server runs."""
        assert self._server is not None, "use RawUpstream in an async with block"
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(request)
                await asyncio.sleep(self.stall)
                if self.reset:  # SO_LINGER 0: close sends RST, not FIN
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                writer.write(self.answer(request))
                await writer.drain()
                if self.hang_up:
                    return
        finally:
            writer.close()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium driven by Playwright (no ``playwright install``); yields the browser.

    Raises:
        RuntimeError: Chromium or Playwright is missing (browser tests fail, never skip).
    """
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - one stat before a browser start
        raise RuntimeError(f"Chromium is required at {CHROMIUM}: apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise RuntimeError(
            "browser tests need Playwright for Python: pip install playwright"
        ) from None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
