"""The Store contract, run against every implementation through one ``store`` fixture.

The tests speak only to the ``Store`` protocol; time comes from an injectable
clock, never from sleeping. The SQLite-only tests at the end cover what only a
shared file can show: several processes and a restart.

Redis runs against the server on ``127.0.0.1:6379`` (``scripts/prepare.sh`` starts one),
each test under its own random key prefix, deleted afterwards. The Redis store
compares logical times from the same fake clock as the others; its keys' real
TTLs are only its garbage collector, so the Redis-only tests at the end check
those with short real TTLs (and real sleeps), plus what only a shared server
shows: two stores leasing concurrently, lost scripts, an unreachable server,
mutual TLS (a private ``redis-server`` with a throwaway CA).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.crc import key_slot

from ciba_gateway.config.model import StoreConfig, StoreTLSConfig
from ciba_gateway.connector import Identity, LoginHint
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.errors import StoreError
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.store import namespaces
from ciba_gateway.store.base import Store, poller
from ciba_gateway.store.factory import create_store
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.redis import RedisStore
from ciba_gateway.store.sqlite import SQLiteStore
from ciba_gateway.store.values import Values

T0 = 1_700_000_000.0
RETENTION = 600.0
LIFETIME = 120.0
# scripts/prepare.sh starts Redis on this port too (default 6379).
REDIS_URL = f"redis://127.0.0.1:{os.environ.get('CIBA_REDIS_PORT', '6379')}/0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@asynccontextmanager
async def fresh_redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the local Redis; every key under it is deleted afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        try:
            await client.ping()
        except (aioredis.ConnectionError, OSError):
            pytest.fail(f"no Redis at {REDIS_URL}: run scripts/prepare.sh")
        prefix = f"test-{secrets.token_hex(6)}:"
        yield prefix
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    async with fresh_redis_prefix() as prefix:
        yield prefix


def _make_store(kind: str, tmp_path: Path, clock: Callable[[], float], prefix: str) -> Store:
    if kind == "memory":
        return MemoryStore(retention=RETENTION, clock=clock)
    if kind == "redis":
        return RedisStore(REDIS_URL, retention=RETENTION, prefix=prefix, clock=clock)
    return SQLiteStore(str(tmp_path / "db" / "gateway.db"), retention=RETENTION, clock=clock)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    async with AsyncExitStack() as stack:
        prefix = ""
        if request.param == "redis":
            prefix = await stack.enter_async_context(fresh_redis_prefix())
        instance = _make_store(request.param, tmp_path, clock, prefix)
        await instance.open()
        stack.push_async_callback(instance.close)
        yield instance


def make_request(now: float = T0, **overrides: Any) -> AuthRequest:
    fields: dict[str, Any] = {
        "auth_req_id": secrets.token_urlsafe(16),
        "tenant_id": "demo",
        "client_id": "callcenter",
        "scope": ("openid", "profile"),
        "login_hint": LoginHint(kind="ssn", value="198001011234", country="SE"),
        "connector": "bankid",
        "created_at": now,
        "expires_at": now + LIFETIME,
        "interval": 5,
        "next_poll_at": now,
    }
    fields.update(overrides)
    return AuthRequest(**fields)


def bump(request: AuthRequest, **changes: Any) -> AuthRequest:
    return msgspec.structs.replace(request, version=request.version + 1, **changes)


# --- token polls: read and pace in one call -----------------------------------

OWNER = poller("demo", "callcenter")


async def _poll(store: Store, request: AuthRequest, now: float, owner: str = OWNER) -> Any:
    return await store.poll(request.auth_req_id, owner, now, 0.5, 5)


async def test_poll_reads_the_request_and_slows_down_an_early_poller(store: Store) -> None:
    """First poll: free; on time (interval - 0.5 s later): free; earlier: interval + 5."""
    request = make_request(interval=5)
    await store.create(request)
    assert await _poll(store, request, T0) == (request, None)
    assert await _poll(store, request, T0 + 4.5) == (request, None)
    assert await _poll(store, request, T0 + 6) == (request, 10)  # 1.5 s after the last
    assert await _poll(store, request, T0 + 15.4) == (request, 15)  # grown interval is 10
    assert await _poll(store, request, T0 + 30) == (request, None)  # 14.6 s: on time
    assert await store.poll("unknown", OWNER, T0, 0.5, 5) is None


async def test_poll_paces_only_the_requests_own_client_while_pending(store: Store) -> None:
    """Another client's polls, and polls of a decided or expired request, record nothing."""
    request = make_request(interval=5)
    await store.create(request)
    for _ in range(3):
        assert await _poll(store, request, T0, owner=poller("demo", "other")) == (request, None)
    assert await _poll(store, request, T0) == (request, None)  # still this client's first
    approved = bump(request, status=Status.APPROVED)
    assert await store.transition(approved)
    assert await _poll(store, approved, T0 + 0.1) == (approved, None)
    late = make_request(interval=5)
    await store.create(late)
    assert await _poll(store, late, late.expires_at) == (late, None)
    assert await _poll(store, late, late.expires_at + 0.1) == (late, None)


