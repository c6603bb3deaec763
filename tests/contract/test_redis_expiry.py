"""Values whose ttl has already run out, on every store (Redis: no ``PX 0`` error).

A caller may pass a ttl at or below zero (a replay cache entry for an assertion
whose ``exp`` has passed, a clock that stepped): the value is simply already
expired. Redis refuses ``SET ... PX 0``, so its store must clamp the physical
TTL instead of failing with a StoreError.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.store.base import Store
from tests.contract.test_store_contract import T0, _make_store, fresh_redis_prefix


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with AsyncExitStack() as stack:
        prefix = ""
        if request.param == "redis":
            prefix = await stack.enter_async_context(fresh_redis_prefix())
        store = _make_store(request.param, tmp_path, FakeClock(T0), prefix)
        await store.open()
        stack.push_async_callback(store.close)
        yield store


@pytest.mark.parametrize("ttl", [0.0, -60.0])
async def test_values_with_a_spent_ttl_are_already_expired(any_store: Store, ttl: float) -> None:
    """put/remember/incr with ttl <= 0 succeed and leave nothing that reads as live."""
    await any_store.put_value("sms", "spent", b"x", ttl=ttl)
    assert await any_store.get_value("sms", "spent") is None
    assert await any_store.take_value("sms", "spent") is None
    assert await any_store.remember("jti", "spent", ttl=ttl) is True
    assert await any_store.remember("jti", "spent", ttl=ttl) is True
    assert await any_store.incr("rate", "spent", ttl=ttl) == 1
    assert await any_store.incr("rate", "spent", ttl=ttl) == 1
