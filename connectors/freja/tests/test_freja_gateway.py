"""A whole CIBA flow through the real gateway app, its Freja connector and the simulator.

The gateway runs in-process behind Litestar's AsyncTestClient. The simulator is served
by a real uvicorn on a loopback port in a thread of its own, so the connector's own httpx
client talks HTTP over a socket, just as it would to Freja: no transport is injected
into the gateway. (AsyncTestClient runs the app on a portal thread and blocks the test's
loop while it answers, so the simulator cannot share that loop.) The driver is run on
the app's portal, where the app's own driver would run. Gateway, connector and
simulator share one hand-moved clock.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from ciba_gateway_freja_sim.app import create_simulator
from ciba_gateway_freja_sim.simulator import FrejaSimulator
from freja_support import CERT_FILE, KARL, KEY_FILE, NOBODY, PERSONAS
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock

CIBA = "urn:openid:params:grant-type:ciba"
SECRET = "freja-callcenter-secret-0123456789"
BASIC = "Basic " + base64.b64encode(f"callcenter:{SECRET}".encode()).decode()


def gateway_yaml(tmp: Path, freja_url: str) -> str:
    """One tenant routing the Freja acr family to a freja connector at ``freja_url``."""
    return f"""
store: {{url: "memory://"}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 120, poll_interval: 5}}
    connectors:
      freja:
        type: freja
        base_url: "{freja_url}"
        trusted_certs: ["{CERT_FILE}"]
        http: {{timeout: 5, retries: 2}}
    routes:
      - {{acr: "urn:grn:authn:se:frejaid", connector: freja}}
      - {{acr: "urn:grn:authn:se:frejaid:basic", connector: freja}}
      - {{acr: "urn:grn:authn:se:frejaid:extended", connector: freja}}
      - {{acr: "urn:grn:authn:se:frejaid:plus", connector: freja}}
      - {{login_hint: ssn, connector: freja}}
    clients:
      - client_id: callcenter
        name: Acme Call Centre
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile, ssn, email, phone]
"""


@pytest.fixture
def clock() -> FakeClock:
    """Real time to start with: the gateway's store keeps its own wall clock."""
    return FakeClock(time.time())


@dataclass
class Served:
    """The simulator app behind uvicorn on a loopback port."""

    app: Litestar
    url: str

    @property
    def sim(self) -> FrejaSimulator:
        return self.app.state.freja  # type: ignore[no-any-return]


@pytest.fixture
def served(clock: FakeClock) -> Iterator[Served]:
    app = create_simulator(
        {"personas": PERSONAS, "signing_key_file": KEY_FILE, "signing_cert_file": CERT_FILE},
        clock=clock,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    # The socket listens before uvicorn runs: early connections wait in the backlog.
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, log_level="critical", lifespan="off", http="h11", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Served(app=app, url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
async def gateway(
    tmp_path: Path, clock: FakeClock, served: Served
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    config = parse_config(gateway_yaml(tmp_path, served.url), registry=load_registry())
    app = create_app(config, clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


def drive(client: AsyncTestClient[Litestar]) -> None:
    """One round of the background driver on the app's loop: poll everything due."""

    async def round_() -> None:
        await client.app.state.driver.run_once()
        await client.app.state.driver.drain()

    client.blocking_portal.call(round_)


async def token(client: AsyncTestClient[Litestar], auth_req_id: str) -> Any:
    return await client.post(
        "/acme/token",
        data={"grant_type": CIBA, "auth_req_id": auth_req_id},
        headers={"Authorization": BASIC},
    )


async def test_ciba_flow_with_freja_plus(
    gateway: AsyncTestClient[Litestar], served: Served, clock: FakeClock
) -> None:
    """bc-authorize with the plus acr starts Freja at PLUS; the verified approval becomes tokens."""
    started = await gateway.post(
        "/acme/bc-authorize",
        data={
            "scope": "openid profile ssn email",
            "login_hint": f"ssn:{KARL}",
            "acr_values": "urn:grn:authn:se:frejaid:plus",
        },
        headers={"Authorization": BASIC},
    )
    assert started.status_code == 200, started.text
    auth_req_id = started.json()["auth_req_id"]
    pending = await token(gateway, auth_req_id)
    clock.advance(3)
    drive(gateway)
    clock.advance(3)
    drive(gateway)
    issued = await token(gateway, auth_req_id)

    assert pending.json()["error"] == "authorization_pending", pending.text
    assert issued.status_code == 200, issued.text
    keys = KeySet.import_key_set((await gateway.get("/acme/jwks")).json())
    claims = jwt.decode(issued.json()["id_token"], keys, algorithms=["ES256"]).claims
    assert claims["acr"] == "urn:grn:authn:se:frejaid:plus"
    assert claims["amr"] == ["freja"]
    assert claims["ssn"] == KARL
    assert claims["name"] == "Karl Karlsson"
    assert claims["email"] == "karl@example.com"
    assert KARL not in claims["sub"]
    assert served.sim.calls["getOneResult"] == 2
    init = served.sim.received[0]["request"]
    assert (init["userInfoType"], init["minRegistrationLevel"]) == ("SSN", "PLUS")


async def test_unknown_freja_user_is_unknown_user_id(gateway: AsyncTestClient[Litestar]) -> None:
    """A person without Freja eID (code 1012) is answered unknown_user_id at bc-authorize."""
    response = await gateway.post(
        "/acme/bc-authorize",
        data={"scope": "openid", "login_hint": f"ssn:{NOBODY}"},
        headers={"Authorization": BASIC},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unknown_user_id"
