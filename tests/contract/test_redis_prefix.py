"""Two deployments share one Redis server under distinct ``store.prefix`` values.

Each deployment sees only its own requests, leases, replay caches and values,
and every key either writes starts with its own prefix. Runs against the
server on 127.0.0.1:6379 (``scripts/prepare.sh`` starts one).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from ciba_gateway.config.model import StoreConfig
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.flow.model import Status
from ciba_gateway.store.factory import create_store
from ciba_gateway.store.redis import RedisStore
from tests.contract.test_store_contract import (
    REDIS_URL,
    T0,
    bump,
    fresh_redis_prefix,
    make_request,
)


@pytest.fixture
async def deployments() -> AsyncIterator[list[RedisStore]]:
    """Two stores built from config like two deployments, each under a fresh prefix."""
    clock = FakeClock(T0)
    async with fresh_redis_prefix() as staging, fresh_redis_prefix() as prod:
        stores = []
        for prefix in (staging, prod):
            store = create_store(StoreConfig(url=REDIS_URL, prefix=prefix), clock=clock)
            assert isinstance(store, RedisStore)
            stores.append(store)
        for store in stores:
            await store.open()
        try:
            yield stores
        finally:
            for store in stores:
                await store.close()


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_two_prefixes_on_one_server_never_see_each_other(
    deployments: list[RedisStore], client: aioredis.Redis
) -> None:
    """Same auth_req_id, jti, value key and counter under two prefixes: fully independent."""
    a, b = deployments
    tag = secrets.token_hex(6)
    jti, link, rp = f"assertion-{tag}", f"link-{tag}", f"rp-{tag}"

    request = make_request(next_poll_at=T0)
    await a.create(request)
    await b.create(msgspec.structs.replace(request, client_id="other-rp"))
    assert (await a.get(request.auth_req_id)).client_id == "callcenter"
    assert (await b.get(request.auth_req_id)).client_id == "other-rp"

    # Leasing and compare-and-set in one deployment leave the other untouched.
    (leased,) = await a.lease_due(T0, "replica-1", 30, 10)
    (other,) = await b.lease_due(T0, "replica-1", 30, 10)
    assert (leased.client_id, other.client_id) == ("callcenter", "other-rp")
    done = bump(
        leased, status=Status.APPROVED, next_poll_at=None, lease_owner=None, lease_until=None
    )
    assert await a.transition(done)
    assert (await b.get(request.auth_req_id)).status is Status.PENDING
    assert (await a.count_pending(), await b.count_pending()) == (0, 1)
    assert await a.release_leases("replica-1") == 0
    assert await b.release_leases("replica-1") == 1

    # Replay caches, values and counters are per deployment too.
    assert await a.remember("jti", jti, ttl=60) is True
    assert await b.remember("jti", jti, ttl=60) is True
    assert await a.remember("jti", jti, ttl=60) is False
    await a.put_value("sms", link, b"staging", ttl=60)
    await b.put_value("sms", link, b"prod", ttl=60)
    assert await a.take_value("sms", link) == b"staging"
    assert await b.get_value("sms", link) == b"prod"
    assert [await a.incr("rate", rp, ttl=60) for _ in range(2)] == [1, 2]
    assert await b.incr("rate", rp, ttl=60) == 1

    # Every key the two deployments wrote lives under one of the prefixes (scanning the
    # whole server for the names used above), and carries a TTL.
    def owners(fragment: str, keys: list[bytes]) -> list[str]:
        found = sorted(
            s.prefix for key in keys for s in deployments if key.startswith(s.prefix.encode())
        )
        assert len(found) == len(keys), (fragment, keys)
        return found

    both = sorted([a.prefix, b.prefix])
    for fragment, expected in (
        (request.auth_req_id, both),
        (jti, both),
        (rp, both),
        (link, [b.prefix]),  # a's was taken
    ):
        keys = [key async for key in client.scan_iter(match=f"*{fragment}*", count=1000)]
        assert owners(fragment, keys) == expected
    for store in deployments:
        keys = [key async for key in client.scan_iter(match=f"{store.prefix}*", count=1000)]
        ttls = [await client.pttl(key) for key in keys]
        assert keys and all(ttl > 0 for ttl in ttls), dict(zip(keys, ttls, strict=True))
