"""End to end in a real browser: headless Chromium opens the texted link on a live gateway.

The gateway runs under uvicorn on a loopback port; the link comes from the
outbox sender's JSON-lines file; Playwright drives the system Chromium
(``apt-get install -y chromium``; no ``playwright install``). A missing
browser fails these tests: they are never skipped.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet
from smslink_support import CIBA, KNOWN, SECRET, gateway_yaml, sms_connector

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.details import sections
from ciba_gateway.connector.testing import chromium

BINDING = "Pay 100 EUR to shop 42"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "1250"},
    "creditorName": "Shop <42> & *Sons*",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Order 42",
}
APPROVAL = {
    "type": "approval",
    "title": "Agent: renew contract",
    "text": "Your assistant wants to renew the phone contract.",
    "fields": [{"label": "Monthly fee", "value": "199 SEK"}],
}


@dataclass
class LiveGateway:
    """A gateway served over real HTTP, and where its texts land."""

    http: httpx.AsyncClient
    outbox: Path

    async def bc_authorize(self, details: list[dict[str, Any]] | None = None) -> str:
        data = {"scope": "openid phone", "login_hint": f"tel:{KNOWN}", "binding_message": BINDING}
        if details is not None:
            data["authorization_details"] = json.dumps(details)
        response = await self.http.post(
            "/acme/bc-authorize", data=data, auth=("callcenter", SECRET)
        )
        assert response.status_code == 200, response.text
        return str(response.json()["auth_req_id"])

    def last_link(self) -> str:
        lines = self.outbox.read_text().splitlines()
        message = json.loads(lines[-1])
        assert message["to"] == KNOWN
        return str(message["link"])

    async def token(self, auth_req_id: str) -> httpx.Response:
        return await self.http.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            auth=("callcenter", SECRET),
        )

    async def claims(self, id_token: str) -> dict[str, Any]:
        keys = KeySet.import_key_set((await self.http.get("/acme/jwks")).json())
        return dict(jwt.decode(id_token, keys, algorithms=["ES256"]).claims)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveGateway]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    outbox = tmp_path / "outbox.jsonl"
    connector = sms_connector(tmp_path, sender={"type": "outbox", "path": str(outbox)})
    config = parse_config(
        gateway_yaml(tmp_path, issuer=f"{base}/acme", connector=connector),
        registry=load_registry(),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            log_config=None,
            log_level="warning",
            access_log=False,  # uvicorn's access log would print the link's path
            http="h11",
            ws="none",
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # surface a startup failure
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            yield LiveGateway(http=http, outbox=outbox)
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def _open_link(browser: Any, link: str) -> tuple[Any, list[str]]:
    """A phone-sized page on ``link``, recording console errors (CSP violations land there)."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    response = await page.goto(link)
    assert response is not None and response.status == 200
    return page, errors


async def test_browser_approve_gives_id_token(live: LiveGateway, browser: Any) -> None:
    """Chromium shows the binding message, Approve is clicked, the client gets an ID token."""
    from playwright.async_api import expect

    auth_req_id = await live.bc_authorize()
    page, errors = await _open_link(browser, live.last_link())

    await expect(page.locator("#binding-message")).to_have_text(BINDING)
    await expect(page.locator("#client-name")).to_have_text("Acme & Sons <Bank>")
    approve = page.get_by_role("button", name="Approve")
    # The hashed inline stylesheet was applied (CSP allowed it).
    await expect(approve).to_have_css("background-color", "rgb(11, 92, 59)")
    await approve.click()
    await expect(page.locator("h1")).to_have_text("Approved")
    tokens = await live.token(auth_req_id)

    assert errors == []
    assert tokens.status_code == 200, tokens.text
    claims = await live.claims(tokens.json()["id_token"])
    assert claims["phone_number"] == KNOWN
    assert claims["amr"] == ["sms"]


async def test_browser_decline_gives_access_denied(live: LiveGateway, browser: Any) -> None:
    """Decline in Chromium: the client's token request answers access_denied."""
    from playwright.async_api import expect

    auth_req_id = await live.bc_authorize()
    link = live.last_link()
    page, errors = await _open_link(browser, link)

    await expect(page.locator("#binding-message")).to_have_text(BINDING)
    await page.get_by_role("button", name="Decline").click()
    await expect(page.locator("h1")).to_have_text("Declined")
    again = await page.goto(link)
    await expect(page.locator("h1")).to_have_text("Link already used")
    tokens = await live.token(auth_req_id)

    assert again is not None and again.status == 410
    assert [e for e in errors if "410" not in e] == []
    assert tokens.status_code == 400
    assert tokens.json()["error"] == "access_denied"


async def test_browser_shows_the_details_table_above_the_buttons(
    live: LiveGateway, browser: Any
) -> None:
    """Chromium reads back one table per detail, as the renderer lays them out; approve."""
    from playwright.async_api import expect

    auth_req_id = await live.bc_authorize([PAYMENT, APPROVAL])
    page, errors = await _open_link(browser, live.last_link())

    shown = []
    for block in await page.locator("#details section").all():
        title = await block.locator(".caption").text_content()
        about = await block.locator(".about").all_text_contents()
        rows = [
            (await row.locator("th").text_content(), await row.locator("td").text_content())
            for row in await block.locator("tr").all()
        ]
        shown.append((title, about[0] if about else None, tuple(rows)))
    expected = [(s.title, s.text, s.rows) for s in sections([PAYMENT, APPROVAL], None)]
    assert shown == expected
    assert ("Amount", "1 250.00 EUR") in shown[0][2]
    table_bottom = await page.locator("#details").bounding_box()
    approve = page.get_by_role("button", name="Approve")
    button_top = await approve.bounding_box()
    assert table_bottom is not None and button_top is not None
    assert table_bottom["y"] + table_bottom["height"] <= button_top["y"]
    await expect(page.locator("h1")).to_have_text("Approve this request")
    await approve.click()
    await expect(page.locator("h1")).to_have_text("Approved")
    tokens = await live.token(auth_req_id)

    assert errors == []
    claims = await live.claims(tokens.json()["id_token"])
    assert claims["authorization_details"] == [PAYMENT, APPROVAL]