async def test_poll_pacing_outlives_transitions_of_the_request(store: Store) -> None:
    """A driver's reschedule between two polls does not reset the client's pacing."""
    request = make_request(interval=5)
    await store.create(request)
    assert await _poll(store, request, T0) == (request, None)
    rescheduled = bump(request, next_poll_at=T0 + 30)
    assert await store.transition(rescheduled)
    assert await _poll(store, request, T0 + 1) == (rescheduled, 10)
    (leased,) = await store.lease_due(T0 + 30, "w", 30, 1)
    assert await _poll(store, request, T0 + 2) == (leased, 15)


async def test_poll_under_concurrent_pollers_slows_all_but_one(store: Store) -> None:
    """Ten polls at one instant after a first one: each is too early, each grows the interval."""
    request = make_request(interval=5)
    await store.create(request)
    await _poll(store, request, T0)
    results = await asyncio.gather(*(_poll(store, request, T0 + 1) for _ in range(10)))
    assert sorted(slowed for _, slowed in results) == [10 + 5 * i for i in range(10)]


# --- requests: create / get / transition -------------------------------------


async def test_store_implements_protocol_and_is_reachable(store: Store) -> None:
    """Every implementation satisfies the Store protocol and answers ping once open."""
    assert isinstance(store, Store)
    assert await store.ping() is True


async def test_create_then_get_round_trips_every_field(store: Store) -> None:
    """A created request reads back equal, nested identity and session included."""
    request = make_request(
        acr_values=("urn:grn:authn:se:bankid",),
        binding_message="Code 1234",
        authorization_details=({"type": "payment", "amount": "10.00"},),
        session={"order_ref": "abc", "tries": 2},
        identity=Identity(scheme="se-pnr", subject="198001011234", claims={"name": "Ann"}),
        client_notification_token="tok-" + "x" * 40,
    )
    await store.create(request)
    assert await store.get(request.auth_req_id) == request


async def test_get_unknown_is_none(store: Store) -> None:
    """An id that was never created reads as None."""
    assert await store.get("never-created") is None


async def test_duplicate_create_raises_and_keeps_the_original(store: Store) -> None:
    """Creating an existing auth_req_id raises StoreError and does not overwrite."""
    original = make_request()
    await store.create(original)
    with pytest.raises(StoreError):
        await store.create(msgspec.structs.replace(original, client_id="intruder"))
    assert await store.get(original.auth_req_id) == original


async def test_transition_replaces_the_next_version(store: Store) -> None:
    """A transition from the stored version succeeds and is what get returns."""
    request = make_request()
    await store.create(request)
    approved = bump(request, status=Status.APPROVED, next_poll_at=None, decided_at=T0 + 3)
    assert await store.transition(approved) is True
    assert await store.get(request.auth_req_id) == approved


async def test_transition_cas_two_writers_from_one_version(store: Store) -> None:
    """Of two writers from the same version the first wins and the second changes nothing."""
    request = make_request()
    await store.create(request)
    poll_result = bump(request, status=Status.APPROVED)
    callback_result = bump(request, status=Status.DENIED)
    assert await store.transition(poll_result) is True
    assert await store.transition(callback_result) is False
    assert await store.get(request.auth_req_id) == poll_result


async def test_transition_stores_its_values_only_when_it_wins(
    store: Store, clock: FakeClock
) -> None:
    """The values that go with a transition are written by the winner alone, with their TTL."""
    request = make_request()
    await store.create(request)
    winner = bump(request, status=Status.APPROVED)
    loser = bump(request, status=Status.DENIED)
    values = [("at:t", "k1", b"one", 10.0), ("sub:t", "k2", b"two", 20.0)]
    assert await store.transition(winner, values) is True
    assert await store.transition(loser, [("at:t", "k3", b"three", 10.0)]) is False
    assert await store.get(request.auth_req_id) == winner
    assert await store.get_value("at:t", "k1") == b"one"
    assert await store.get_value("sub:t", "k2") == b"two"
    assert await store.get_value("at:t", "k3") is None
    clock.advance(15)
    assert await store.get_value("at:t", "k1") is None
    assert await store.get_value("sub:t", "k2") == b"two"


async def test_transition_rejects_a_version_that_skips(store: Store) -> None:
    """A new version that is not exactly stored + 1 is refused."""
    request = make_request()
    await store.create(request)
    assert await store.transition(msgspec.structs.replace(request, version=2)) is False
    assert await store.transition(request) is False
    assert await store.get(request.auth_req_id) == request


async def test_transition_many_concurrent_writers_exactly_one_wins(store: Store) -> None:
    """Of fifty concurrent transitions from one version exactly one succeeds and is stored."""
    request = make_request()
    await store.create(request)
    candidates = [bump(request, error=f"writer-{i}") for i in range(50)]
    results = await asyncio.gather(*(store.transition(c) for c in candidates))
    assert results.count(True) == 1
    winner = candidates[results.index(True)]
    assert await store.get(request.auth_req_id) == winner


async def test_transition_unknown_id_is_false_and_creates_nothing(store: Store) -> None:
    """A transition on an id that does not exist returns False and inserts nothing."""
    ghost = make_request(version=1)
    assert await store.transition(ghost) is False
    assert await store.get(ghost.auth_req_id) is None


# --- leasing -------------------------------------------------------------------


