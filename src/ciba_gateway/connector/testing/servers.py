"""Loopback servers for simulators (plain HTTP, mutual TLS) and a headless Chromium."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
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
