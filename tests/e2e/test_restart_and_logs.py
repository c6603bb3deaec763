"""Real processes: a pending request survives a gateway crash; logs carry no secrets or PII.

The BankID-style simulator runs as its own process (``ciba-gateway simulate``)
and the gateway (``ciba-gateway serve``) talks to it over real HTTP, with the
SQLite store on disk.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Process, free_ports

pytestmark = pytest.mark.process

SECRET = "e2e-client-secret-0123456789abcdef"
PNR = "199001011239"
CIBA = "urn:openid:params:grant-type:ciba"


def write_config(tmp: Path, gateway_port: int, sim_port: int) -> Path:
    config = tmp / "gateway.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: {gateway_port}}}
store: {{url: "sqlite:///{tmp}/gateway.db"}}
logging: {{format: json, level: info}}
simulators:
  - type: bankid
    mount: /_sim/bankid
    settings:
      personas:
        - {{personal_number: "{PNR}", name: Karl Karlsson, given_name: Karl,
            surname: Karlsson, outcome: approve, delay: 4}}
tenants:
  - id: e2e
    issuer: http://127.0.0.1:{gateway_port}/e2e
    keys: [{{kid: e2e-1, alg: ES256, file: {tmp}/keys/e2e-1.jwk, generate: true}}]
    subject: {{salt: "e2e-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 60, poll_interval: 1}}
    connectors:
      bankid: {{type: bankid, base_url: "http://127.0.0.1:{sim_port}/rp/v6.0"}}
    routes: [{{login_hint: ssn, connector: bankid}}]
    clients:
      - client_id: e2e-client
        auth: {{method: client_secret_basic, secret: "${{E2E_SECRET}}"}}
        scopes: [openid, profile, ssn]
"""
    )
    return config


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, int, Process]]:
    gateway_port, sim_port = free_ports(2)
    config = write_config(tmp_path, gateway_port, sim_port)
    sim = Process(
        ["simulate", "bankid", "--port", str(sim_port), "--config", str(config)],
        tmp_path / "sim.log",
        env={"E2E_SECRET": SECRET},
    )
    try:
        sim.wait_http(f"http://127.0.0.1:{sim_port}/phone")
        yield config, gateway_port, sim
    finally:
        sim.stop()


def start_gateway(config: Path, port: int, log: Path) -> Process:
    gateway = Process(["serve", "--config", str(config)], log, env={"E2E_SECRET": SECRET})
    gateway.wait_http(f"http://127.0.0.1:{port}/readyz")
    return gateway


def test_pending_request_survives_gateway_kill(
    setup: tuple[Path, int, Process], tmp_path: Path
) -> None:
    """Kill -9 the gateway mid-flow; after a restart the same auth_req_id completes."""
    config, port, _sim = setup
    base = f"http://127.0.0.1:{port}/e2e"
    log = tmp_path / "gateway.log"
    gateway = start_gateway(config, port, log)
    try:
        started = httpx.post(
            f"{base}/bc-authorize",
            auth=("e2e-client", SECRET),
            data={
                "scope": "openid profile ssn",
                "login_hint": f"ssn:{PNR}",
                "binding_message": "E2E 1",
            },
        )
        assert started.status_code == 200, started.text
        auth_req_id = started.json()["auth_req_id"]
        pending = httpx.post(
            f"{base}/token",
            auth=("e2e-client", SECRET),
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
        )
        assert pending.json()["error"] == "authorization_pending"
        gateway.kill()

        gateway = start_gateway(config, port, log)
        deadline = time.monotonic() + 30
        body: dict = {}
        while time.monotonic() < deadline:
            time.sleep(1.1)
            response = httpx.post(
                f"{base}/token",
                auth=("e2e-client", SECRET),
                data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            )
            body = response.json()
            if response.status_code == 200:
                break
            assert body["error"] in {"authorization_pending", "slow_down"}, body
        assert "id_token" in body, body
        userinfo = httpx.get(
            f"{base}/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert userinfo.json()["ssn"] == PNR
    finally:
        gateway.stop()

    lines, torn = [], 0
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                torn += 1  # the line the SIGKILL cut short, joined with the next one
    assert torn <= 1
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests, "the gateway wrote no request events"
    token_events = [r for r in requests if r.get("endpoint") == "token"]
    assert token_events
    assert {"tenant", "client_id", "status", "duration_ms"} <= set(token_events[-1])
    text = log.read_text()
    assert SECRET not in text
    assert body["access_token"] not in text
    assert body["id_token"].split(".")[1] not in text
    assert auth_req_id not in text
    full_pnr = re.search(r"(?<!\d)(19900101|900101)-?1239(?!\d)", text)
    assert full_pnr is None, "a full personal number was logged"