async def test_lease_due_returns_only_due_requests(store: Store) -> None:
    """Requests with next_poll_at <= now are leased, whatever their status, carrying the lease.

    A terminal request with next_poll_at set has a ping/push notification due.
    """
    due = make_request(next_poll_at=T0 - 1)
    due_now = make_request(next_poll_at=T0)
    later = make_request(next_poll_at=T0 + 10)
    never = make_request(next_poll_at=None)
    terminal = make_request(next_poll_at=T0 - 5, status=Status.APPROVED)
    for r in (due, due_now, later, never, terminal):
        await store.create(r)

    leased = await store.lease_due(T0, "worker-a", 30, 10)

    assert {r.auth_req_id for r in leased} == {
        due.auth_req_id,
        due_now.auth_req_id,
        terminal.auth_req_id,
    }
    for r in leased:
        assert (r.lease_owner, r.lease_until, r.version) == ("worker-a", T0 + 30, 1)
        assert await store.get(r.auth_req_id) == r


async def test_leased_request_is_not_leased_again_until_the_lease_passes(store: Store) -> None:
    """Another owner (or the same one) gets nothing while the lease holds, and takes over after."""
    request = make_request(next_poll_at=T0)
    await store.create(request)
    (first,) = await store.lease_due(T0, "worker-a", 30, 10)

    assert await store.lease_due(T0 + 1, "worker-b", 30, 10) == []
    assert await store.lease_due(T0 + 1, "worker-a", 30, 10) == []
    assert await store.lease_due(T0 + 30, "worker-b", 30, 10) == []

    (taken,) = await store.lease_due(T0 + 31, "worker-b", 30, 10)
    assert taken.auth_req_id == request.auth_req_id
    assert (taken.lease_owner, taken.lease_until, taken.version) == ("worker-b", T0 + 61, 2)
    assert first.version == 1


async def test_lease_due_respects_limit_and_takes_earliest_first(store: Store) -> None:
    """lease_due returns at most ``limit`` requests, the earliest due first, each once."""
    requests = [make_request(next_poll_at=T0 - 10 + i) for i in range(5)]
    for r in reversed(requests):
        await store.create(r)

    first = await store.lease_due(T0, "w", 30, 2)
    second = await store.lease_due(T0, "w", 30, 2)
    third = await store.lease_due(T0, "w", 30, 2)

    ids = [r.auth_req_id for r in requests]
    assert [r.auth_req_id for r in first] == ids[:2]
    assert [r.auth_req_id for r in second] == ids[2:4]
    assert [r.auth_req_id for r in third] == ids[4:]
    assert await store.lease_due(T0, "w", 30, 0) == []


async def test_lease_bumps_version_so_a_stale_copy_cannot_overwrite(store: Store) -> None:
    """A copy read before a lease loses the CAS; the leased copy wins (poll vs. result race)."""
    request = make_request(next_poll_at=T0)
    await store.create(request)
    stale = await store.get(request.auth_req_id)
    assert stale is not None
    (leased,) = await store.lease_due(T0, "w", 30, 1)

    assert await store.transition(bump(stale, status=Status.DENIED)) is False
    polled = bump(leased, next_poll_at=T0 + 2, lease_owner=None, lease_until=None)
    assert await store.transition(polled) is True
    assert await store.get(request.auth_req_id) == polled


async def test_transition_moves_a_request_in_and_out_of_the_due_set(store: Store) -> None:
    """Transitions reschedule when lease_due returns a request, and a terminal status ends it."""
    request = make_request(next_poll_at=None)
    await store.create(request)
    assert await store.lease_due(T0, "w", 30, 10) == []

    scheduled = bump(request, next_poll_at=T0 + 5)
    assert await store.transition(scheduled)
    assert await store.lease_due(T0 + 4, "w", 30, 10) == []
    (leased,) = await store.lease_due(T0 + 5, "w", 30, 10)

    done = bump(
        leased, status=Status.APPROVED, next_poll_at=None, lease_owner=None, lease_until=None
    )
    assert await store.transition(done)
    assert await store.lease_due(T0 + 100, "w", 30, 10) == []


async def test_release_leases_frees_only_the_owners_leases(store: Store) -> None:
    """release_leases clears one owner's leases, bumping versions, so others can lease them."""
    a1, a2, b1 = (make_request(next_poll_at=T0 - 3 + i) for i in range(3))
    for r in (a1, a2, b1):
        await store.create(r)
    assert len(await store.lease_due(T0, "worker-a", 60, 2)) == 2
    assert len(await store.lease_due(T0, "worker-b", 60, 2)) == 1

    assert await store.release_leases("worker-a") == 2
    assert await store.release_leases("nobody") == 0

    released = await store.get(a1.auth_req_id)
    assert released is not None
    assert (released.lease_owner, released.lease_until, released.version) == (None, None, 2)
    retaken = await store.lease_due(T0 + 1, "worker-c", 60, 10)
    assert {r.auth_req_id for r in retaken} == {a1.auth_req_id, a2.auth_req_id}


# --- expiry and retention ---------------------------------------------------------


async def test_expired_request_is_kept_for_retention_then_gone(
    store: Store, clock: FakeClock
) -> None:
    """After expires_at a request still reads back until expires_at + retention, then it is gone."""
    request = make_request()
    await store.create(request)

    clock.now = request.expires_at + 1
    assert await store.get(request.auth_req_id) == request
    assert await store.count_pending() == 1

    clock.now = request.expires_at + RETENTION + 1
    assert await store.get(request.auth_req_id) is None
    assert await store.transition(bump(request, status=Status.EXPIRED)) is False
    assert await store.lease_due(clock.now, "w", 30, 10) == []
    assert await store.count_pending() == 0


