"""SQLite group commit: the writes of one event-loop turn share one transaction.

Statements are counted with ``sqlite3``'s trace callback on the store's connection;
what was committed is read through a second connection of its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.errors import StoreError
from ciba_gateway.store.sqlite import SQLiteStore
from tests.contract.test_store_contract import RETENTION, T0, make_request


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "g.db"), retention=RETENTION, clock=FakeClock(T0))
    await s.open()
    yield s
    await s.close()


def traced(store: SQLiteStore) -> list[str]:
    """Every statement the store's connection runs from now on."""
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)
    return statements


def committed_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT auth_req_id FROM requests")}
    finally:
        conn.close()


async def test_concurrent_writes_of_one_turn_make_one_commit(store: SQLiteStore) -> None:
    """Creates and value writes issued together run inside one BEGIN IMMEDIATE ... COMMIT."""
    statements = traced(store)
    requests = [make_request() for _ in range(10)]
    results = await asyncio.gather(
        *(store.create(r) for r in requests),
        store.put_value("sms", "k", b"v", ttl=60),
        store.incr("limits", "c", ttl=60),
        store.incr("limits", "c", ttl=60),
    )
    assert results[-2:] == [1, 2]
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1
    assert len(statements) == 2 + 13
    assert committed_ids(store.path) == {r.auth_req_id for r in requests}


async def test_a_lone_write_commits_by_itself(store: SQLiteStore) -> None:
    """One write in a turn runs in autocommit, as one statement."""
    statements = traced(store)
    await store.create(make_request())
    await store.put_value("sms", "k", b"v", ttl=60)
    assert len(statements) == 2
    assert not any(s.startswith(("BEGIN", "COMMIT")) for s in statements)


async def test_no_caller_returns_before_the_commit(store: SQLiteStore) -> None:
    """When any caller of a batch resumes, every write of the batch is visible elsewhere."""
    requests = [make_request() for _ in range(5)]
    seen: list[set[str]] = []

    async def create(request: object) -> None:
        await store.create(request)  # type: ignore[arg-type]
        seen.append(committed_ids(store.path))

    await asyncio.gather(*(create(r) for r in requests))
    assert seen == [{r.auth_req_id for r in requests}] * 5


