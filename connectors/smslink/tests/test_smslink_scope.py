"""Which requests the SMS link serves: malformed numbers, and links that belong to one tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient
from smslink_support import (
    KNOWN,
    SECRET,
    FakeClock,
    Harness,
    basic,
    csrf_of,
    gateway_yaml,
    sms_connector,
    token_of,
)

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.store.memory import MemoryStore


@pytest.mark.parametrize(
    "number",
    ["46701234567", "+4670123abcd", "+0701234567", "+4670123456789012", "+"],
)
async def test_malformed_number_is_invalid_request(harness: Harness, number: str) -> None:
    """A tel hint that is not +<E.164> is an invalid_request, and no text is sent."""
    response = await harness.bc_authorize(number)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"]
    assert harness.outbox == []


@pytest.fixture
async def two_tenants(tmp_path: Path, clock: FakeClock) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Tenants ``acme`` and ``other`` in one process, each with its own ``sms`` connector."""
    document = yaml.safe_load(
        gateway_yaml(
            tmp_path, issuer="http://testserver.local/acme", connector=sms_connector(tmp_path)
        )
    )
    acme = document["tenants"][0]
    other = yaml.safe_load(yaml.safe_dump(acme))
    other["id"] = "other"
    other["issuer"] = "http://testserver.local/other"
    other["keys"][0]["file"] = f"{tmp_path}/other-1.jwk"
    other["keys"][0]["kid"] = "other-1"
    document["tenants"].append(other)
    config = parse_config(yaml.safe_dump(document), registry=load_registry())
    app = create_app(config, store=MemoryStore(clock=clock), clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


async def test_link_works_only_under_its_own_tenant(
    two_tenants: AsyncTestClient[Litestar],
) -> None:
    """acme's link opened under /other/... is an unknown link there, and cannot decide."""
    client = two_tenants
    started = await client.post(
        "/acme/bc-authorize",
        data={"scope": "openid phone", "login_hint": f"tel:{KNOWN}", "binding_message": "Hi"},
        headers=basic("callcenter", SECRET),
    )
    assert started.status_code == 200, started.text
    sender = client.app.state.gateway.tenants["acme"].connectors["sms"].sender
    link = sender.messages[-1].link
    own = await client.get(link)
    assert own.status_code == 200
    csrf = csrf_of(own.text)
    foreign = link.replace("/acme/", "/other/")
    assert foreign != link and token_of(foreign) == token_of(link)

    shown = await client.get(foreign)
    posted = await client.post(foreign, data={"csrf": csrf, "decision": "approve"})
    pending = await client.post(
        "/acme/token",
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": started.json()["auth_req_id"],
        },
        headers=basic("callcenter", SECRET),
    )

    assert shown.status_code == posted.status_code == 404
    assert 'name="decision"' not in shown.text and "Hi" not in shown.text
    assert pending.json()["error"] == "authorization_pending"
    assert (await client.get(link)).status_code == 200  # still usable where it belongs