async def test_purge_expired_deletes_only_what_is_past_retention(
    store: Store, clock: FakeClock
) -> None:
    """purge_expired removes requests past retention and expired values, and counts them.

    Redis expires values itself, so its purge finds (and counts) only the request.
    """
    old = make_request(now=T0 - LIFETIME - RETENTION - 10)
    fresh = make_request()
    await store.create(old)
    await store.create(fresh)
    await store.put_value("sms", "short", b"1", ttl=5)
    await store.remember("jti", "short", ttl=5)
    await store.put_value("sms", "long", b"2", ttl=600)

    clock.advance(10)
    # Redis expires values by itself (every key has a TTL): its purge counts requests only.
    assert await store.purge_expired(clock.now) == (1 if isinstance(store, RedisStore) else 3)

    assert await store.get(old.auth_req_id) is None
    assert await store.get(fresh.auth_req_id) == fresh
    assert await store.get_value("sms", "short") is None
    assert await store.remember("jti", "short", ttl=5) is True
    assert await store.get_value("sms", "long") == b"2"
    assert await store.count_pending() == 1
    assert await store.purge_expired(clock.now) == 0


async def test_count_pending_counts_pending_requests(store: Store) -> None:
    """count_pending counts pending requests and follows transitions out of pending."""
    pending = [make_request() for _ in range(3)]
    for r in pending:
        await store.create(r)
    await store.create(make_request(status=Status.APPROVED))
    assert await store.count_pending() == 3

    assert await store.transition(bump(pending[0], status=Status.DENIED))
    assert await store.count_pending() == 2


# --- small values ------------------------------------------------------------------


async def test_remember_is_true_once_then_again_after_ttl(store: Store, clock: FakeClock) -> None:
    """remember admits a key once while it is remembered and again after its ttl."""
    assert await store.remember("jti", "abc", ttl=60) is True
    assert await store.remember("jti", "abc", ttl=60) is False
    assert await store.remember("other-tenant", "abc", ttl=60) is True

    clock.advance(59)
    assert await store.remember("jti", "abc", ttl=60) is False
    clock.advance(1)
    assert await store.remember("jti", "abc", ttl=60) is True
    assert await store.remember("jti", "abc", ttl=60) is False


async def test_put_get_take_value(store: Store) -> None:
    """get reads a value repeatedly; take returns it once and removes it."""
    await store.put_value("sms", "link-1", b"payload", ttl=60)
    assert await store.get_value("sms", "link-1") == b"payload"
    assert await store.get_value("sms", "link-1") == b"payload"
    assert await store.get_value("other", "link-1") is None

    assert await store.take_value("sms", "link-1") == b"payload"
    assert await store.take_value("sms", "link-1") is None
    assert await store.get_value("sms", "link-1") is None


async def test_put_value_overwrites_and_expires(store: Store, clock: FakeClock) -> None:
    """A second put replaces the value and its ttl; after the ttl get and take see nothing."""
    await store.put_value("sms", "k", b"one", ttl=10)
    await store.put_value("sms", "k", b"two", ttl=30)
    clock.advance(20)
    assert await store.get_value("sms", "k") == b"two"
    clock.advance(10)
    assert await store.get_value("sms", "k") is None
    assert await store.take_value("sms", "k") is None


async def test_swap_value_returns_what_it_replaced(store: Store, clock: FakeClock) -> None:
    """swap stores the new value and hands back the live one before it; expired is None."""
    assert await store.swap_value("poll", "r1", b"one", ttl=10) is None
    assert await store.swap_value("poll", "r1", b"two", ttl=10) == b"one"
    assert await store.get_value("poll", "r1") == b"two"
    assert await store.swap_value("poll", "r2", b"other", ttl=10) is None  # keys are apart
    clock.advance(11)
    assert await store.swap_value("poll", "r1", b"three", ttl=10) is None  # "two" expired
    assert await store.get_value("poll", "r1") == b"three"


async def test_swap_value_under_concurrent_swappers_hands_each_value_on_once(
    store: Store,
) -> None:
    """Concurrent swaps form one chain: every value but the last is returned exactly once."""
    values = [str(i).encode() for i in range(20)]
    previous = await asyncio.gather(*(store.swap_value("poll", "c", v, ttl=60) for v in values))
    last = await store.get_value("poll", "c")
    assert previous.count(None) == 1
    assert sorted([*(p for p in previous if p is not None), last]) == sorted(values)


async def test_take_value_under_concurrent_takers_is_single_use(store: Store) -> None:
    """Of many concurrent takers of one value, exactly one gets it."""
    await store.put_value("sms", "once", b"secret", ttl=60)
    results = await asyncio.gather(*(store.take_value("sms", "once") for _ in range(20)))
    assert [r for r in results if r is not None] == [b"secret"]


async def test_incr_counts_and_resets_after_ttl(store: Store, clock: FakeClock) -> None:
    """incr counts from 1 per key and starts again once the window since creation passed."""
    assert [await store.incr("rate", "client-a", ttl=60) for _ in range(3)] == [1, 2, 3]
    assert await store.incr("rate", "client-b", ttl=60) == 1

    clock.advance(59)
    assert await store.incr("rate", "client-a", ttl=60) == 4
    clock.advance(1)
    assert await store.incr("rate", "client-a", ttl=60) == 1
    assert await store.incr("rate", "client-a", ttl=60) == 2


