"""The ACL docs/deployment.md recommends is enough for the whole Store protocol.

A private ``redis-server`` on a spare port gets the documented restricted user
(``~ciba-prod:* -@all +@read +@write +@scripting +@connection -@dangerous``);
the store runs every operation through it, including reloading its scripts
after ``SCRIPT FLUSH``, and cannot touch keys outside its prefix.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.flow.model import Status
from ciba_gateway.store.redis import RedisStore
from tests.contract.test_store_contract import T0, bump, make_request
from tests.integration.test_redis_outage import RedisServer

PASSWORD = "acl-test-password-0123456789"


def documented_acl() -> str:
    """The ACL rule from the deployment guide's requirements table, password filled in."""
    text = (Path(__file__).parents[2] / "docs" / "deployment.md").read_text()
    match = re.search(r"`user ciba on >PASSWORD ([^`]+)`", text)
    assert match, "docs/deployment.md no longer documents the ACL rule"
    return f"user ciba on >{PASSWORD} {match.group(1)}"


@pytest.fixture
async def admin(private_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=private_redis.port)
    await client.execute_command("ACL", "SETUSER", *documented_acl().split()[1:])
    yield client
    await client.aclose()


async def test_documented_acl_allows_every_store_operation(
    private_redis: RedisServer, admin: aioredis.Redis
) -> None:
    clock = FakeClock(T0)
    url = f"redis://ciba:{PASSWORD}@127.0.0.1:{private_redis.port}/0"
    store = RedisStore(url, prefix="ciba-prod:", clock=clock)
    await store.open()
    try:
        assert await store.ping() is True
        request = make_request(next_poll_at=T0)
        await store.create(request)
        assert await store.get(request.auth_req_id) == request
        (leased,) = await store.lease_due(T0, "replica-1", 30, 10)
        await admin.script_flush()  # a failed-over server: the store reloads its scripts
        polled = bump(leased, next_poll_at=T0 + 2, lease_owner=None, lease_until=None)
        assert await store.transition(polled) is True
        (again,) = await store.lease_due(T0 + 2, "replica-2", 30, 10)
        assert await store.release_leases("replica-2") == 1
        assert await store.count_pending() == 1
        assert await store.transition(bump(again)) is False  # released: a stale copy
        current = await store.get(request.auth_req_id)
        assert current is not None
        assert await store.transition(bump(current, status=Status.APPROVED, next_poll_at=None))
        assert await store.remember("jti", "a", ttl=60) is True
        assert await store.remember("jti", "a", ttl=60) is False
        await store.put_value("sms", "k", b"v", ttl=60)
        assert await store.get_value("sms", "k") == b"v"
        assert await store.take_value("sms", "k") == b"v"
        assert await store.swap_value("pace", "k", b"1", ttl=60) is None
        assert await store.swap_value("pace", "k", b"2", ttl=60) == b"1"
        assert await store.incr("rate", "c", ttl=60) == 1
        clock.advance(10_000)
        assert await store.purge_expired(clock.now) == 0

        # The same user cannot reach keys outside the deployment's prefix.
        outsider = aioredis.Redis(port=private_redis.port, username="ciba", password=PASSWORD)
        try:
            with pytest.raises(NoPermissionError, match="no permissions"):
                await outsider.set("other-deployment:x", b"1")
        finally:
            await outsider.aclose()
    finally:
        await store.close()
