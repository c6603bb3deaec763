"""The SMS link's outcome reaches ping and push clients like any connector's (CIBA Core 10.2, 10.3).

The gateway's notifier posts to a real HTTP receiver (uvicorn on a loopback port);
the decision is made on the link page, then the background driver delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import AsyncTestClient
from smslink_support import (
    CIBA,
    KNOWN,
    FakeClock,
    basic,
    csrf_of,
    gateway_yaml,
    sms_connector,
)

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.store.memory import MemoryStore

PING_SECRET = "ping-client-secret-0123456789"
PUSH_SECRET = "push-client-secret-0123456789"
SECRETS = {"pinger": PING_SECRET, "pusher": PUSH_SECRET}
NOTIFY_TOKEN = "sms-notify-token-4711"


@dataclass
class Receiver:
    """Records the JSON body and headers of every POST it gets; answers 204."""

    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ciba/cb"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, json.loads(body)))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Notified:
    app: Litestar
    client: AsyncTestClient[Litestar]
    receiver: Receiver

    async def drive(self) -> None:
        await self.app.state.driver.run_once()
        await self.app.state.driver.drain()

    async def start(self, client_id: str) -> tuple[str, str]:
        """bc-authorize for ``client_id``; the auth_req_id and the texted link."""
        response = await self.client.post(
            "/acme/bc-authorize",
            data={
                "scope": "openid phone",
                "login_hint": f"tel:{KNOWN}",
                "binding_message": "Pay 100 EUR to shop 42",
                "client_notification_token": NOTIFY_TOKEN,
            },
            headers=basic(client_id, SECRETS[client_id]),
        )
        assert response.status_code == 200, response.text
        connector = self.app.state.gateway.tenants["acme"].connectors["sms"]
        return response.json()["auth_req_id"], connector.sender.messages[-1].link

    async def decide(self, link: str, decision: str) -> None:
        csrf = csrf_of((await self.client.get(link)).text)
        answer = await self.client.post(link, data={"csrf": csrf, "decision": decision})
        assert answer.status_code == 200, answer.text

    async def token(self, client_id: str, auth_req_id: str) -> Any:
        return await self.client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=basic(client_id, SECRETS[client_id]),
        )

    async def claims(self, id_token: str) -> dict[str, Any]:
        keys = KeySet.import_key_set((await self.client.get("/acme/jwks")).json())
        return dict(jwt.decode(id_token, keys, algorithms=["ES256"]).claims)


@pytest.fixture
async def notified(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Notified]:
    receiver = Receiver()
    await receiver.start()
    document = yaml.safe_load(
        gateway_yaml(
            tmp_path,
            issuer="http://testserver.local/acme",
            connector=sms_connector(tmp_path),
        )
    )
    tenant = document["tenants"][0]
    tenant["allow_http_loopback_notifications"] = True
    tenant["clients"] = [
        {
            "client_id": client_id,
            "auth": {"method": "client_secret_basic", "secret": SECRETS[client_id]},
            "delivery_mode": mode,
            "notification_endpoint": receiver.url,
            "scopes": ["openid", "phone"],
        }
        for client_id, mode in (("pinger", "ping"), ("pusher", "push"))
    ]
    document["notifications"] = {"timeout": 2, "max_attempts": 2, "initial_wait": 1, "max_wait": 2}
    config = parse_config(yaml.safe_dump(document), registry=load_registry())
    app = create_app(config, store=MemoryStore(clock=clock), clock=clock, run_driver=False)
    try:
        async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
            yield Notified(app=app, client=client, receiver=receiver)
    finally:
        await receiver.stop()


async def test_ping_client_is_notified_after_approve(notified: Notified) -> None:
    """Approve on the page -> the ping client gets its notification, then redeems tokens."""
    auth_req_id, link = await notified.start("pinger")
    await notified.drive()
    assert notified.receiver.received == []  # nothing decided yet

    await notified.decide(link, "approve")
    await notified.drive()

    assert len(notified.receiver.received) == 1
    headers, body = notified.receiver.received[0]
    assert body == {"auth_req_id": auth_req_id}
    assert headers["authorization"] == f"Bearer {NOTIFY_TOKEN}"
    tokens = await notified.token("pinger", auth_req_id)
    assert tokens.status_code == 200, tokens.text
    claims = await notified.claims(tokens.json()["id_token"])
    assert (claims["phone_number"], claims["amr"]) == (KNOWN, ["sms"])


async def test_ping_client_redeems_access_denied_after_decline(notified: Notified) -> None:
    """Decline on the page -> ping notification, then access_denied at the token endpoint."""
    auth_req_id, link = await notified.start("pinger")

    await notified.decide(link, "decline")
    await notified.drive()

    assert [body for _, body in notified.receiver.received] == [{"auth_req_id": auth_req_id}]
    denied = await notified.token("pinger", auth_req_id)
    assert denied.status_code == 400
    assert denied.json()["error"] == "access_denied"


async def test_push_client_receives_the_tokens_after_approve(notified: Notified) -> None:
    """Approve on the page -> the push client receives an ID token for the number."""
    auth_req_id, link = await notified.start("pusher")

    await notified.decide(link, "approve")
    await notified.drive()

    assert len(notified.receiver.received) == 1
    headers, body = notified.receiver.received[0]
    assert headers["authorization"] == f"Bearer {NOTIFY_TOKEN}"
    assert body["auth_req_id"] == auth_req_id
    claims = await notified.claims(body["id_token"])
    assert claims["urn:openid:params:jwt:claim:auth_req_id"] == auth_req_id
    assert claims["phone_number"] == KNOWN
    assert claims["phone_number_verified"] is True
    assert claims["acr"] == "urn:ciba-gateway:acr:sms-link"


async def test_push_client_receives_access_denied_after_decline(notified: Notified) -> None:
    """Decline on the page -> the push client receives the access_denied error payload."""
    auth_req_id, link = await notified.start("pusher")

    await notified.decide(link, "decline")
    await notified.drive()

    assert len(notified.receiver.received) == 1
    _, body = notified.receiver.received[0]
    assert body["auth_req_id"] == auth_req_id
    assert body["error"] == "access_denied"