async def test_incr_under_concurrent_callers_counts_each(store: Store) -> None:
    """Concurrent increments are not lost."""
    results = await asyncio.gather(*(store.incr("rate", "k", ttl=60) for _ in range(25)))
    assert sorted(results) == list(range(1, 26))


# --- the namespaced view (store.values) over every backend -------------------------------


async def test_namespace_views_keep_declared_namespaces_apart(
    store: Store, clock: FakeClock
) -> None:
    """Each view reads and writes its own namespace, the one the backend stores it under."""
    values = Values(store)
    one = values.namespace(namespaces.connector_state("t1", "sms"))
    other = values.namespace(namespaces.connector_state("t2", "sms"))
    await one.put("k", b"mine", ttl=60)
    assert await one.get("k") == b"mine"
    assert await other.get("k") is None
    assert await store.get_value("c:t1:sms", "k") == b"mine"
    assert await one.swap("k", b"next", ttl=60) == b"mine"
    assert [await one.incr("n", ttl=60), await one.incr("n", ttl=60)] == [1, 2]
    assert await other.incr("n", ttl=60) == 1
    assert await one.remember("jti", ttl=60) is True
    assert await one.remember("jti", ttl=60) is False
    assert await other.remember("jti", ttl=60) is True
    assert await one.take("k") == b"next"
    assert await one.take("k") is None
    await other.put("short", b"x", ttl=5)
    clock.advance(6)
    assert await other.get("short") is None


async def test_namespace_values_ride_a_winning_transition_or_a_later_put(store: Store) -> None:
    """A ``Namespace.value`` is written with the transition that wins, or by ``Values.put``."""
    values = Values(store)
    records = values.namespace(namespaces.access_tokens("t1"))
    request = make_request()
    await store.create(request)
    assert await store.transition(bump(request), [records.value("won", b"1", 60)]) is True
    assert await store.transition(bump(request), [records.value("lost", b"2", 60)]) is False
    assert await records.get("won") == b"1"
    assert await records.get("lost") is None
    await values.put(records.value("later", b"3", 60))
    assert await records.get("later") == b"3"


# --- SQLite only: several processes, restart ---------------------------------------------


def _sqlite(path: Path, clock: Callable[[], float]) -> SQLiteStore:
    return SQLiteStore(str(path), retention=RETENTION, clock=clock)


