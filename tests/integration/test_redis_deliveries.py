"""Pending ping/push deliveries on the Redis store, shared by two gateway replicas.

Two real apps (each with its own ``RedisStore``, connection pool and driver id)
share the machine's Redis on 127.0.0.1:6379 under a fresh key prefix, as
replicas behind a load balancer do. A notification that one replica failed to
deliver is delivered by the other, once; a delivery leased by a replica that
died is left alone until its lease runs out, then taken over, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock
from tests.contract.test_store_contract import REDIS_URL, fresh_redis_prefix
from tests.integration.receiver import Receiver, free_port
from tests.integration.test_ping_push import PING_SECRET, PUSH_SECRET, start, yaml_for

BASE_URL = "http://testserver.local"
CIBA = "urn:openid:params:grant-type:ciba"


Replica = tuple[Any, AsyncTestClient[Any]]


async def in_app(client: AsyncTestClient[Any], work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work`` on the app's own event loop, where its Redis connections live."""
    return await asyncio.to_thread(client.blocking_portal.call, work)


async def drive(replica: Replica) -> None:
    """Let the replica's driver lease and handle everything due, once."""
    app, client = replica

    async def once() -> None:
        await app.state.driver.run_once()
        await app.state.driver.drain()

    await in_app(client, once)


async def read(replica: Replica, auth_req_id: str) -> Any:
    app, client = replica
    return await in_app(client, lambda: app.state.gateway.engine.get(auth_req_id))


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    async with fresh_redis_prefix() as prefix:
        yield prefix


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    instance = Receiver(free_port())
    yield instance
    await instance.stop()


@pytest.fixture
async def replicas(
    tmp_path: Path, clock: FakeClock, receiver: Receiver, redis_prefix: str
) -> AsyncIterator[list[Replica]]:
    """Two apps on one Redis prefix, both running (lifespans entered), drivers driven by hand."""
    config = parse_config(yaml_for(tmp_path, receiver.url, REDIS_URL), registry=load_registry())
    config = msgspec.structs.replace(
        config, store=msgspec.structs.replace(config.store, prefix=redis_prefix)
    )
    async with AsyncExitStack() as stack:
        pairs = []
        for _ in range(2):
            app = create_app(config, clock=clock, run_driver=False)
            client = await stack.enter_async_context(AsyncTestClient(app, base_url=BASE_URL))
            pairs.append((app, client))
        assert pairs[0][0].state.driver.owner != pairs[1][0].state.driver.owner
        yield pairs


async def test_delivery_one_replica_failed_is_delivered_once_by_the_other(
    replicas: list[Replica], receiver: Receiver, clock: FakeClock
) -> None:
    """Replica A's attempt fails (receiver down); replica B delivers it; nobody repeats it."""
    a, b = replicas
    auth_req_id = await start(a[1], "pusher", PUSH_SECRET)
    await drive(a)  # the connector approves: a push delivery is due
    await drive(a)  # attempt 1: nothing listens
    stored = await read(b, auth_req_id)
    assert (stored.notify_state, stored.notify_attempts) == ("due", 1)

    await receiver.start()
    clock.advance(2)
    await drive(b)
    assert [note.body["auth_req_id"] for note in receiver.received] == [auth_req_id]
    assert "id_token" in receiver.received[0].body

    clock.advance(60)
    await drive(a)
    await drive(b)
    assert len(receiver.received) == 1
    assert (await read(a, auth_req_id)).notify_state == "delivered"


async def test_delivery_leased_by_a_dead_replica_is_taken_over_after_the_lease(
    replicas: list[Replica], receiver: Receiver, clock: FakeClock
) -> None:
    """A delivery leased by a replica that died is not sent until the lease ends, then once."""
    a, b = replicas
    await receiver.start()
    auth_req_id = await start(a[1], "pinger", PING_SECRET)
    await drive(a)  # the connector approves: a ping delivery is due

    # A third replica leases the due delivery and dies before sending it.
    store = a[0].state.gateway.engine.store
    leased = await in_app(a[1], lambda: store.lease_due(clock.now, "dead-replica", 15, 10))
    assert [r.auth_req_id for r in leased] == [auth_req_id]

    await drive(a)
    await drive(b)
    clock.advance(14)
    await drive(b)
    assert receiver.received == []

    clock.advance(2)
    await drive(b)
    assert [note.body for note in receiver.received] == [{"auth_req_id": auth_req_id}]
    clock.advance(60)
    await drive(a)
    await drive(b)
    assert len(receiver.received) == 1

    # The ping client redeems at the other replica, once.
    grant = {"grant_type": CIBA, "auth_req_id": auth_req_id}
    token = await b[1].post("/acme/token", data=grant, auth=("pinger", PING_SECRET))
    assert token.status_code == 200, token.text
    again = await a[1].post("/acme/token", data=grant, auth=("pinger", PING_SECRET))
    assert again.json()["error"] == "invalid_grant"
