"""Ping and push delivery to a real HTTP receiver on a loopback port (CIBA Core 10.2, 10.3)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock
from tests.integration.receiver import Receiver, free_port

PING_SECRET = "ping-client-secret-0123456789"
REFRESHER_SECRET = "refresher-secret-0123456789abcdef"
PUSH_SECRET = "push-client-secret-0123456789"
CIBA = "urn:openid:params:grant-type:ciba"


def yaml_for(tmp: Path, endpoint: str, store: str) -> str:
    return f"""
store: {{url: "{store}"}}
notifications: {{timeout: 2, max_attempts: 4, initial_wait: 1, max_wait: 8}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    allow_http_loopback_notifications: true
    connectors:
      example:
        type: example
        people:
          - {{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}
          - {{hint: "ssn:191212121212", name: Tolvan Tolvansson, outcome: deny, polls: 0}}
          - {{hint: "email:pending@example.com", name: Pat Pending, outcome: pending}}
    routes: [{{login_hint: ssn, connector: example}}, {{login_hint: email, connector: example}}]
    clients:
      - client_id: pinger
        auth: {{method: client_secret_basic, secret: "{PING_SECRET}"}}
        delivery_mode: ping
        notification_endpoint: "{endpoint}"
        scopes: [openid, profile]
      - client_id: pusher
        auth: {{method: client_secret_basic, secret: "{PUSH_SECRET}"}}
        delivery_mode: push
        notification_endpoint: "{endpoint}"
        scopes: [openid, profile]
      - client_id: refresher
        auth: {{method: client_secret_basic, secret: "{REFRESHER_SECRET}"}}
        delivery_mode: push
        notification_endpoint: "{endpoint}"
        grant_types: [urn:openid:params:grant-type:ciba, refresh_token]
        scopes: [openid, profile]
"""


class Setup:
    def __init__(self, tmp: Path, clock: FakeClock, store: str) -> None:
        self.tmp = tmp
        self.clock = clock
        self.receiver = Receiver(free_port())
        self.config = parse_config(
            yaml_for(tmp, self.receiver.url, store), registry=load_registry()
        )

    def app(self) -> Any:
        return create_app(self.config, clock=self.clock, run_driver=False)


@pytest.fixture
async def setup(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Setup]:
    s = Setup(tmp_path, clock, "memory://")
    yield s
    await s.receiver.stop()


async def drive(app: Any) -> None:
    await app.state.driver.run_once()
    await app.state.driver.drain()


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def start(
    client: Any,
    user: str,
    secret: str,
    hint: str = "ssn:199001011239",
    token: str = "notify-token-123",
) -> str:
    response = await client.post(
        "/acme/bc-authorize",
        data={"scope": "openid profile", "login_hint": hint, "client_notification_token": token},
        headers=basic(user, secret),
    )
    assert response.status_code == 200, response.text
    return response.json()["auth_req_id"]


async def test_ping_and_push_need_a_notification_token(setup: Setup) -> None:
    """bc-authorize from a ping client without client_notification_token is invalid_request."""
    async with AsyncTestClient(setup.app(), base_url="http://testserver.local") as client:
        response = await client.post(
            "/acme/bc-authorize",
            data={"scope": "openid", "login_hint": "ssn:199001011239"},
            headers=basic("pinger", PING_SECRET),
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        bad = await client.post(
            "/acme/bc-authorize",
            data={
                "scope": "openid",
                "login_hint": "ssn:199001011239",
                "client_notification_token": "has spaces in it",
            },
            headers=basic("pusher", PUSH_SECRET),
        )
        assert bad.json()["error"] == "invalid_request"


async def test_ping_happy_path(setup: Setup) -> None:
    """The ping client is notified with its bearer token, then redeems at the token endpoint."""
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pinger", PING_SECRET)
        pending = await client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=basic("pinger", PING_SECRET),
        )
        assert pending.json()["error"] == "authorization_pending"
        await drive(app)  # the connector approves
        await drive(app)  # the notification is delivered
        assert len(setup.receiver.received) == 1
        note = setup.receiver.received[0]
        assert note.body == {"auth_req_id": auth_req_id}
        assert note.headers["authorization"] == "Bearer notify-token-123"
        assert note.headers["content-type"] == "application/json"
        token = await client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=basic("pinger", PING_SECRET),
        )
        assert token.status_code == 200
        await drive(app)
        assert len(setup.receiver.received) == 1


async def push_keys(client: Any) -> KeySet:
    return KeySet.import_key_set((await client.get("/acme/jwks")).json())


async def test_push_happy_path(setup: Setup) -> None:
    """The push client receives the token response; the ID token binds auth_req_id and at_hash."""
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pusher", PUSH_SECRET)
        await drive(app)
        await drive(app)
        assert len(setup.receiver.received) == 1
        body = setup.receiver.received[0].body
        assert body["auth_req_id"] == auth_req_id
        assert body["token_type"] == "Bearer"
        claims = jwt.decode(body["id_token"], await push_keys(client), algorithms=["ES256"]).claims
        assert claims["urn:openid:params:jwt:claim:auth_req_id"] == auth_req_id
        digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
        assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        assert "rt_hash" not in claims
        userinfo = await client.get(
            "/acme/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert userinfo.json()["name"] == "Karl Karlsson"
        token = await client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=basic("pusher", PUSH_SECRET),
        )
        assert token.status_code == 400
        assert token.json()["error"] == "unauthorized_client"


async def test_push_of_access_denied(setup: Setup) -> None:
    """A declined push request delivers the error payload."""
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pusher", PUSH_SECRET, hint="ssn:191212121212")
        await drive(app)
        await drive(app)
        assert [r.body for r in setup.receiver.received] == [
            {
                "auth_req_id": auth_req_id,
                "error": "access_denied",
                "error_description": "the person said no",
            }
        ]


async def test_receiver_down_then_up_is_delivered_once(setup: Setup, clock: FakeClock) -> None:
    """Connection refused is retried with backoff; once the receiver is up it gets one call."""
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pinger", PING_SECRET)
        await drive(app)
        await drive(app)  # first attempt: nothing listens
        stored = await app.state.gateway.engine.get(auth_req_id)
        assert (stored.notify_state, stored.notify_attempts) == ("due", 1)
        assert stored.next_poll_at == pytest.approx(clock.now + 1, abs=0.01)
        await drive(app)  # not due yet: no attempt
        assert (await app.state.gateway.engine.get(auth_req_id)).notify_attempts == 1
        await setup.receiver.start()
        clock.advance(1.5)
        await drive(app)
        clock.advance(60)
        await drive(app)
        assert len(setup.receiver.received) == 1
        assert (await app.state.gateway.engine.get(auth_req_id)).notify_state == "delivered"


@pytest.mark.parametrize("status", [400, 404, 302])
async def test_receiver_refusal_stops_delivery(setup: Setup, clock: FakeClock, status: int) -> None:
    """A 4xx (or a redirect, never followed) stops delivery after one attempt."""
    setup.receiver.statuses = [status]
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pinger", PING_SECRET)
        await drive(app)
        await drive(app)
        clock.advance(120)
        await drive(app)
        assert len(setup.receiver.received) == 1
        assert (await app.state.gateway.engine.get(auth_req_id)).notify_state == "failed"


async def test_server_errors_retry_until_the_bound(setup: Setup, clock: FakeClock) -> None:
    """5xx answers are retried with growing waits and stop at max_attempts."""
    setup.receiver.statuses = [503] * 10
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pinger", PING_SECRET)
        await drive(app)
        waits = []
        for _ in range(6):
            before = await app.state.gateway.engine.get(auth_req_id)
            if before.next_poll_at is not None:
                waits.append(before.next_poll_at - clock.now)
                clock.advance(max(before.next_poll_at - clock.now, 0))
            await drive(app)
        assert len(setup.receiver.received) == 4
        assert (await app.state.gateway.engine.get(auth_req_id)).notify_state == "failed"
        assert waits[1:] == sorted(waits[1:])
        assert waits[-1] > waits[1]


async def test_lifetime_expiry_pings_the_client_which_then_learns_expired_token(
    setup: Setup, clock: FakeClock
) -> None:
    """A ping client is pinged once when its request expires; its poll answers expired_token."""
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pinger", PING_SECRET, hint="email:pending@example.com")
        await drive(app)
        assert setup.receiver.received == []
        clock.advance(121)
        await drive(app)  # expired (and cancelled upstream)
        await drive(app)  # the ping goes out
        await drive(app)
        assert [n.body for n in setup.receiver.received] == [{"auth_req_id": auth_req_id}]
        assert setup.receiver.received[0].headers["authorization"] == "Bearer notify-token-123"
        token = await client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=basic("pinger", PING_SECRET),
        )
        assert token.status_code == 400
        assert token.json()["error"] == "expired_token"


async def test_lifetime_expiry_is_pushed_as_expired_token(setup: Setup, clock: FakeClock) -> None:
    """A push client, which cannot poll, receives the push error payload expired_token."""
    await setup.receiver.start()
    app = setup.app()
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pusher", PUSH_SECRET, hint="email:pending@example.com")
        clock.advance(121)
        await drive(app)
        await drive(app)
        await drive(app)
        assert len(setup.receiver.received) == 1
        body = setup.receiver.received[0].body
        assert body["auth_req_id"] == auth_req_id
        assert body["error"] == "expired_token"
        assert "id_token" not in body and "access_token" not in body


async def test_lifetime_expiry_is_not_notified_when_turned_off(
    tmp_path: Path, clock: FakeClock
) -> None:
    """notifications.on_expiry: false - an expiry without an outcome sends nothing."""
    setup = Setup(tmp_path, clock, "memory://")
    off = yaml_for(tmp_path, setup.receiver.url, "memory://").replace(
        "max_wait: 8}", "max_wait: 8, on_expiry: false}"
    )
    setup.config = parse_config(off, registry=load_registry())
    assert setup.config.notifications.on_expiry is False
    await setup.receiver.start()
    app = setup.app()
    try:
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            for user, secret in (("pinger", PING_SECRET), ("pusher", PUSH_SECRET)):
                await start(client, user, secret, hint="email:pending@example.com")
            clock.advance(121)
            for _ in range(3):
                await drive(app)
            assert setup.receiver.received == []
    finally:
        await setup.receiver.stop()


async def test_delivery_survives_restart_mid_retry(tmp_path: Path, clock: FakeClock) -> None:
    """With SQLite, a gateway restarted between attempts delivers the pending notification."""
    setup = Setup(tmp_path, clock, f"sqlite:///{tmp_path}/gw.db")
    first = setup.app()
    async with AsyncTestClient(first, base_url="http://testserver.local") as client:
        auth_req_id = await start(client, "pusher", PUSH_SECRET)
        await drive(first)
        await drive(first)  # receiver down: attempt 1 fails
    second = setup.app()
    try:
        await setup.receiver.start()
        async with AsyncTestClient(second, base_url="http://testserver.local") as client:
            clock.advance(2)
            await drive(second)
            assert len(setup.receiver.received) == 1
            assert setup.receiver.received[0].body["auth_req_id"] == auth_req_id
            assert "id_token" in setup.receiver.received[0].body
    finally:
        await setup.receiver.stop()