async def test_a_duplicate_create_fails_alone(store: SQLiteStore) -> None:
    """A constraint error undoes its own statement; the rest of the batch commits."""
    existing = make_request()
    await store.create(existing)
    fresh = [make_request() for _ in range(3)]
    statements = traced(store)
    results = await asyncio.gather(
        store.create(fresh[0]),
        store.create(existing),
        store.create(fresh[1]),
        store.create(fresh[2]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and results[3] is None
    assert isinstance(results[1], StoreError) and "already exists" in str(results[1])
    assert statements.count("COMMIT") == 1
    assert committed_ids(store.path) == {existing.auth_req_id, *(r.auth_req_id for r in fresh)}


async def test_a_failing_commit_fails_every_caller_and_rolls_back(store: SQLiteStore) -> None:
    """COMMIT refused (by an authorizer): every write of the batch fails, none is kept."""
    conn = store._conn
    assert conn is not None

    def no_commit(action: int, arg1: str | None, *_: object) -> int:
        refused = action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT"
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    conn.set_authorizer(no_commit)
    requests = [make_request() for _ in range(4)]
    results = await asyncio.gather(
        *(store.create(r) for r in requests),
        store.put_value("sms", "k", b"v", ttl=60),
        return_exceptions=True,
    )
    assert len(results) == 5
    assert all(isinstance(r, StoreError) and "rolled back" in str(r) for r in results)
    assert not conn.in_transaction
    assert committed_ids(store.path) == set()
    assert await store.get_value("sms", "k") is None

    conn.set_authorizer(None)
    await asyncio.gather(*(store.create(r) for r in requests))
    assert committed_ids(store.path) == {r.auth_req_id for r in requests}


async def test_reads_see_only_committed_rows(store: SQLiteStore) -> None:
    """A read in the turn of a queued write does not see it; after the commit it does."""
    request = make_request()
    created, before = await asyncio.gather(store.create(request), store.get(request.auth_req_id))
    assert created is None and before is None
    assert await store.get(request.auth_req_id) == request


async def test_a_cancelled_caller_still_commits_with_its_batch(store: SQLiteStore) -> None:
    """Cancelling a waiting caller does not split the batch: its write commits with it."""
    requests = [make_request() for _ in range(3)]
    tasks = [asyncio.create_task(store.create(r)) for r in requests]
    await asyncio.sleep(0)  # the three have queued their writes; the flush is next
    tasks[1].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert committed_ids(store.path) == {r.auth_req_id for r in requests}


async def test_batches_are_bounded(store: SQLiteStore) -> None:
    """300 writes in one turn: three transactions of at most 128 writes."""
    statements = traced(store)
    requests = [make_request() for _ in range(300)]
    await asyncio.gather(*(store.create(r) for r in requests))
    assert statements.count("BEGIN IMMEDIATE") == 3
    assert statements.count("COMMIT") == 3
    assert len(committed_ids(store.path)) == 300


async def test_close_commits_the_queued_writes(tmp_path: Path) -> None:
    """close() in the turn of queued writes commits them before closing."""
    path = tmp_path / "close.db"
    store = SQLiteStore(str(path), retention=RETENTION, clock=FakeClock(T0))
    await store.open()
    requests = [make_request() for _ in range(3)]
    tasks = [asyncio.create_task(store.create(r)) for r in requests]
    await asyncio.sleep(0)
    await store.close()
    assert await asyncio.gather(*tasks) == [None, None, None]
    assert committed_ids(path) == {r.auth_req_id for r in requests}
    with pytest.raises(StoreError, match="not open"):
        await store.create(make_request())


def test_one_store_used_from_several_threads(tmp_path: Path) -> None:
    """Each thread's loop has its own batches; every write commits, none is lost."""
    path = tmp_path / "threads.db"
    store = SQLiteStore(str(path), retention=RETENTION, clock=FakeClock(T0))
    asyncio.run(store.open())
    requests = [[make_request() for _ in range(100)] for _ in range(4)]
    errors: list[BaseException] = []

    def work(chunk: list[object]) -> None:
        async def burst() -> None:
            for i in range(0, len(chunk), 10):
                await asyncio.gather(*(store.create(r) for r in chunk[i : i + 10]))  # type: ignore[arg-type]

        try:
            asyncio.run(burst())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    asyncio.run(store.close())
    assert errors == []
    assert committed_ids(path) == {r.auth_req_id for chunk in requests for r in chunk}


_WRITER = """
import asyncio, sys
from ciba_gateway.store.sqlite import SQLiteStore
from tests.contract.test_store_contract import make_request

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.open()
    for _ in range(20):
        await asyncio.gather(*(store.create(make_request(auth_req_id=f"child-{i}"))
                               for i in range(_ * 25, _ * 25 + 25)))
    await store.close()

asyncio.run(main())
"""


async def test_two_processes_writing_batches_lose_nothing(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """Another process commits its batches into the same file meanwhile: all rows are kept."""
    child = subprocess.Popen(  # noqa: ASYNC220 - it must run while this loop writes
        [sys.executable, "-c", _WRITER, str(store.path)], cwd=Path(__file__).parents[2]
    )
    try:
        ours = [make_request() for _ in range(500)]
        for i in range(0, 500, 25):
            await asyncio.gather(*(store.create(r) for r in ours[i : i + 25]))
            await asyncio.sleep(0.001)
        assert await asyncio.to_thread(child.wait, 60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    ids = committed_ids(store.path)
    assert {r.auth_req_id for r in ours} <= ids
    assert {f"child-{i}" for i in range(500)} <= ids
    assert len(ids) == 1000
