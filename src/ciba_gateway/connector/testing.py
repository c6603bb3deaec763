"""Test helpers for connector authors: contract checks, a throwaway PKI, loopback servers.

**Contract checks** every connector's tests run against its own simulator: subclass
each ``...Contract`` class in a test module (``class TestIdentity(IdentityContract)``)
and provide the fixture it names; pytest collects the inherited tests. So far:

- ``IdentityContract``: the person who approved is the person who was asked.

A connector that talks to its upstream over mTLS (``HttpSettings.client_cert``,
``client_key``, ``ca_file``) can prove it against its own simulator::

    pki = issue_test_pki(tmp_path)
    with serve_mutual_tls(create_simulator(settings), pki) as url:
        connector = MyConnector(Config(base_url=url, http={"client_cert": pki.client,
                                                           "ca_file": pki.ca}), deps)

``serve_http`` serves a simulator for a browser; ``chromium()`` opens Debian's
Chromium through Playwright, so a test can read a phone page back.

Not for production use: keys are unencrypted files, certificates last two days.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from ciba_gateway.connector.api import IDENTITY_MISMATCH, Approved, Failed, PollResult

__all__ = [
    "CHROMIUM",
    "IdentityContract",
    "Settle",
    "TestPki",
    "chromium",
    "issue_self_signed_certificate",
    "issue_test_pki",
    "serve_http",
    "serve_mutual_tls",
]

Settle = Callable[..., Awaitable[PollResult]]
"""``await settle(impostor=False)``: the connector's final answer for one request."""


class IdentityContract:
    """A connector never approves a request for someone other than the person it was asked for.

    Provide a ``settle`` fixture (a ``Settle``): it starts a request for one person
    against the connector's simulator, makes the simulator approve it, as that person
    or (``impostor=True``) reporting another person, and returns the connector's
    final answer: what ``poll`` returned, or the outcome it passed to
    ``ConnectorDeps.resolve``. Set ``pii`` to the identifiers of both people
    (personal numbers, phones, e-mails) so the check can prove no log carries them.
    """

    pii: tuple[str, ...] = ()

    async def test_the_person_asked_is_approved(self, settle: Settle) -> None:
        """Control: when the asked person approves, the outcome is Approved."""
        outcome = await settle(impostor=False)
        assert isinstance(outcome, Approved), outcome

    async def test_another_person_fails_the_request(self, settle: Settle) -> None:
        """An approval reporting another person is Failed, logged as a security event."""
        with capture_logs() as logs:
            outcome = await settle(impostor=True)
        assert isinstance(outcome, Failed), outcome
        events = [e for e in logs if e.get("event") == IDENTITY_MISMATCH]
        assert len(events) == 1, logs
        assert events[0]["log_level"] == "warning"
        assert events[0]["security_event"] is True

    async def test_no_identifier_reaches_the_log(self, settle: Settle) -> None:
        """Neither person's identifier appears in any log event of the mismatch."""
        assert self.pii, "set pii to the identifiers of both people"
        with capture_logs() as logs:
            await settle(impostor=True)
        text = repr(logs)
        assert not [value for value in self.pii if value in text]


@dataclass(frozen=True)
class TestPki:
    """PEM file paths: the CA certificate, and server / client certificate+key bundles."""

    __test__ = False  # a helper, not a pytest test class

    ca: str
    server: str
    client: str


def _issue(
    subject: str,
    not_before: dt.datetime,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[1].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return key, builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def _bundle(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> str:
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def issue_test_pki(directory: Path, *, name: str = "Test") -> TestPki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, under ``directory``."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca = _issue(f"{name} Root CA", start, ca=True)
    server = _issue("upstream.test", start, ca, ip="127.0.0.1")
    client = _issue(f"{name} RP", start, ca)
    (directory / "ca.pem").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    return TestPki(
        ca=str(directory / "ca.pem"),
        server=_bundle(directory / "server.pem", *server),
        client=_bundle(directory / "client.pem", *client),
    )


def issue_self_signed_certificate(directory: Path, *, name: str = "Self-signed RP") -> str:
    """A self-signed client certificate + key bundle (``self_signed_tls_client_auth``)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    key, cert = _issue(name, start)
    return _bundle(directory / "self-signed.pem", key, cert)


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
