"""Redis goes away and comes back: the gateway answers 503 meanwhile and then resumes by itself.

A real ``redis-server`` runs on a spare port (append-only file in the test's
directory, so the restarted server has the data a restarted production Redis
would have). The app under test is the real one, with its background driver.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry

SECRET = "outage-client-secret-0123456789"
CIBA = "urn:openid:params:grant-type:ciba"
BASIC = "Basic " + base64.b64encode(f"callcenter:{SECRET}".encode()).decode()


class RedisServer:
    """A ``redis-server`` child process on a fixed port that can be stopped and started."""

    def __init__(self, port: int, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run scripts/prepare.sh")
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server did not come up on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(spare_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def config_yaml(tmp: Path, redis_port: int) -> str:
    return f"""
store: {{url: "redis://127.0.0.1:{redis_port}/0", prefix: "outage:", timeout: 1.0}}
driver: {{tick: 0.05}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 120, poll_interval: 1}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 2}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: callcenter
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile, ssn]
"""


@pytest.fixture
async def client(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    config = parse_config(config_yaml(tmp_path, redis_server.port), registry=load_registry())
    app = create_app(config)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        yield test_client


async def bc_authorize(client: AsyncTestClient[Litestar]) -> Any:
    return await client.post(
        "/acme/bc-authorize",
        data={"scope": "openid profile", "login_hint": "ssn:199001011239"},
        headers={"Authorization": BASIC},
    )


async def token(client: AsyncTestClient[Litestar], auth_req_id: str) -> Any:
    return await client.post(
        "/acme/token",
        data={"grant_type": CIBA, "auth_req_id": auth_req_id},
        headers={"Authorization": BASIC},
    )


async def wait_for_tokens(client: AsyncTestClient[Litestar], auth_req_id: str) -> dict[str, Any]:
    """Poll the token endpoint at the advertised interval until tokens come (bounded)."""
    for _ in range(20):
        response = await token(client, auth_req_id)
        body = response.json()
        if response.status_code == 200:
            return body
        assert body["error"] == "authorization_pending", body
        await asyncio.sleep(1.05)
    raise AssertionError("no tokens within 20 polls")


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "temporarily_unavailable"


async def test_redis_outage_answers_503_and_service_resumes_by_itself(
    client: AsyncTestClient[Litestar], redis_server: RedisServer
) -> None:
    """Redis stops: readyz and the endpoints answer 503; it starts again: flows resume."""
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    started = await bc_authorize(client)
    assert started.status_code == 200, started.text
    before_outage = started.json()["auth_req_id"]
    assert (await token(client, before_outage)).json()["error"] == "authorization_pending"

    redis_server.stop()

    began = time.monotonic()
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["store"] is False
    assert_unavailable(await bc_authorize(client))
    assert_unavailable(await token(client, before_outage))
    assert time.monotonic() - began < 10, "503 answers must come within bounded timeouts"
    # Each 503 is a store error on /metrics (what the CibaStoreErrors alert watches).
    scrape = (await client.get("/metrics")).text
    counted = re.search(r'^ciba_store_errors_total\{source="request"\} (\S+)$', scrape, re.M)
    assert counted and float(counted.group(1)) >= 2, scrape
    await asyncio.sleep(0.5)  # the background driver keeps failing meanwhile, and survives
    assert (await client.get("/healthz")).status_code == 200

    redis_server.start()

    assert (await client.get("/readyz")).status_code == 200
    body = await wait_for_tokens(client, before_outage)
    assert {"access_token", "id_token"} <= set(body)
    assert (await token(client, before_outage)).json()["error"] == "invalid_grant"

    after = await bc_authorize(client)
    assert after.status_code == 200, after.text
    assert "id_token" in await wait_for_tokens(client, after.json()["auth_req_id"])
