"""The driver cancels a request at its connector when it expires undecided.

A core behaviour, tested with the example connector (subclassed to record the
sessions it is asked to cancel), through the real app and its driver.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ciba_gateway_example.connector import ExampleConnector
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock

CIBA = "urn:openid:params:grant-type:ciba"
SECRET = "driver-cancel-secret-0123456789"
BASIC = "Basic " + base64.b64encode(f"rp:{SECRET}".encode()).decode()


def gateway_yaml(tmp: Path) -> str:
    return f"""
store: {{url: "memory://"}}
tenants:
  - id: t
    issuer: http://testserver.local/t
    keys: [{{kid: t-1, alg: ES256, file: {tmp}/t-1.jwk, generate: true}}]
    subject: {{salt: "t-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 120, poll_interval: 5}}
    connectors:
      example:
        type: example
        poll_after: 2
        people:
          - {{hint: "ssn:191212121212", name: Tolvan, outcome: pending}}
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
"""


@pytest.fixture
def cancelled() -> list[dict[str, Any]]:
    return []


@pytest.fixture
async def gateway(
    tmp_path: Path, clock: FakeClock, cancelled: list[dict[str, Any]]
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    class Cancelling(ExampleConnector):
        async def cancel(self, session: dict[str, Any]) -> None:
            cancelled.append(session)

    registry = load_registry().with_connector("example", Cancelling)
    config = parse_config(gateway_yaml(tmp_path), registry=registry)
    app = create_app(config, registry=registry, clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


def drive(client: AsyncTestClient[Litestar]) -> None:
    """One round of the background driver on the app's loop: poll everything due."""

    async def round_() -> None:
        await client.app.state.driver.run_once()
        await client.app.state.driver.drain()

    client.blocking_portal.call(round_)


async def test_abandoned_request_expires_and_is_cancelled_at_the_connector(
    gateway: AsyncTestClient[Litestar], clock: FakeClock, cancelled: list[dict[str, Any]]
) -> None:
    """A client that stops polling: at expiry the driver cancels once, the token is expired."""
    started = await gateway.post(
        "/t/bc-authorize",
        data={"scope": "openid", "login_hint": "ssn:191212121212", "requested_expiry": "30"},
        headers={"Authorization": BASIC},
    )
    assert started.status_code == 200, started.text
    auth_req_id = started.json()["auth_req_id"]
    clock.advance(3)
    drive(gateway)
    assert cancelled == []  # still pending: polled, not cancelled
    clock.advance(31)
    drive(gateway)
    drive(gateway)

    assert [session["hint"] for session in cancelled] == ["ssn:191212121212"]
    late = await gateway.post(
        "/t/token",
        data={"grant_type": CIBA, "auth_req_id": auth_req_id},
        headers={"Authorization": BASIC},
    )
    assert late.json()["error"] == "expired_token", late.text