async def test_sqlite_two_instances_never_lease_the_same_request(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Two stores on one file split the due work without overlap, and CAS holds across them."""
    path = tmp_path / "shared.db"
    a, b = _sqlite(path, clock), _sqlite(path, clock)
    await a.open()
    await b.open()
    try:
        requests = [make_request(next_poll_at=T0 - i) for i in range(20)]
        for r in requests:
            await a.create(r)

        seen: list[str] = []
        for _ in range(len(requests)):  # bounded: a broken lease must fail, not hang
            batch = await a.lease_due(T0, "a", 30, 3) + await b.lease_due(T0, "b", 30, 3)
            if not batch:
                break
            seen += [r.auth_req_id for r in batch]
        assert sorted(seen) == sorted(r.auth_req_id for r in requests)

        target = await b.get(requests[0].auth_req_id)
        assert target is not None
        assert await a.transition(bump(target, status=Status.APPROVED)) is True
        assert await b.transition(bump(target, status=Status.DENIED)) is False
    finally:
        await a.close()
        await b.close()


def test_sqlite_concurrent_threads_never_lease_the_same_request(tmp_path: Path) -> None:
    """Workers leasing truly in parallel (one connection each) lease every request exactly once."""
    path = tmp_path / "parallel.db"
    clock = FakeClock(T0)
    requests = [make_request(next_poll_at=T0 - i) for i in range(200)]

    async def seed() -> None:
        store = _sqlite(path, clock)
        await store.open()
        for r in requests:
            await store.create(r)
        await store.close()

    async def drain(owner: str) -> list[str]:
        store = _sqlite(path, clock)
        await store.open()
        got: list[str] = []
        try:
            for _ in range(len(requests)):  # bounded: a broken lease must fail, not hang
                batch = await store.lease_due(T0, owner, 30, 4)
                if not batch:
                    break
                got += [r.auth_req_id for r in batch]
        finally:
            await store.close()
        return got

    asyncio.run(seed())
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: asyncio.run(drain(f"w{i}")), range(4)))

    leased = [rid for result in results for rid in result]
    assert len(leased) == len(set(leased)) == len(requests)


async def test_sqlite_data_survives_restart(tmp_path: Path, clock: FakeClock) -> None:
    """Requests, leases and values written before close are there after reopening the file."""
    path = tmp_path / "nested" / "dir" / "restart.db"
    first = _sqlite(path, clock)
    await first.open()
    request = make_request()
    await first.create(request)
    (leased,) = await first.lease_due(T0, "w", 30, 1)
    await first.put_value("sms", "k", b"v", ttl=60)
    await first.close()
    assert path.exists()

    second = _sqlite(path, clock)
    await second.open()
    try:
        assert await second.get(request.auth_req_id) == leased
        assert await second.get_value("sms", "k") == b"v"
        assert await second.lease_due(T0 + 1, "other", 30, 1) == []
        assert await second.count_pending() == 1
    finally:
        await second.close()


async def test_sqlite_pacing_holds_across_instances_and_an_upgrade(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Two stores on one file pace one client together; an older file gains the columns."""
    path = tmp_path / "old.db"
    first = _sqlite(path, clock)
    await first.open()
    request = make_request(interval=5)
    await first.create(request)
    await first.close()
    conn = sqlite3.connect(path)
    for column in ("poll_owner", "poll_last", "poll_interval", "poll_early"):
        conn.execute(f"ALTER TABLE requests DROP COLUMN {column}")
    conn.commit()
    conn.close()
    a, b = _sqlite(path, clock), _sqlite(path, clock)
    await a.open()
    await b.open()
    try:
        assert await _poll(a, request, T0) == (request, None)
        assert await _poll(b, request, T0 + 1) == (request, 10)
        assert await _poll(a, request, T0 + 2) == (request, 15)
    finally:
        await a.close()
        await b.close()


_OLD_KV_TABLE = """
CREATE TABLE kv_old (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB,
    expires_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID
"""
_OLD_REQUESTS_TABLE = """
CREATE TABLE requests_old (
    auth_req_id  TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    expires_at   REAL NOT NULL,
    next_poll_at REAL,
    lease_until  REAL,
    lease_owner  TEXT,
    data         BLOB NOT NULL
) WITHOUT ROWID
"""
"""The tables of the releases before pacing in the row and rowid tables."""


def _table_sql(path: Path, table: str = "requests") -> str:
    conn = sqlite3.connect(path)
    try:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return str(sql)
    finally:
        conn.close()


async def test_sqlite_upgrades_without_rowid_tables_from_two_workers_at_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    """An older release's file (WITHOUT ROWID tables, no pacing columns) keeps its rows.

    Two stores open it at once (two workers starting); one rebuilds the table, the
    other finds it rebuilt; both then read, pace and lease the old rows.
    """
    path = tmp_path / "old.db"
    seed = _sqlite(path, clock)
    await seed.open()
    pending = make_request(interval=5, next_poll_at=T0 + 100)
    due = make_request(next_poll_at=T0 - 1)
    for request in (pending, due):
        await seed.create(request)
    await seed.put_value("at:demo", "token-1", b"record", 600)
    await seed.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(_OLD_KV_TABLE)
    conn.execute("INSERT INTO kv_old SELECT namespace, key, value, expires_at FROM kv")
    conn.execute("DROP TABLE kv")
    conn.execute("ALTER TABLE kv_old RENAME TO kv")
    conn.execute(_OLD_REQUESTS_TABLE)
    conn.execute(
        "INSERT INTO requests_old SELECT auth_req_id, status, version, expires_at,"
        " next_poll_at, lease_until, lease_owner, data FROM requests"
    )
    conn.execute("DROP TABLE requests")
    conn.execute("ALTER TABLE requests_old RENAME TO requests")
    conn.close()
    assert "WITHOUT ROWID" in _table_sql(path)
    assert "WITHOUT ROWID" in _table_sql(path, "kv")

    a, b = _sqlite(path, clock), _sqlite(path, clock)
    await asyncio.gather(a.open(), b.open())
    try:
        assert "WITHOUT ROWID" not in _table_sql(path).upper()
        assert "WITHOUT ROWID" not in _table_sql(path, "kv").upper()
        assert await a.get_value("at:demo", "token-1") == b"record"
        assert await b.take_value("at:demo", "token-1") == b"record"
        assert await a.get_value("at:demo", "token-1") is None
        assert await b.get(pending.auth_req_id) == pending
        assert await _poll(a, pending, T0) == (pending, None)
        assert await _poll(b, pending, T0 + 1) == (pending, 10)
        leased = await a.lease_due(T0, "driver-1", 30, 10)
        assert [r.auth_req_id for r in leased] == [due.auth_req_id]
        fresh = make_request(next_poll_at=T0 + 100)
        await b.create(fresh)
        assert await a.get(fresh.auth_req_id) == fresh
        with pytest.raises(StoreError):
            await a.create(pending)
    finally:
        await a.close()
        await b.close()


async def test_sqlite_open_waits_for_another_workers_upgrade(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A worker opening an old file while another holds the write lock to upgrade it
    waits past the usual 5 s busy timeout instead of failing to start."""
    path = tmp_path / "old.db"
    seed = _sqlite(path, clock)
    await seed.open()
    request = make_request(next_poll_at=T0 + 100)
    await seed.create(request)
    await seed.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(_OLD_KV_TABLE)
    conn.execute("DROP TABLE kv")
    conn.execute("ALTER TABLE kv_old RENAME TO kv")
    upgrader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    upgrader.execute("BEGIN IMMEDIATE")  # the other worker, mid-upgrade
    released = asyncio.get_running_loop().run_in_executor(
        None, lambda: (time.sleep(5.5), upgrader.execute("COMMIT"), upgrader.close())
    )
    store = _sqlite(path, clock)
    try:
        started = time.monotonic()
        await asyncio.to_thread(asyncio.run, store.open())
        assert time.monotonic() - started >= 5.0
        await released
        assert "WITHOUT ROWID" not in _table_sql(path, "kv").upper()
        assert await store.get(request.auth_req_id) == request
    finally:
        conn.close()
        await released
        await store.close()


async def test_sqlite_refuses_in_memory_database_and_unopened_use(tmp_path: Path) -> None:
    """':memory:' is refused (not shared by connections); an unopened store raises StoreError."""
    with pytest.raises(StoreError):
        SQLiteStore(":memory:")
    store = SQLiteStore(str(tmp_path / "x.db"))
    assert await store.ping() is False
    with pytest.raises(StoreError):
        await store.get("anything")


# --- Redis only: real expiry, a shared server, failures ------------------------------------


async def _keys(prefix: str) -> list[bytes]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return sorted([key async for key in client.scan_iter(match=f"{prefix}*", count=1000)])
    finally:
        await client.aclose()


async def test_redis_every_key_has_a_ttl_and_redis_collects_them(redis_prefix: str) -> None:
    """After every kind of write each key carries a TTL, and Redis drops them all in real time.

    Real clock and sleeps: this is Redis's own expiry, which a fake clock cannot move.
    """
    store = RedisStore(REDIS_URL, retention=0.2, grace=0.2, prefix=redis_prefix)
    await store.open()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        now = time.time()
        a, b = (make_request(now=now, expires_at=now + 0.4, next_poll_at=now) for _ in range(2))
        await store.create(a)
        await store.create(b)
        leased = await store.lease_due(now, "worker-a", 0.3, 1)
        await store.lease_due(now, "worker-b", 0.3, 1)
        done = bump(
            leased[0], status=Status.APPROVED, next_poll_at=None, lease_owner=None, lease_until=None
        )
        assert await store.transition(done)
        await store.remember("jti", "j", ttl=0.3)
        await store.put_value("sms", "v", b"x", ttl=0.3)
        await store.incr("rate", "c", ttl=0.3)

        keys = await _keys(redis_prefix)
        assert len(keys) == 8  # 2 requests, due, pending, worker-b's lease set, 3 values
        ttls = [await client.pttl(key) for key in keys]
        assert all(0 < ttl <= 1000 for ttl in ttls), dict(zip(keys, ttls, strict=True))

        await asyncio.sleep(1.2)
        assert [key for key in keys if await client.exists(key)] == []
    finally:
        await client.aclose()
        await store.close()


async def test_redis_two_stores_never_lease_the_same_request(
    redis_prefix: str, clock: FakeClock
) -> None:
    """Replicas (two stores, own connection pools) leasing in parallel lease each request once."""
    stores = [
        RedisStore(REDIS_URL, retention=RETENTION, prefix=redis_prefix, clock=clock)
        for _ in range(2)
    ]
    for store in stores:
        await store.open()
    try:
        requests = [make_request(next_poll_at=T0 - i) for i in range(200)]
        await asyncio.gather(*(stores[0].create(r) for r in requests))

        async def drain(store: RedisStore, owner: str) -> list[str]:
            got: list[str] = []
            for _ in range(len(requests)):  # bounded: a broken lease must fail, not hang
                batch = await store.lease_due(T0, owner, 30, 3)
                if not batch:
                    break
                got += [r.auth_req_id for r in batch]
            return got

        results = await asyncio.gather(*(drain(stores[i % 2], f"w{i}") for i in range(6)))
        leased = [rid for result in results for rid in result]
        assert len(leased) == len(set(leased)) == len(requests)

        target = await stores[1].get(requests[0].auth_req_id)
        assert target is not None
        assert await stores[0].transition(bump(target, status=Status.APPROVED)) is True
        assert await stores[1].transition(bump(target, status=Status.DENIED)) is False
    finally:
        for store in stores:
            await store.close()


@pytest.fixture
async def redis_store(redis_prefix: str, clock: FakeClock) -> AsyncIterator[RedisStore]:
    """A RedisStore on a fresh prefix, for the Redis-only tests."""
    store = RedisStore(REDIS_URL, retention=RETENTION, prefix=redis_prefix, clock=clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_redis_keys_of_requests_share_one_cluster_slot(redis_store: RedisStore) -> None:
    """Every key a script touches carries the ``{req}`` hash tag (one Redis Cluster slot)."""
    store = redis_store
    request = make_request()
    await store.create(request)
    await store.lease_due(T0, "w", 30, 10)
    keys = [key for key in await _keys(store.prefix) if b"{req}" in key]
    assert len(keys) == 4  # request, due, pending, lease set
    assert len({key_slot(key) for key in keys}) == 1


async def test_redis_scripts_are_reloaded_after_a_script_flush(redis_store: RedisStore) -> None:
    """After SCRIPT FLUSH (a restarted or failed-over server) the scripts load again."""
    store = redis_store
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        request = make_request()
        await store.create(request)
        await client.script_flush()
        assert await store.transition(bump(request, status=Status.DENIED)) is True
        assert await store.remember("jti", "x", ttl=60) is True
    finally:
        await client.aclose()


async def test_redis_request_that_vanished_leaves_no_index_behind(
    redis_store: RedisStore, clock: FakeClock
) -> None:
    """A request Redis dropped is skipped by lease_due, and purge clears its index entries."""
    store = redis_store
    request = make_request(next_poll_at=T0)
    await store.create(request)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.delete(f"{store.prefix}{{req}}:r:{request.auth_req_id}")
        assert await store.lease_due(T0, "w", 30, 10) == []
        assert await client.zscore(f"{store.prefix}{{req}}:due", request.auth_req_id) is None

        clock.now = request.expires_at + RETENTION + 1
        assert await store.count_pending() == 0
        assert await store.purge_expired(clock.now) == 0
        assert await client.exists(f"{store.prefix}{{req}}:pending") == 0
    finally:
        await client.aclose()


async def test_redis_unreachable_server_raises_store_error() -> None:
    """With no server, open still succeeds (not ready), ping is False, calls raise StoreError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5, retries=1)
    assert await store.ping() is False
    with pytest.raises(StoreError, match="not open"):
        await store.get("x")
    await store.open()
    try:
        assert await store.ping() is False
        with pytest.raises(StoreError):
            await store.get("x")
        with pytest.raises(StoreError):
            await store.create(make_request())
        with pytest.raises(StoreError):
            await store.lease_due(T0, "w", 30, 10)
        with pytest.raises(StoreError):
            await store.put_value("ns", "k", b"v", ttl=1)
    finally:
        await store.close()


def _issue_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, as PEM files."""
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _issue_cert("test CA", ca_key, ca=True)
    files: dict[str, Path] = {}
    for name, cert, key in (
        ("ca", ca, ca_key),
        ("server", _issue_cert("localhost", server_key, ca.subject, ca_key), server_key),
        ("client", _issue_cert("gateway", client_key, ca.subject, ca_key), client_key),
    ):
        files[name] = directory / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}-key"] = directory / f"{name}.key"
        files[f"{name}-key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return files


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, dict[str, Path]]]:
    """A redis-server that speaks only mutual TLS, on a spare port, and its PKI files."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run scripts/prepare.sh")
    pki = _write_pki(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    args += ["--tls-cert-file", str(pki["server"]), "--tls-key-file", str(pki["server-key"])]
    args += ["--tls-ca-cert-file", str(pki["ca"]), "--tls-auth-clients", "yes"]
    args += ["--save", "", "--appendonly", "no"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the TLS redis-server did not start"
                time.sleep(0.05)
        yield port, pki
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_redis_over_mutual_tls_with_the_configured_files(
    tls_redis: tuple[int, dict[str, Path]],
) -> None:
    """rediss:// with tls.ca_file and a client certificate works; without the certificate not."""
    port, pki = tls_redis
    url = f"rediss://localhost:{port}/0"
    trusted = StoreTLSConfig(
        ca_file=str(pki["ca"]), cert_file=str(pki["client"]), key_file=str(pki["client-key"])
    )
    store = create_store(StoreConfig(url=url, tls=trusted, timeout=1.0))
    await store.open()
    try:
        assert await store.ping() is True
        request = make_request(now=time.time())
        await store.create(request)
        assert await store.get(request.auth_req_id) == request
    finally:
        await store.close()

    anonymous = create_store(
        StoreConfig(url=url, tls=StoreTLSConfig(ca_file=str(pki["ca"])), timeout=1.0)
    )
    await anonymous.open()
    try:
        assert await anonymous.ping() is False
        with pytest.raises(StoreError):
            await anonymous.get("x")
    finally:
        await anonymous.close()


# --- create_store -------------------------------------------------------------------------


def test_create_store_memory() -> None:
    """memory:// builds a MemoryStore with the configured retention."""
    store = create_store(StoreConfig(url="memory://", retention=42))
    assert isinstance(store, MemoryStore)
    assert store.retention == 42


def test_create_store_sqlite_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:/// paths are relative to the working directory; sqlite://// paths are absolute."""
    monkeypatch.chdir(tmp_path)
    relative = create_store(StoreConfig(url="sqlite:///var/gw.db"))
    absolute = create_store(StoreConfig(url=f"sqlite:///{tmp_path}/abs/gw.db"))
    assert isinstance(relative, SQLiteStore)
    assert isinstance(absolute, SQLiteStore)
    assert relative.path == tmp_path / "var" / "gw.db"
    assert absolute.path == tmp_path / "abs" / "gw.db"


def test_create_store_redis_and_rediss_with_options(tmp_path: Path) -> None:
    """redis:// and rediss:// build a RedisStore carrying prefix, pool, timeouts and TLS files."""
    plain = create_store(
        StoreConfig(url="redis://cache:6379/2", prefix="gw-a:", pool_size=8, timeout=0.5)
    )
    assert isinstance(plain, RedisStore)
    assert (plain.url, plain.prefix, plain.pool_size, plain.timeout, plain.retention) == (
        "redis://cache:6379/2",
        "gw-a:",
        8,
        0.5,
        3600,
    )
    tls = StoreTLSConfig(ca_file=str(tmp_path / "ca.pem"), cert_file="c.pem", key_file="k.pem")
    secure = create_store(StoreConfig(url="rediss://cache:6380/0", tls=tls, retries=0))
    assert isinstance(secure, RedisStore)
    assert secure.retries == 0
    assert secure._ssl == {
        "ssl_ca_certs": str(tmp_path / "ca.pem"),
        "ssl_certfile": "c.pem",
        "ssl_keyfile": "k.pem",
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }


def test_store_config_rejects_tls_without_rediss_and_half_a_client_cert() -> None:
    """TLS options need a rediss:// url, and a client certificate needs its key."""
    with pytest.raises(ValueError, match="rediss://"):
        StoreConfig(url="redis://cache:6379/0", tls=StoreTLSConfig())
    with pytest.raises(ValueError, match="go together"):
        StoreTLSConfig(cert_file="c.pem")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/gw.db", "sqlite:///relative/path.db"),
        ("sqlite:///", "names no file"),
        ("memory://somewhere", "takes no path"),
    ],
)
def test_create_store_rejects_malformed_urls(url: str, message: str) -> None:
    """Malformed URLs are refused with a clear StoreError."""
    with pytest.raises(StoreError, match=message):
        create_store(StoreConfig(url=url))
