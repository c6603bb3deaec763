"""Real processes: what the default SQLite store acknowledged survives ``kill -9``.

A ``ciba-gateway serve`` on a SQLite file is killed (SIGKILL to its whole process
group: no shutdown hook runs) right after each step of a flow, and restarted on
the same file: a request acknowledged by bc-authorize, an approval, the issued-once
mark and a due ping notification are each still there. The store runs in WAL mode
with ``synchronous=NORMAL``: every commit is in the WAL before the call returns, so a
process crash loses nothing (a power cut may lose the last commits; see
docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

from ciba_gateway.flow.model import AuthRequest
from tests.e2e.processes import Process, free_ports

pytestmark = pytest.mark.process

SECRET = "durability-client-secret-0123456789"
CIBA = "urn:openid:params:grant-type:ciba"
HINT = "email:dana@example.com"


def write_config(tmp: Path, port: int, ping_port: int) -> Path:
    config = tmp / "gateway.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{tmp}/gateway.db"}}
driver: {{tick: 0.1}}
notifications: {{timeout: 1, max_attempts: 50, initial_wait: 0.2, max_wait: 0.5}}
logging: {{format: json, level: info}}
tenants:
  - id: dur
    issuer: http://127.0.0.1:{port}/dur
    keys: [{{kid: dur-1, alg: ES256, file: {tmp}/keys/dur-1.jwk, generate: true}}]
    subject: {{salt: "durability-subject-salt-0123456789"}}
    allow_http_loopback_notifications: true
    lifetimes: {{auth_request: 120, poll_interval: 1}}
    start_limits: {{per_client: null, per_login_hint: null}}
    connectors:
      example:
        type: example
        poll_after: 2
        people: [{{hint: "{HINT}", name: Dana Durable, polls: 0}}]
    routes: [{{login_hint: email, connector: example}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile]
      - client_id: pinger
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        delivery_mode: ping
        notification_endpoint: "http://127.0.0.1:{ping_port}/cb"
        scopes: [openid, profile]
"""
    )
    return config


class Gateway:
    """One gateway at a time on the test's SQLite file; ``crash`` is kill -9 of its group."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.ping_port = free_ports(2)
        self.config = write_config(tmp, self.port, self.ping_port)
        self.base = f"http://127.0.0.1:{self.port}/dur"
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process = Process(
            ["serve", "--config", str(self.config)], self.tmp / f"gateway-{self.starts}.log"
        )
        self.process.wait_http(f"http://127.0.0.1:{self.port}/readyz")

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.stop()
        self.process = None

    def bc_authorize(self, client: str, **extra: str) -> str:
        answer = httpx.post(
            f"{self.base}/bc-authorize",
            auth=(client, SECRET),
            data={"scope": "openid profile", "login_hint": HINT, **extra},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["auth_req_id"])

    def token(self, auth_req_id: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.base}/token",
            auth=("rp", SECRET),
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            timeout=10,
        )
        body: dict[str, Any] = answer.json()
        assert (answer.status_code == 200) == ("id_token" in body), answer.text
        return body

    def stored(self, auth_req_id: str) -> AuthRequest | None:
        """The request as the file holds it, read by a connection of the test's own."""
        conn = sqlite3.connect(self.tmp / "gateway.db")
        try:
            row = conn.execute(
                "SELECT data FROM requests WHERE auth_req_id = ?", (auth_req_id,)
            ).fetchone()
        finally:
            conn.close()
        return None if row is None else msgspec.msgpack.decode(row[0], type=AuthRequest)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_ack_approval_and_issued_mark_each_survive_kill_9(gateway: Gateway) -> None:
    """Kill -9 after the bc-authorize ack, after the approval, after the issued-once mark."""
    auth_req_id = gateway.bc_authorize("rp")
    gateway.crash()  # the connector's first collect is 2 s away: only the ack was written

    gateway.start()
    assert gateway.token(auth_req_id)["error"] == "authorization_pending"
    wait_for(
        lambda: (r := gateway.stored(auth_req_id)) is not None and r.status == "approved",
        "the approval",
    )
    gateway.crash()

    gateway.start()
    issued = gateway.token(auth_req_id)
    assert issued["token_type"] == "Bearer" and issued["id_token"]
    gateway.crash()

    gateway.start()
    again = gateway.token(auth_req_id)
    assert again["error"] == "invalid_grant", again
    userinfo = httpx.get(
        f"{gateway.base}/userinfo",
        headers={"Authorization": f"Bearer {issued['access_token']}"},
        timeout=10,
    )
    assert userinfo.status_code == 200, userinfo.text  # its record survived with the mark


class PingReceiver:
    """The ping client's notification endpoint: records the auth_req_id of every ping."""

    def __init__(self) -> None:
        self.pings: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.pings.append(msgspec.json.decode(body)["auth_req_id"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_a_due_notification_survives_kill_9(gateway: Gateway) -> None:
    """Approved while the ping endpoint is down: after kill -9 and a restart the ping arrives."""
    auth_req_id = gateway.bc_authorize("pinger", client_notification_token="dur-token-1")
    wait_for(
        lambda: (r := gateway.stored(auth_req_id)) is not None and r.notify_state == "due",
        "the approval with its ping due",
    )
    gateway.crash()

    receiver = PingReceiver()
    server = uvicorn.Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=gateway.ping_port, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        gateway.start()
        wait_for(lambda: auth_req_id in receiver.pings, "the ping after the restart")
        wait_for(
            lambda: (
                (r := gateway.stored(auth_req_id)) is not None and r.notify_state == "delivered"
            ),
            "the delivery recorded",
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
