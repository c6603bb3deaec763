"""Real processes: SIGTERM during a slow bc-authorize lets that request finish, then exits 0.

The BankID simulator runs on its own (``ciba-gateway simulate bankid``) and holds
every answer about one person for a few seconds (``POST /control/faults`` with a
latency), so the gateway is mid-request when it gets SIGTERM.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Process, free_ports

pytestmark = pytest.mark.process

SECRET = "sigterm-client-secret-0123456789"
PNR = "199001011239"
LATENCY = 3.0


def write_config(tmp: Path, gateway_port: int, sim_port: int) -> Path:
    config = tmp / "gateway.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: {gateway_port}}}
store: {{url: "sqlite:///{tmp}/gateway.db"}}
logging: {{format: json, level: info}}
tenants:
  - id: t
    issuer: http://127.0.0.1:{gateway_port}/t
    keys: [{{kid: t-1, alg: ES256, file: {tmp}/t-1.jwk, generate: true}}]
    subject: {{salt: "sigterm-subject-salt-0123456789"}}
    connectors:
      bankid: {{type: bankid, base_url: "http://127.0.0.1:{sim_port}/rp/v6.0"}}
    routes: [{{login_hint: ssn, connector: bankid}}]
    clients:
      - client_id: c
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
"""
    )
    return config


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path) -> None:
    """A bc-authorize waiting on a slow upstream still gets its 200; the gateway exits 0."""
    gateway_port, sim_port = free_ports(2)
    config = write_config(tmp_path, gateway_port, sim_port)
    sim = Process(["simulate", "bankid", "--port", str(sim_port)], tmp_path / "sim.log")
    gateway: Process | None = None
    try:
        sim.wait_http(f"http://127.0.0.1:{sim_port}/phone")
        fault = httpx.post(
            f"http://127.0.0.1:{sim_port}/control/faults",
            json={"personal_number": PNR, "fault": "none", "latency": LATENCY},
        )
        assert fault.status_code < 300, fault.text
        gateway = Process(["serve", "--config", str(config)], tmp_path / "gateway.log")
        gateway.wait_http(f"http://127.0.0.1:{gateway_port}/readyz")

        answers: list[httpx.Response | BaseException] = []

        def call() -> None:
            try:
                answers.append(
                    httpx.post(
                        f"http://127.0.0.1:{gateway_port}/t/bc-authorize",
                        auth=("c", SECRET),
                        data={"scope": "openid", "login_hint": f"ssn:{PNR}"},
                        timeout=LATENCY + 10,
                    )
                )
            except BaseException as exc:  # recorded and asserted on below
                answers.append(exc)

        caller = threading.Thread(target=call)
        sent = time.monotonic()
        caller.start()
        time.sleep(1.0)  # the request is now waiting on the simulator
        assert answers == [], "the upstream answered before the signal: latency not applied"
        gateway.proc.send_signal(signal.SIGTERM)
        caller.join(timeout=LATENCY + 15)
        code = gateway.proc.wait(timeout=15)
        waited = time.monotonic() - sent
    finally:
        if gateway is not None:
            gateway.stop()
        sim.stop()

    assert len(answers) == 1
    answer = answers[0]
    assert isinstance(answer, httpx.Response), f"the request in flight was cut off: {answer!r}"
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"auth_req_id", "expires_in", "interval"}
    assert waited >= LATENCY  # it really waited for the upstream, across the signal
    assert code == 0
    assert "Traceback" not in gateway.output()
