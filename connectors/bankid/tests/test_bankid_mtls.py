"""Mutual TLS on the connector's own transport: the RP certificate and a pinned CA.

The simulator is served over TLS on a loopback port (``serve_mutual_tls``), requiring a
client certificate from a throwaway CA; the connector uses its default transport
(``build_transport``), no transport injected, as it would against the real service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from bankid_support import KARL, PERSONAS, start_request
from ciba_gateway_bankid.connector import BankIDConnector, Config
from ciba_gateway_bankid_sim.app import create_simulator

from ciba_gateway.connector import Approved, ConnectorDeps, UpstreamUnavailable
from ciba_gateway.connector.testing import TestPki, issue_test_pki, serve_mutual_tls


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return issue_test_pki(tmp_path, name="Test BankID")


@pytest.fixture
def tls_url(pki: TestPki) -> Iterator[str]:
    with serve_mutual_tls(create_simulator({"personas": PERSONAS}), pki) as url:
        yield url


def _connector(url: str, http: dict[str, object], deps: ConnectorDeps) -> BankIDConnector:
    config = msgspec.convert({"base_url": f"{url}/rp/v6.0", "http": http}, Config)
    return BankIDConnector(config, deps)


async def test_order_and_collect_over_mutual_tls(
    tls_url: str, pki: TestPki, deps: ConnectorDeps
) -> None:
    """With the RP certificate and the pinned CA: auth, then collect, on one TLS connection."""
    connector = _connector(tls_url, {"client_cert": pki.client, "ca_file": pki.ca}, deps)
    try:
        started = await connector.start(start_request(KARL))
        result = await connector.poll(started.session)
    finally:
        await connector.aclose()
    assert started.session["orderRef"]
    assert isinstance(result, Approved)
    assert result.identity.national_id == KARL


async def test_without_client_certificate_nothing_starts(
    tls_url: str, pki: TestPki, deps: ConnectorDeps
) -> None:
    """Without the RP certificate the handshake fails: upstream unavailable, no order."""
    connector = _connector(tls_url, {"ca_file": pki.ca, "retries": 1}, deps)
    try:
        with pytest.raises(UpstreamUnavailable):
            await connector.start(start_request(KARL))
    finally:
        await connector.aclose()


async def test_an_unpinned_server_certificate_is_refused(
    tls_url: str, pki: TestPki, deps: ConnectorDeps
) -> None:
    """With the client certificate but without the CA, the server's certificate fails."""
    connector = _connector(tls_url, {"client_cert": pki.client, "retries": 1}, deps)
    try:
        with pytest.raises(UpstreamUnavailable):
            await connector.start(start_request(KARL))
    finally:
        await connector.aclose()
