"""Gateway A's ``ciba`` connector -> gateway B (a second instance) -> B's BankID simulator.

Both gateways are real processes-in-a-task on loopback ports; every hop is real
HTTP. A relying party of A gets an ID token of A carrying the person B's BankID
connector authenticated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_ciba.connector import CibaConnector, Config
from conftest import start_request
from gateways import RelyingParty, free_port, served

from ciba_gateway.connector import ConnectorDeps, Pending, UpstreamUnavailable
from ciba_gateway.connector.testing import issue_test_pki

KARL = "199001011239"  # the simulator approves at once
NILS = "198112289874"  # declines in the app
TOLVAN = "191212121212"  # never decides
B_SECRET = "gateway-a-at-b-secret-0123456789"
RP_SECRET = "rp-at-a-secret-0123456789abcdef"


def upstream_yaml(tmp: Path, port: int, a_port: int) -> str:
    """Gateway B: a BankID route, and gateway A as its poll and ping client."""
    return f"""
store: {{url: "memory://"}}
driver: {{tick: 0.05}}
simulators:
  - type: bankid
    mount: /_sim/bankid
    settings:
      personas:
        - {{personal_number: "{KARL}", name: Karl Karlsson, given_name: Karl,
           surname: Karlsson, outcome: approve}}
        - {{personal_number: "{NILS}", name: Nils Nej, outcome: userCancel}}
        - {{personal_number: "{TOLVAN}", name: Tolvan Tolvansson, outcome: ignore}}
tenants:
  - id: b
    issuer: http://127.0.0.1:{port}/b
    keys: [{{kid: b-1, alg: RS256, file: {tmp}/b-1.jwk, generate: true}}]
    subject: {{salt: "b-subject-salt-0123456789"}}
    lifetimes: {{poll_interval: 1}}
    allow_http_loopback_notifications: true
    connectors:
      bankid:
        type: bankid
        base_url: "http://127.0.0.1:{port}/_sim/bankid/rp/v6.0"
        poll_interval: 1
    routes: [{{login_hint: ssn, connector: bankid}}]
    clients:
      - client_id: gateway-a
        auth: {{method: client_secret_basic, secret: "{B_SECRET}"}}
        scopes: [openid, profile, ssn]
      - client_id: gateway-a-ping
        auth: {{method: client_secret_post, secret: "{B_SECRET}"}}
        scopes: [openid, profile, ssn]
        delivery_mode: ping
        notification_endpoint: http://127.0.0.1:{a_port}/a/chained-ping/ping
"""


def chained_yaml(tmp: Path, port: int, b_port: int) -> str:
    """Gateway A: ``ciba`` connectors (poll and ping) whose upstream is gateway B."""
    common = f"""
        issuer: http://127.0.0.1:{b_port}/b
        scope: [openid, profile, ssn]
        interval: 1
        login_hint: {{ssn: "ssn:{{value}}"}}
        identity: {{scheme: b-sub, national_id: ssn, country: ssn_country,
                    acr_default: "urn:grn:authn:se:bankid"}}"""
    return f"""
store: {{url: "memory://"}}
driver: {{tick: 0.05}}
tenants:
  - id: a
    issuer: http://127.0.0.1:{port}/a
    keys: [{{kid: a-1, alg: ES256, file: {tmp}/a-1.jwk, generate: true}}]
    subject: {{salt: "a-subject-salt-0123456789"}}
    lifetimes: {{poll_interval: 1}}
    connectors:
      chained:
        type: ciba
        client_id: gateway-a
        auth: {{method: client_secret_basic, secret: "{B_SECRET}"}}{common}
      chained-ping:
        type: ciba
        client_id: gateway-a-ping
        auth: {{method: client_secret_post, secret: "{B_SECRET}"}}
        delivery_mode: ping{common}
    routes:
      - {{acr: "urn:example:ping", connector: chained-ping}}
      - {{login_hint: ssn, connector: chained}}
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{RP_SECRET}"}}
        scopes: [openid, profile, ssn]
