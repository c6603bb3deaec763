"""Ping delivery to an https endpoint whose certificate comes from a private CA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from ciba_gateway.app import create_app, notification_mounts
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import issue_test_pki
from ciba_gateway.errors import ConfigError
from tests.conftest import FakeClock
from tests.integration.receiver import Receiver, free_port
from tests.integration.test_ping_push import PING_SECRET, drive, start


def config_text(tmp: Path, endpoint: str, ca_file: str | None) -> str:
    trust = f"notification_ca_file: {ca_file}" if ca_file else ""
    return f"""
store: {{url: "memory://"}}
notifications: {{timeout: 2, max_attempts: 1, initial_wait: 1, max_wait: 1}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: pinger
        auth: {{method: client_secret_basic, secret: "{PING_SECRET}"}}
        delivery_mode: ping
        notification_endpoint: "{endpoint}"
        scopes: [openid, profile]
        {trust}
"""


async def ping_once(tmp: Path, clock: FakeClock, ca_file: str | None) -> tuple[Receiver, Any]:
    pki = issue_test_pki(tmp, name="Notify")
    receiver = Receiver(free_port(), certfile=pki.server)
    await receiver.start()
    try:
        text = config_text(tmp, receiver.url, pki.ca if ca_file == "pki" else ca_file)
        app = create_app(
            parse_config(text, registry=load_registry()), clock=clock, run_driver=False
        )
        with capture_logs() as logs:
            async with AsyncTestClient(app, base_url="http://testserver.local") as client:
                await start(client, "pinger", PING_SECRET)
                await drive(app)
                await drive(app)
    finally:
        await receiver.stop()
    return receiver, logs


async def test_ping_reaches_an_endpoint_of_a_private_ca(tmp_path: Path, clock: FakeClock) -> None:
    """With notification_ca_file naming the CA, the ping is delivered over verified TLS."""
    receiver, _ = await ping_once(tmp_path, clock, "pki")
    assert len(receiver.received) == 1
    assert receiver.received[0].headers["authorization"] == "Bearer notify-token-123"


async def test_without_the_ca_the_endpoint_is_not_trusted(tmp_path: Path, clock: FakeClock) -> None:
    """Without it, the system trust store refuses the certificate: nothing is delivered."""
    receiver, logs = await ping_once(tmp_path, clock, None)
    assert receiver.received == []
    attempts = [e for e in logs if e.get("event") == "notification_attempt"]
    assert attempts and attempts[0]["outcome"] == "error"


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    """A notification_ca_file that cannot be loaded is refused with its YAML path."""
    text = config_text(tmp_path, "https://rp.example/cb", str(tmp_path / "missing.pem"))
    config = parse_config(text, registry=load_registry())
    with pytest.raises(ConfigError, match="cannot load") as info:
        notification_mounts(config)
    assert info.value.problems[0].path == "tenants.acme.clients.pinger.notification_ca_file"
