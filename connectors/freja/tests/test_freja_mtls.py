"""Mutual TLS: the connector presents its RP certificate and pins Freja's CA (http settings).

The simulator is served by uvicorn over TLS on a loopback port, requiring a client
certificate signed by a test CA generated here; the connector talks to it over the
network with no transport injected.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_freja.connector import Config, FrejaConnector
from ciba_gateway_freja_sim.app import create_simulator
from freja_support import CERT_FILE, KARL, KEY_FILE, PERSONAS, start_request

from ciba_gateway.connector import ConnectorDeps, UpstreamUnavailable
from ciba_gateway.connector.testing import FakeClock, TestPki, issue_test_pki, serve_mutual_tls


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    """A CA, a server certificate for 127.0.0.1 and an RP client certificate."""
    return issue_test_pki(tmp_path, name="Test Freja")


@pytest.fixture
def tls_url(pki: TestPki) -> Iterator[str]:
    clock = FakeClock(time.time())
    app = create_simulator(
        {"personas": PERSONAS, "signing_key_file": KEY_FILE, "signing_cert_file": CERT_FILE},
        clock=clock,
    )
    with serve_mutual_tls(app, pki) as url:
        yield url


def _connector(url: str, http: dict[str, object], deps: ConnectorDeps) -> FrejaConnector:
    config = msgspec.convert(
        {"base_url": url, "trusted_certs": [CERT_FILE], "http": {"retries": 1, **http}}, Config
    )
    return FrejaConnector(config, deps)


async def test_start_over_mutual_tls(tls_url: str, pki: TestPki, deps: ConnectorDeps) -> None:
    """With the RP certificate and the pinned CA the connector starts an authentication."""
    connector = _connector(tls_url, {"client_cert": pki.client, "ca_file": pki.ca}, deps)
    try:
        started = await connector.start(start_request(KARL))
    finally:
        await connector.aclose()

    assert started.session["authRef"]


async def test_without_client_certificate_the_server_refuses(
    tls_url: str, pki: TestPki, deps: ConnectorDeps
) -> None:
    """Without the RP certificate the TLS handshake fails: unavailable, never a start."""
    connector = _connector(tls_url, {"ca_file": pki.ca}, deps)
    try:
        with pytest.raises(UpstreamUnavailable):
            await connector.start(start_request(KARL))
    finally:
        await connector.aclose()
