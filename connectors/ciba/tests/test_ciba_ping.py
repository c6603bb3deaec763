"""Ping mode end to end: RP -> gateway (https) -> oidc-provider, which pings the gateway back.

oidc-provider only notifies https endpoints, so the gateway is served over TLS
with a throwaway CA that node trusts (NODE_EXTRA_CA_CERTS). The callback route
checks the bearer client_notification_token, takes it once, redeems the grant
and settles the request through the flow engine.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import SECRET
from gateways import RelyingParty, free_port, served
from op_support import OLA, TestOp, ciba_client

from ciba_gateway.connector.testing import issue_test_pki

RP_SECRET = "rp-secret-0123456789abcdefghij"


def gateway_yaml(tmp: Path, port: int, op: TestOp) -> str:
    return f"""
store: {{url: "memory://"}}
driver: {{tick: 0.05}}
tenants:
  - id: a
    issuer: https://127.0.0.1:{port}/a
    keys: [{{kid: a-1, alg: ES256, file: {tmp}/a-1.jwk, generate: true}}]
    subject: {{salt: "a-subject-salt-0123456789"}}
    lifetimes: {{poll_interval: 1}}
    connectors:
      op:
        type: ciba
        issuer: {op.issuer}
        client_id: gw-ping
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        delivery_mode: ping
        scope: [openid, profile, nnin]
        identity: {{scheme: no-nnin, national_id: nnin, default_country: "NO"}}
    routes: [{{login_hint: ssn, connector: op}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{RP_SECRET}"}}
        scopes: [openid, profile, ssn]
"""


@dataclass
class PingSetup:
    op: TestOp
    rp: RelyingParty
    ping_url: str
    ca: str


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[PingSetup]:
    pki = issue_test_pki(tmp_path)
    port = free_port()
    ping_url = f"https://127.0.0.1:{port}/a/op/ping"
    client = ciba_client(
        "gw-ping",
        client_secret=SECRET,
        backchannel_token_delivery_mode="ping",
        backchannel_client_notification_endpoint=ping_url,
    )
    op = TestOp(tmp_path, free_port(), [client])
    op.start(env={"NODE_EXTRA_CA_CERTS": pki.ca})
    try:
        async with served(gateway_yaml(tmp_path, port, op), port, certfile=pki.server):
            rp = RelyingParty(f"https://127.0.0.1:{port}/a", "rp", RP_SECRET, ca_file=pki.ca)
            yield PingSetup(op=op, rp=rp, ping_url=ping_url, ca=pki.ca)
    finally:
        op.stop()


async def test_ping_approval_issues_tokens(setup: PingSetup) -> None:
    """The provider's ping makes the gateway redeem and settle; the RP gets the person."""
    started = await setup.rp.bc_authorize(scope="openid profile ssn", login_hint=f"ssn:{OLA}")
    assert started.status_code == 200, started.text
    waiting = await setup.op.wait_pending()

    await setup.op.decide(waiting["auth_req_id"], "approve")
    result = await setup.rp.wait_for_result(started.json()["auth_req_id"], interval=1)

    assert result.status_code == 200, result.text
    claims = await setup.rp.claims(result.json()["id_token"])
    assert claims["name"] == "Ola Nordmann"
    assert (claims["ssn"], claims["ssn_country"]) == (OLA, "NO")
    assert claims["acr"] == "urn:test:op:high"


async def test_ping_denial_is_access_denied(setup: PingSetup) -> None:
    """A denial delivered by ping is access_denied for the RP."""
    started = await setup.rp.bc_authorize(scope="openid", login_hint=f"ssn:{OLA}")
    await setup.op.decide((await setup.op.wait_pending())["auth_req_id"], "deny")

    result = await setup.rp.wait_for_result(started.json()["auth_req_id"], interval=1)

    assert result.status_code == 400
    assert result.json()["error"] == "access_denied"


async def test_pings_without_the_token_are_refused(setup: PingSetup) -> None:
    """No bearer, or a bearer the gateway never generated, is 401 and changes nothing."""
    started = await setup.rp.bc_authorize(scope="openid", login_hint=f"ssn:{OLA}")
    waiting = await setup.op.wait_pending()
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=setup.ca)) as http:
        bare = await http.post(setup.ping_url, json={"auth_req_id": waiting["auth_req_id"]})
        forged = await http.post(
            setup.ping_url,
            json={"auth_req_id": waiting["auth_req_id"]},
            headers={"Authorization": "Bearer not-the-token"},
        )

    assert (bare.status_code, forged.status_code) == (401, 401)
    assert forged.json()["error"] == "invalid_token"
    pending = await setup.rp.token(started.json()["auth_req_id"])
    assert pending.json()["error"] == "authorization_pending"
    # The genuine ping still works afterwards.
    await setup.op.decide(waiting["auth_req_id"], "approve")
    result = await setup.rp.wait_for_result(started.json()["auth_req_id"], interval=1)
    assert result.status_code == 200, result.text


async def test_late_result_after_gateway_expiry_is_discarded(setup: PingSetup) -> None:
    """When the gateway's request expires first, the upstream's late ping is refused."""
    started = await setup.rp.bc_authorize(
        scope="openid", login_hint=f"ssn:{OLA}", requested_expiry="1"
    )
    waiting = await setup.op.wait_pending()
    assert waiting["requested_expiry"] == "1"
    await asyncio.sleep(1.5)  # the driver expires the request and forgets the token

    failed = await setup.op.decide(waiting["auth_req_id"], "approve", expect=500)

    assert "401" in failed["error"]
    result = await setup.rp.token(started.json()["auth_req_id"])
    assert result.json()["error"] == "expired_token"
