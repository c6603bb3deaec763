"""Mutual TLS: the connector presents its RP certificate and pins Freja's CA (http settings).

The simulator is served by uvicorn over TLS on a loopback port, requiring a client
certificate signed by a test CA generated here; the connector talks to it over the
network with no transport injected.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import uvicorn
from ciba_gateway_freja.connector import Config, FrejaConnector
from ciba_gateway_freja.simulator import create_simulator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from freja_support import CERT_FILE, KARL, KEY_FILE, PERSONAS, FakeClock, start_request

from ciba_gateway.connector import ConnectorDeps, UpstreamUnavailable

_START = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)


def _issue(
    subject: str,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    issuer: x509.Certificate | None = None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_START)
        .not_valid_after(_START + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and an RP client certificate."""
    ca_key, ca = _issue("Test Freja Root CA", ca=True)
    server_key, server = _issue("services.test", ca_key, ca, ip="127.0.0.1")
    client_key, client = _issue("Test RP", ca_key, ca)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write(tmp_path / "server.pem", server_key, server)
    _write(tmp_path / "client.pem", client_key, client)
    return {name: str(tmp_path / f"{name}.pem") for name in ("ca", "server", "client")}


@pytest.fixture
def tls_url(pki: dict[str, str]) -> Iterator[str]:
    clock = FakeClock(time.time())
    app = create_simulator(
        {"personas": PERSONAS, "signing_key_file": KEY_FILE, "signing_cert_file": CERT_FILE},
        clock=clock,
    )
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
        ssl_certfile=pki["server"],
        ssl_ca_certs=pki["ca"],
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _connector(url: str, http: dict[str, object], deps: ConnectorDeps) -> FrejaConnector:
    config = msgspec.convert(
        {"base_url": url, "trusted_certs": [CERT_FILE], "http": {"retries": 1, **http}}, Config
    )
    return FrejaConnector(config, deps)


async def test_start_over_mutual_tls(
    tls_url: str, pki: dict[str, str], deps: ConnectorDeps
) -> None:
    """With the RP certificate and the pinned CA the connector starts an authentication."""
    connector = _connector(tls_url, {"client_cert": pki["client"], "ca_file": pki["ca"]}, deps)
    try:
        started = await connector.start(start_request(KARL))
    finally:
        await connector.aclose()

    assert started.session["authRef"]


async def test_without_client_certificate_the_server_refuses(
    tls_url: str, pki: dict[str, str], deps: ConnectorDeps
) -> None:
    """Without the RP certificate the TLS handshake fails: unavailable, never a start."""
    connector = _connector(tls_url, {"ca_file": pki["ca"]}, deps)
    try:
        with pytest.raises(UpstreamUnavailable):
            await connector.start(start_request(KARL))
    finally:
        await connector.aclose()
