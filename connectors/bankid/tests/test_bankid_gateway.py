"""A payment approval through the real gateway app, its BankID connector and the simulator.

The simulator is served by uvicorn on a loopback port and writes its ``root.pem``
to ``pki_dir``; the gateway's connector names that file as ``signature_ca_file`` and
calls the simulator over HTTP. A genuine signature ends in tokens carrying the
details; each forgery of ``bankid_forgeries`` ends in ``transaction_failed`` at the
token endpoint (never a 5xx); a connector without the root refuses the details at
bc-authorize.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bankid_forgeries import FORGERIES
from bankid_support import PERSONAS, TOLVAN
from ciba_gateway_bankid_sim.app import create_simulator
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.details import digest
from ciba_gateway.connector.testing import FakeClock, serve_http

CIBA = "urn:openid:params:grant-type:ciba"
SECRET = "bankid-shop-secret-0123456789abcdef"
BASIC = "Basic " + base64.b64encode(f"shop:{SECRET}".encode()).decode()
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "SEK", "amount": "250.00"},
    "creditorName": "Kiosk Nord",
    "creditorAccount": {"iban": "SE4550000000058398257466"},
}


def gateway_yaml(tmp: Path, bankid_url: str) -> str:
    """One tenant with two BankID connectors: ``bankid`` trusts the root, ``bare`` has none."""
    return f"""
store: {{url: "memory://"}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 120, poll_interval: 5}}
    connectors:
      bankid:
        type: bankid
        base_url: "{bankid_url}/rp/v6.0"
        call_initiator: RP
        signature_ca_file: "{tmp}/pki/root.pem"
      bare:
        type: bankid
        base_url: "{bankid_url}/rp/v6.0"
        call_initiator: RP
    routes:
      - {{acr: "urn:example:bare", connector: bare}}
      - {{login_hint: ssn, connector: bankid}}
    clients:
      - client_id: shop
        name: Kiosk Nord
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile]
        authorization_details_types: [payment_initiation]
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[BankIDSimulator, str]]:
    app = create_simulator({"personas": PERSONAS, "pki_dir": str(tmp_path / "pki")})
    with serve_http(app) as url:
        yield app.state.bankid, url


@pytest.fixture
def clock() -> FakeClock:
    """Real time to start with: the gateway's store keeps its own wall clock."""
    return FakeClock(time.time())


@pytest.fixture
async def gateway(
    tmp_path: Path, served: tuple[BankIDSimulator, str], clock: FakeClock
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    config = parse_config(gateway_yaml(tmp_path, served[1]), registry=load_registry())
    app = create_app(config, clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


def drive(client: AsyncTestClient[Litestar], clock: FakeClock) -> None:
    """Past the connector's poll interval, one round of the driver on the app's loop."""
    clock.advance(3)

    async def round_() -> None:
        await client.app.state.driver.run_once()
        await client.app.state.driver.drain()

    client.blocking_portal.call(round_)


async def bc_authorize(client: AsyncTestClient[Litestar], **extra: str) -> Any:
    return await client.post(
        "/acme/bc-authorize",
        data={
            "scope": "openid",
            "login_hint": f"ssn:{TOLVAN}",
            "authorization_details": json.dumps([PAYMENT]),
            **extra,
        },
        headers={"Authorization": BASIC},
    )


async def approve_and_redeem(
    client: AsyncTestClient[Litestar], clock: FakeClock, sim: BankIDSimulator, forgery: str | None
) -> Any:
    """bc-authorize, Tolvan approves (the completion forged when asked), collect, redeem."""
    started = await bc_authorize(client)
    assert started.status_code == 200, started.text
    (order,) = sim.pending(TOLVAN)
    assert order.kind == "phone/sign"
    assert sim.decide(TOLVAN, order.order_ref, approve=True)
    if forgery is not None:
        genuine = sim.completion(order.order_ref)
        assert genuine is not None
        order.completion = FORGERIES[forgery][0](sim, genuine)
    drive(client, clock)
    return await client.post(
        "/acme/token",
        data={"grant_type": CIBA, "auth_req_id": started.json()["auth_req_id"]},
        headers={"Authorization": BASIC},
    )


async def test_a_genuine_signature_ends_in_tokens_with_the_details(
    gateway: AsyncTestClient[Litestar], served: tuple[BankIDSimulator, str], clock: FakeClock
) -> None:
    """Verified signature and OCSP: the token answer carries the approved details."""
    answer = await approve_and_redeem(gateway, clock, served[0], None)

    assert answer.status_code == 200, answer.text
    assert answer.json()["authorization_details"] == [PAYMENT]
    assert answer.json()["authorization_details_digest"] == digest([PAYMENT])


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_a_forged_signature_ends_in_transaction_failed(
    gateway: AsyncTestClient[Litestar],
    served: tuple[BankIDSimulator, str],
    clock: FakeClock,
    forgery: str,
) -> None:
    """Every forgery: 400 transaction_failed with the connector's reason, no tokens."""
    answer = await approve_and_redeem(gateway, clock, served[0], forgery)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "transaction_failed"
    assert FORGERIES[forgery][1] in answer.json()["error_description"]


async def test_a_connector_without_root_refuses_details_at_bc_authorize(
    gateway: AsyncTestClient[Litestar], served: tuple[BankIDSimulator, str]
) -> None:
    """No signature_ca_file: invalid_authorization_details before BankID is called."""
    answer = await bc_authorize(gateway, acr_values="urn:example:bare")

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_authorization_details"
    assert "signature_ca_file" in answer.json()["error_description"]
    assert served[0].calls["phone/sign"] == 0
