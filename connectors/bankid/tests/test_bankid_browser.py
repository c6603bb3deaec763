"""In a real browser: what the BankID simulator's phone shows is the gateway's approval text.

The simulator runs under uvicorn on a loopback port, the connector calls it over
real HTTP, and headless Chromium (Debian's, through Playwright) reads the phone
page back line by line. A missing browser fails these tests; they never skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bankid_support import TOLVAN, start_request
from ciba_gateway_bankid.connector import BankIDConnector, Config
from ciba_gateway_bankid_sim.app import create_simulator

from ciba_gateway.connector import Approved, ConnectorDeps
from ciba_gateway.connector.details import render, validate
from ciba_gateway.connector.testing import chromium, serve_http

HOSTILE = validate(
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "123.5"},
        "creditorName": "# Shop *A* | <b>B</b>",
        "creditorAccount": {"iban": "DE02100100109307118603"},
        "remittanceInformationUnstructured": "\\*not bold\\* --- [x](y)",
    }
)
APPROVAL = validate(
    {
        "type": "approval",
        "title": "Agent order 7",
        "text": "Buy 3 laptops from Åkerström & Co",
        "fields": [{"label": "Total", "value": "4 500 SEK"}],
    }
)


@pytest.fixture
def simulator_url(tmp_path: Path) -> Iterator[str]:
    with serve_http(create_simulator({"pki_dir": str(tmp_path / "pki")})) as url:
        yield url


@pytest.fixture
async def live_connector(
    simulator_url: str, deps: ConnectorDeps, tmp_path: Path
) -> AsyncIterator[BankIDConnector]:
    settings = {
        "base_url": f"{simulator_url}/rp/v6.0",
        "signature_ca_file": str(tmp_path / "pki" / "root.pem"),  # written by the simulator
    }
    config = msgspec.convert(settings, Config)
    connector = BankIDConnector(config, deps)
    yield connector
    await connector.aclose()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.mark.parametrize(
    "details", [(HOSTILE,), ({"type": "phoneAuth", "callInitiator": "RP"}, APPROVAL)]
)
async def test_phone_page_shows_exactly_the_rendered_text(
    live_connector: BankIDConnector, browser: Any, simulator_url: str, details: tuple[Any, ...]
) -> None:
    """Chromium reads the signing text off the phone page; it is the renderer's plain text."""
    request = start_request(TOLVAN, authorization_details=details)
    started = await live_connector.start(request)
    expected = render(details, client_name="Demo Bank", binding_message="A1B2").text

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await page.goto(f"{simulator_url}/phone/{TOLVAN}")
    shown = await page.locator(".text .line").all_text_contents()
    assert "\n".join(shown) == expected
    await page.get_by_role("button", name="Identify").click()
    await page.wait_for_url(f"{simulator_url}/phone/{TOLVAN}")

    result = await live_connector.poll(started.session)
    assert isinstance(result, Approved)
    assert result.identity.evidence is not None
