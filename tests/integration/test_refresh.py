"""Refresh tokens: opt-in per client, rotation, reuse detection, lifetimes, push rt_hash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from joserfc import jwt
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.config.model import GatewayConfig
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.tokens.id_token import token_hash
from tests.contract.test_store_contract import REDIS_URL, fresh_redis_prefix
from tests.integration.test_introspection import basic
from tests.integration.test_ping_push import REFRESHER_SECRET, Setup, push_keys
from tests.integration.test_ping_push import drive as drive_push
from tests.integration.test_ping_push import start as start_push

CIBA = "urn:openid:params:grant-type:ciba"
LONG = ("long", "long-lived-secret-0123456789")
SHORT = ("short", "short-lived-secret-0123456789")
THIEF = ("thief", "another-rp-secret-0123456789")


def config_yaml(tmp: Path, store: str = "memory://") -> str:
    return f"""
store: {{url: "{store}"}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    lifetimes: {{access_token: 600, refresh_token: 3600, refresh_token_max: 7200}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: long
        auth: {{method: client_secret_basic, secret: "{LONG[1]}"}}
        grant_types: [{CIBA}, refresh_token]
        scopes: [openid, profile]
      - client_id: short
        auth: {{method: client_secret_basic, secret: "{SHORT[1]}"}}
        scopes: [openid, profile]
      - client_id: thief
        auth: {{method: client_secret_basic, secret: "{THIEF[1]}"}}
        grant_types: [{CIBA}, refresh_token]
        scopes: [openid, profile]
"""


@dataclass
class Replica:
    """One app and its client; ``call`` runs work on the app's own event loop."""

    app: Litestar
    http: AsyncTestClient[Litestar]

    async def call(self, work: Callable[[], Awaitable[Any]]) -> Any:
        return await asyncio.to_thread(self.http.blocking_portal.call, work)

    async def tokens(self, clock: FakeClock, client: tuple[str, str] = LONG) -> dict[str, Any]:
        """A full CIBA flow: the token response."""
        started = await self.http.post(
            "/acme/bc-authorize",
            data={"scope": "openid profile", "login_hint": "ssn:199001011239"},
            headers=basic(client),
        )
        assert started.status_code == 200, started.text

        async def drive() -> None:
            await self.app.state.driver.run_once()
            await self.app.state.driver.drain()

        await self.call(drive)
        clock.advance(5)
        response = await self.http.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": started.json()["auth_req_id"]},
            headers=basic(client),
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def refresh(self, token: str, client: tuple[str, str] = LONG, **extra: str) -> Any:
        return await self.http.post(
            "/acme/token",
            data={"grant_type": "refresh_token", "refresh_token": token, **extra},
            headers=basic(client),
        )

    async def userinfo(self, access_token: str) -> Any:
        return await self.http.get(
            "/acme/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )

    async def introspect(self, token: str) -> dict[str, Any]:
        response = await self.http.post(
            "/acme/introspect", data={"token": token}, headers=basic(SHORT)
        )
        return response.json()


async def replicas(
    stack: AsyncExitStack, config: GatewayConfig, clock: FakeClock, count: int
) -> list[Replica]:
    out = []
    for _ in range(count):
        app = create_app(config, clock=clock, run_driver=False)
        http = await stack.enter_async_context(
            AsyncTestClient(app, base_url="http://testserver.local")
        )
        out.append(Replica(app, http))
    return out


@pytest.fixture
async def one(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Replica]:
    config = parse_config(config_yaml(tmp_path), registry=load_registry())
    async with AsyncExitStack() as stack:
        (replica,) = await replicas(stack, config, clock, 1)
        yield replica


@pytest.fixture
async def two_on_redis(tmp_path: Path, clock: FakeClock) -> AsyncIterator[list[Replica]]:
    config = parse_config(config_yaml(tmp_path, REDIS_URL), registry=load_registry())
    async with fresh_redis_prefix() as prefix, AsyncExitStack() as stack:
        config = msgspec.structs.replace(
            config, store=msgspec.structs.replace(config.store, prefix=prefix)
        )
        yield await replicas(stack, config, clock, 2)


async def test_only_opted_in_clients_get_refresh_tokens(one: Replica, clock: FakeClock) -> None:
    """A client without the refresh_token grant gets none and cannot use the grant."""
    assert "refresh_token" in await one.tokens(clock)
    plain = await one.tokens(clock, SHORT)
    assert "refresh_token" not in plain
    refused = await one.refresh("anything", SHORT)
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    meta = (await one.http.get("/acme/.well-known/openid-configuration")).json()
    assert meta["grant_types_supported"] == [CIBA, "refresh_token"]


async def test_rotation_gives_new_tokens_and_retires_the_old_one(
    one: Replica, clock: FakeClock
) -> None:
    """Every use returns a new refresh token; the used one is inactive from then on."""
    first = await one.tokens(clock)
    assert (await one.introspect(first["refresh_token"]))["active"] is True
    response = await one.refresh(first["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] == 600
    assert "id_token" not in second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    info = await one.userinfo(second["access_token"])
    assert info.status_code == 200
    assert info.json()["name"] == "Karl Karlsson"
    assert (await one.introspect(first["refresh_token"])) == {"active": False}
    rotated = await one.introspect(second["refresh_token"])
    assert rotated["active"] is True
    assert rotated["client_id"] == "long"
    assert rotated["scope"] == "openid profile"
    third = await one.refresh(second["refresh_token"])
    assert third.status_code == 200


async def test_reuse_of_a_rotated_token_revokes_the_family(one: Replica, clock: FakeClock) -> None:
    """Replaying a used refresh token ends every refresh and access token of the grant."""
    first = await one.tokens(clock)
    second = (await one.refresh(first["refresh_token"])).json()
    replay = await one.refresh(first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    after = await one.refresh(second["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    for access_token in (first["access_token"], second["access_token"]):
        assert (await one.userinfo(access_token)).status_code == 401
        assert await one.introspect(access_token) == {"active": False}


async def test_another_clients_use_revokes_the_family(one: Replica, clock: FakeClock) -> None:
    """A refresh token is bound to its client; a stolen one presented elsewhere burns the grant."""
    first = await one.tokens(clock)
    stolen = await one.refresh(first["refresh_token"], THIEF)
    assert stolen.json()["error"] == "invalid_grant"
    owner = await one.refresh(first["refresh_token"])
    assert owner.json()["error"] == "invalid_grant"
    assert (await one.userinfo(first["access_token"])).status_code == 401


async def test_idle_and_absolute_lifetimes(one: Replica, clock: FakeClock) -> None:
    """Unused for refresh_token seconds: expired; no token outlives refresh_token_max."""
    idle = await one.tokens(clock)
    clock.advance(3601)
    assert (await one.refresh(idle["refresh_token"])).json()["error"] == "invalid_grant"

    current = (await one.tokens(clock))["refresh_token"]
    for _ in range(3):  # 3 x 2000 s: each use within the idle limit, 6000 s in total
        clock.advance(2000)
        response = await one.refresh(current)
        assert response.status_code == 200, response.text
        current = response.json()["refresh_token"]
    clock.advance(1300)  # 7300 s after the grant: past refresh_token_max
    assert (await one.refresh(current)).json()["error"] == "invalid_grant"


async def test_scope_may_narrow_but_not_widen(one: Replica, clock: FakeClock) -> None:
    """RFC 6749 6: a narrower access token drops the claims of the dropped scope."""
    first = await one.tokens(clock)
    wider = await one.refresh(first["refresh_token"], scope="openid email")
    assert wider.json()["error"] == "invalid_scope"
    second = await one.tokens(clock)
    narrow = await one.refresh(second["refresh_token"], scope="openid")
    assert narrow.status_code == 200, narrow.text
    assert narrow.json()["scope"] == "openid"
    info = (await one.userinfo(narrow.json()["access_token"])).json()
    assert "name" not in info and "sub" in info
    again = await one.refresh(narrow.json()["refresh_token"])
    assert (await one.userinfo(again.json()["access_token"])).json()["name"] == "Karl Karlsson"


async def test_revoking_a_refresh_token_ends_its_grant(one: Replica, clock: FakeClock) -> None:
    """RFC 7009 2.1: revoking the refresh token also ends the grant's access tokens."""
    first = await one.tokens(clock)
    revoked = await one.http.post(
        "/acme/revoke",
        data={"token": first["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic(LONG),
    )
    assert revoked.status_code == 200
    assert (await one.refresh(first["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await one.userinfo(first["access_token"])).status_code == 401


async def test_push_id_token_carries_rt_hash(tmp_path: Path, clock: FakeClock) -> None:
    """CIBA Core 10.3.1: a pushed ID token has rt_hash when a refresh token is pushed."""
    setup = Setup(tmp_path, clock, "memory://")
    await setup.receiver.start()
    try:
        app = setup.app()
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            await start_push(client, "refresher", REFRESHER_SECRET)
            await drive_push(app)
            await drive_push(app)
            body = setup.receiver.received[0].body
            keys = await push_keys(client)
            claims = jwt.decode(body["id_token"], keys, algorithms=["ES256"]).claims
            assert claims["rt_hash"] == token_hash(body["refresh_token"], "ES256")
            refreshed = await client.post(
                "/acme/token",
                data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                headers=basic(("refresher", REFRESHER_SECRET)),
            )
            assert refreshed.status_code == 200, refreshed.text
    finally:
        await setup.receiver.stop()


async def test_rotation_and_reuse_across_two_replicas_on_redis(
    two_on_redis: list[Replica], clock: FakeClock
) -> None:
    """Issued on A, rotated on B, replayed on A: the family is gone on both replicas."""
    a, b = two_on_redis
    first = await a.tokens(clock)
    rotated = await b.refresh(first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert (await a.userinfo(second["access_token"])).status_code == 200
    replay = await a.refresh(first["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    for replica in (a, b):
        assert (await replica.refresh(second["refresh_token"])).json()["error"] == "invalid_grant"
        assert (await replica.userinfo(second["access_token"])).status_code == 401


async def test_one_token_redeemed_on_both_replicas_at_once(
    two_on_redis: list[Replica], clock: FakeClock
) -> None:
    """Exactly one of two simultaneous uses rotates; the other is a replay and ends the grant."""
    a, b = two_on_redis
    first = await a.tokens(clock)
    answers = await asyncio.gather(
        a.refresh(first["refresh_token"]), b.refresh(first["refresh_token"])
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 400]
    winner = next(r for r in answers if r.status_code == 200).json()
    assert next(r for r in answers if r.status_code == 400).json()["error"] == "invalid_grant"
    assert (await a.refresh(winner["refresh_token"])).json()["error"] == "invalid_grant"
