"""Real process: reload on SIGHUP (valid and invalid configs) and graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ciba_gateway.flow.model import Status
from ciba_gateway.store.sqlite import SQLiteStore
from tests.e2e.processes import CLI, Process, free_port

pytestmark = pytest.mark.process

SECRET = "signals-secret-0123456789abcdef"
NEW_SECRET = "newcomer-secret-0123456789abcd"

NEWCOMER = f"""
      - client_id: newcomer
        auth: {{method: client_secret_basic, secret: "{NEW_SECRET}"}}
"""


def config_text(tmp: Path, port: int, extra_clients: str = "") -> str:
    return f"""
store: {{url: "sqlite:///{tmp}/gw.db"}}
logging: {{format: json}}
tenants:
  - id: ops
    issuer: http://127.0.0.1:{port}/ops
    keys: [{{kid: ops-1, alg: ES256, file: {tmp}/ops-1.jwk, generate: true}}]
    subject: {{salt: "ops-subject-salt-0123456789"}}
    connectors:
      example:
        type: example
        people: [{{hint: "email:waits@example.com", name: Wai Ting, outcome: pending}}]
    routes: [{{login_hint: email, connector: example}}]
    clients:
      - client_id: ops-client
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}{extra_clients}
"""


def authorize(port: int, auth: tuple[str, str]) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/ops/bc-authorize",
        auth=auth,
        data={"scope": "openid", "login_hint": "email:waits@example.com"},
    )


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sighup_reload_and_graceful_sigterm(tmp_path: Path) -> None:
    """SIGHUP applies a valid config and refuses an invalid one; SIGTERM exits 0, leases freed."""
    port = free_port()
    path = tmp_path / "gw.yaml"
    path.write_text(config_text(tmp_path, port))
    gateway = Process(["serve", "--config", str(path), "--port", str(port)], tmp_path / "gw.log")
    try:
        gateway.wait_http(f"http://127.0.0.1:{port}/readyz")
        pending = authorize(port, ("ops-client", SECRET))
        assert pending.status_code == 200
        assert authorize(port, ("newcomer", NEW_SECRET)).status_code == 401

        path.write_text(config_text(tmp_path, port, NEWCOMER))
        reload = subprocess.run([*CLI, "reload", str(gateway.proc.pid)], check=True)
        assert reload.returncode == 0
        assert wait_for(lambda: authorize(port, ("newcomer", NEW_SECRET)).status_code == 200)

        refused = config_text(tmp_path, port, NEWCOMER).replace(
            f"file: {tmp_path}/ops-1.jwk, generate: true", f"file: {tmp_path}/absent.jwk"
        )
        path.write_text(refused + "    surprise: 1\n")
        gateway.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload_refused" in gateway.output())
        assert authorize(port, ("newcomer", NEW_SECRET)).status_code == 200
        assert "surprise" in gateway.output()
        # The key file is checked in the same pass, with check-config's path style.
        assert wait_for(lambda: '"path":"tenants[0].keys[0].file"' in gateway.output())
        assert '"line":7,"column":37' in gateway.output() and "tenants.ops" not in gateway.output()
    finally:
        started = time.monotonic()
        code = gateway.stop()
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 12
    output = gateway.output()
    assert "Traceback" not in output

    async def leases() -> list:
        store = SQLiteStore(str(tmp_path / "gw.db"))
        await store.open()
        try:
            request = await store.get(pending.json()["auth_req_id"])
        finally:
            await store.close()
        return [request.status, request.lease_owner]

    assert asyncio.run(leases()) == [Status.PENDING, None]