"""


@dataclass
class Chain:
    rp: RelyingParty


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Chain]:
    a_port, b_port = free_port(), free_port()
    async with (
        served(upstream_yaml(tmp_path, b_port, a_port), b_port),
        served(chained_yaml(tmp_path, a_port, b_port), a_port),
    ):
        yield Chain(rp=RelyingParty(f"http://127.0.0.1:{a_port}/a", "rp", RP_SECRET))


@pytest.mark.parametrize("acr", [None, "urn:example:ping"], ids=["poll", "ping"])
async def test_chained_approval_reaches_the_relying_party(chain: Chain, acr: str | None) -> None:
    """A's RP gets A's ID token for the person B's BankID authenticated (poll and ping)."""
    form = {"scope": "openid profile ssn", "login_hint": f"ssn:{KARL}"}
    if acr:
        form["acr_values"] = acr
    started = await chain.rp.bc_authorize(**form)
    assert started.status_code == 200, started.text

    result = await chain.rp.wait_for_result(started.json()["auth_req_id"], interval=1)

    assert result.status_code == 200, result.text
    claims = await chain.rp.claims(result.json()["id_token"])
    assert claims["name"] == "Karl Karlsson"
    assert claims["given_name"] == "Karl"
    assert claims["ssn"] == KARL
    assert claims["ssn_country"] == "SE"
    assert claims["acr"] == "urn:grn:authn:se:bankid"
    assert claims["iss"] == chain.rp.issuer


async def test_chained_denial_is_access_denied(chain: Chain) -> None:
    """A person who cancels in B's BankID app is access_denied at A."""
    started = await chain.rp.bc_authorize(scope="openid", login_hint=f"ssn:{NILS}")
    result = await chain.rp.wait_for_result(started.json()["auth_req_id"], interval=1)

    assert result.status_code == 400
    assert result.json()["error"] == "access_denied"


async def test_slow_down_from_the_upstream_gateway_grows_the_interval(
    tmp_path: Path, deps: ConnectorDeps
) -> None:
    """Polled faster than its interval, gateway B says slow_down: the connector waits 5 s more."""
    b_port = free_port()
    async with served(upstream_yaml(tmp_path, b_port, free_port()), b_port):
        settings = {
            "issuer": f"http://127.0.0.1:{b_port}/b",
            "client_id": "gateway-a",
            "auth": {"method": "client_secret_basic", "secret": B_SECRET},
            "login_hint": {"ssn": "ssn:{value}"},
        }
        connector = CibaConnector(msgspec.convert(settings, Config), deps)
        try:
            started = await connector.start(start_request(TOLVAN, country="SE"))
            assert started.session["interval"] == 1.0  # B's poll_interval

            first = await connector.poll(started.session)
            second = await connector.poll(started.session)
        finally:
            await connector.aclose()

    assert isinstance(first, Pending) and first.poll_after == 1.0
    assert isinstance(second, Pending)
    assert second.poll_after == 6.0
    assert second.session == {**started.session, "interval": 6.0}


@pytest.mark.parametrize("with_certificate", [True, False], ids=["client-cert", "no-client-cert"])
async def test_upstream_over_mutual_tls(
    tmp_path: Path, deps: ConnectorDeps, with_certificate: bool
) -> None:
    """``http:`` settings give the connector mTLS to its upstream (gateway B behind TLS
    that requires a client certificate): without the certificate it is unavailable."""
    pki = issue_test_pki(tmp_path)
    b_port = free_port()
    # B's own BankID connector would call its simulator through the same mTLS port:
    # an example connector (a person who stays pending) serves B's route instead.
    yaml = f"""
store: {{url: "memory://"}}
tenants:
  - id: b
    issuer: https://127.0.0.1:{b_port}/b
    keys: [{{kid: b-1, alg: RS256, file: {tmp_path}/b-1.jwk, generate: true}}]
    subject: {{salt: "b-subject-salt-0123456789"}}
    connectors:
      people: {{type: example, people: [{{hint: "ssn:{TOLVAN}", name: T, outcome: pending}}]}}
    routes: [{{login_hint: ssn, connector: people}}]
    clients:
      - client_id: gateway-a
        auth: {{method: client_secret_basic, secret: "{B_SECRET}"}}
"""
    async with served(yaml, b_port, certfile=pki.server, client_ca=pki.ca):
        http = {"ca_file": pki.ca, **({"client_cert": pki.client} if with_certificate else {})}
        settings = {
            "issuer": f"https://127.0.0.1:{b_port}/b",
            "client_id": "gateway-a",
            "auth": {"method": "client_secret_basic", "secret": B_SECRET},
            "login_hint": {"ssn": "ssn:{value}"},
            "http": {**http, "retries": 1},
        }
        connector = CibaConnector(msgspec.convert(settings, Config), deps)
        try:
            if with_certificate:
                started = await connector.start(start_request(TOLVAN, country="SE"))
                assert started.session["auth_req_id"]
            else:
                with pytest.raises(UpstreamUnavailable):
                    await connector.start(start_request(TOLVAN, country="SE"))
        finally:
            await connector.aclose()
