"""In a real browser: the Freja simulator's phone shows exactly the text the person signs.

The simulator runs under uvicorn on a loopback port (real clock, a fresh signing
key), the connector calls it over real HTTP and trusts the certificate the
simulator publishes, and headless Chromium reads the phone page back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_freja.connector import Config, FrejaConnector
from ciba_gateway_freja_sim.app import create_simulator
from freja_support import start_request

from ciba_gateway.connector import Approved, ConnectorDeps
from ciba_gateway.connector.details import render, validate
from ciba_gateway.connector.testing import chromium, serve_http

TOLVAN = "191212121212"  # a default persona who waits for the phone page
PAYMENT = validate(
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "NOK", "amount": "12500.5"},
        "creditorName": "Fjord & Co <AS>",
        "creditorAccount": {"iban": "NO9386011117947"},
        "remittanceInformationUnstructured": "KID 1234567",
    }
)


@pytest.fixture
def simulator_url() -> Iterator[str]:
    with serve_http(create_simulator()) as url:
        yield url


@pytest.fixture
def clock() -> Callable[[], float]:
    """The live simulator signs with the wall clock, so the connector checks against it."""
    return time.time


@pytest.fixture
async def live_connector(simulator_url: str, deps: ConnectorDeps) -> AsyncIterator[FrejaConnector]:
    async with httpx.AsyncClient() as http:
        cert = (await http.get(f"{simulator_url}/signing-cert.pem")).text
    config = msgspec.convert({"base_url": simulator_url, "trusted_certs": [cert]}, Config)
    connector = FrejaConnector(config, deps)
    yield connector
    await connector.aclose()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def test_phone_page_shows_the_text_to_sign(
    live_connector: FrejaConnector, browser: Any, simulator_url: str
) -> None:
    """Chromium reads the signing text off the phone page: the renderer's plain text."""
    details = (PAYMENT,)
    started = await live_connector.start(
        start_request(TOLVAN, authorization_details=details, binding_message="K7")
    )
    expected = render(details, client_name="Demo Bank", binding_message="K7").text

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await page.goto(f"{simulator_url}/phone")
    shown = await page.locator(".text .line").all_text_contents()
    assert "\n".join(shown) == expected
    assert "Amount: 12 500.50 NOK" in shown
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url(f"{simulator_url}/phone")

    result = await live_connector.poll(started.session)
    assert isinstance(result, Approved), result
    assert result.identity.evidence is not None
