"""The Store contract, run against every implementation through one ``store`` fixture.

The tests speak only to the ``Store`` protocol; time comes from an injectable
clock, never from sleeping. The SQLite-only tests at the end cover what only a
shared file can show: several processes and a restart.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ciba_gateway.config.model import StoreConfig
from ciba_gateway.connector import Identity, LoginHint
from ciba_gateway.errors import StoreError
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.store.base import Store
from ciba_gateway.store.factory import create_store
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0
RETENTION = 600.0
LIFETIME = 120.0


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _make_store(kind: str, tmp_path: Path, clock: Callable[[], float]) -> Store:
    if kind == "memory":
        return MemoryStore(retention=RETENTION, clock=clock)
    return SQLiteStore(str(tmp_path / "db" / "gateway.db"), retention=RETENTION, clock=clock)


@pytest.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    instance = _make_store(request.param, tmp_path, clock)
    await instance.open()
    try:
        yield instance
    finally:
        await instance.close()


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
    """purge_expired removes requests past retention and expired values, and counts them."""
    old = make_request(now=T0 - LIFETIME - RETENTION - 10)
    fresh = make_request()
    await store.create(old)
    await store.create(fresh)
    await store.put_value("sms", "short", b"1", ttl=5)
    await store.remember("jti", "short", ttl=5)
    await store.put_value("sms", "long", b"2", ttl=600)

    clock.advance(10)
    assert await store.purge_expired(clock.now) == 3

    assert await store.get(fresh.auth_req_id) == fresh
    assert await store.get_value("sms", "long") == b"2"
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
    clock = FakeClock()
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


async def test_sqlite_refuses_in_memory_database_and_unopened_use(tmp_path: Path) -> None:
    """':memory:' is refused (not shared by connections); an unopened store raises StoreError."""
    with pytest.raises(StoreError):
        SQLiteStore(":memory:")
    store = SQLiteStore(str(tmp_path / "x.db"))
    assert await store.ping() is False
    with pytest.raises(StoreError):
        await store.get("anything")


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


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost:6379/0", "the redis store is not available in this build"),
        ("rediss://cache.example:6380", "the redis store is not available in this build"),
        ("sqlite://host/gw.db", "sqlite:///relative/path.db"),
        ("sqlite:///", "names no file"),
        ("memory://somewhere", "takes no path"),
    ],
)
def test_create_store_rejects_unavailable_or_malformed_urls(url: str, message: str) -> None:
    """Redis is not in this build yet, and malformed URLs are refused with a clear StoreError."""
    with pytest.raises(StoreError, match=message):
        create_store(StoreConfig(url=url))
