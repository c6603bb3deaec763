"""Abuse limits on bc-authorize starts: the limiter on memory and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from ciba_gateway.config.model import ClientConfig, StartLimits, StoreConfig, TenantConfig
from ciba_gateway.connector import LoginHint
from ciba_gateway.errors import SlowDownError
from ciba_gateway.protocol.quota import StartLimiter
from tests.contract.test_store_contract import REDIS_URL, fresh_redis_prefix

KARL = LoginHint(kind="ssn", value="199001011239")
TOLVAN = LoginHint(kind="ssn", value="191212121212")


def tenant(**limits: str | None) -> TenantConfig:
    return msgspec.convert(
        {
            "id": "acme",
            "issuer": "http://gw.test/acme",
            "keys": [{"kid": "k", "file": "unused.jwk"}],
            "subject": {"salt": "limits-subject-salt-0123"},
            "clients": [
                {"client_id": "rp", "auth": {"method": "client_secret_basic", "secret": "x" * 20}},
                {
                    "client_id": "batch",
                    "auth": {"method": "client_secret_basic", "secret": "y" * 20},
                    "start_limits": {"per_client": None, "per_login_hint": None},
                },
            ],
            "start_limits": limits,
        },
        TenantConfig,
    )


def client(t: TenantConfig, client_id: str = "rp") -> ClientConfig:
    found = t.client(client_id)
    assert found is not None
    return found


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[StartLimiter]:
    if request.param == "memory":
        yield StartLimiter.for_store(StoreConfig(url="memory://"))
        return
    async with fresh_redis_prefix() as prefix:
        made = StartLimiter.for_store(StoreConfig(url=REDIS_URL, prefix=prefix))
        yield made
        await made.aclose()


async def test_per_login_hint_limit_answers_429_slow_down(limiter: StartLimiter) -> None:
    """The third start for one person within the window is refused with Retry-After."""
    t = tenant(per_client=None, per_login_hint="2/minute")
    await limiter.check(t, client(t), KARL)
    await limiter.check(t, client(t), KARL)
    with pytest.raises(SlowDownError) as info:
        await limiter.check(t, client(t), KARL)
    error = info.value
    assert (error.status_code, error.error) == (429, "slow_down")
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    assert "this user" in error.description
    await limiter.check(t, client(t), TOLVAN)  # another person is not affected


async def test_per_client_limit_counts_every_hint(limiter: StartLimiter) -> None:
    """A client over its rate is refused whoever it asks for."""
    t = tenant(per_client="2/minute", per_login_hint=None)
    await limiter.check(t, client(t), KARL)
    await limiter.check(t, client(t), TOLVAN)
    with pytest.raises(SlowDownError, match="this client"):
        await limiter.check(t, client(t), LoginHint(kind="tel", value="+46701234567"))


async def test_client_override_replaces_the_tenant_limits(limiter: StartLimiter) -> None:
    """A client with its own start_limits (here: none) is not held to the tenant's."""
    t = tenant(per_client="1/minute", per_login_hint="1/minute")
    for _ in range(5):
        await limiter.check(t, client(t, "batch"), KARL)


async def test_tenants_count_apart(limiter: StartLimiter) -> None:
    """The same client id and hint in another tenant has its own counters."""
    a = tenant(per_client="1/minute", per_login_hint=None)
    b = msgspec.structs.replace(a, id="beta", issuer="http://gw.test/beta")
    await limiter.check(a, client(a), KARL)
    await limiter.check(b, client(b), KARL)
    with pytest.raises(SlowDownError):
        await limiter.check(a, client(a), KARL)


async def test_redis_counters_are_shared_by_replicas() -> None:
    """Two limiters on one Redis (two replicas) share the count, and keys hold no hint."""
    import redis.asyncio as aioredis

    t = tenant(per_client=None, per_login_hint="2/minute")
    async with fresh_redis_prefix() as prefix:
        config = StoreConfig(url=REDIS_URL, prefix=prefix)
        one, two = StartLimiter.for_store(config), StartLimiter.for_store(config)
        try:
            await one.check(t, client(t), KARL)
            await two.check(t, client(t), KARL)
            with pytest.raises(SlowDownError):
                await one.check(t, client(t), KARL)
            raw = aioredis.Redis.from_url(REDIS_URL)
            keys = [k.decode() async for k in raw.scan_iter(match=f"{prefix}*")]
            await raw.aclose()
        finally:
            await one.aclose()
            await two.aclose()
    assert keys and all(k.startswith(f"{prefix}limits") for k in keys)
    assert not [k for k in keys if KARL.value in k]


def test_rates_are_checked_at_config_time() -> None:
    """A malformed rate is a config error naming the field."""
    with pytest.raises(msgspec.ValidationError, match="per_login_hint must be a rate"):
        msgspec.convert({"per_login_hint": "lots"}, StartLimits)
