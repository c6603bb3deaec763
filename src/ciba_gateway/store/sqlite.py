"""The embedded default store: one SQLite file, shared by every worker process.

Calls go to the stdlib ``sqlite3`` module synchronously, on the event loop's
thread. That is deliberate: on a local disk each of these statements takes
microseconds, while handing it to a thread (as aiosqlite does) costs more than
it saves. When another process holds the write lock, ``busy_timeout`` makes a
call wait (briefly: the lock is held only while a batch's statements run).

Group commit: a write is queued, not run. At the end of the event-loop turn
(``loop.call_soon``) the turn's writes run in order inside one ``BEGIN IMMEDIATE
... COMMIT`` (a lone write runs as before, in autocommit), and no caller returns
before that commit: nothing is acknowledged before it is in the WAL. Each write
keeps its own outcome (a duplicate ``create`` fails alone: SQLite undoes only the
failing statement); a failed BEGIN or COMMIT, or an error after which SQLite
rolled the transaction back, fails every caller of the batch with ``StoreError``.
A caller cancelled while waiting stops waiting; its write still commits or rolls
back with its batch. Reads are not queued: they never run inside a flush, so they
see only committed rows (not the writes queued in this turn). Batches are per event
loop, flushes and reads share one lock (a store may be used from several threads).

The file is in WAL mode with ``synchronous=NORMAL``: readers never block the
writer, and a crash of the process loses nothing; a power cut may lose the
last commits, never consistency.

Each request is one ``requests`` row: the msgpack-encoded ``AuthRequest`` in
``data`` plus copies of the fields the store queries (status, version, expiry,
due time, lease). ``transition`` is a single ``UPDATE ... WHERE version = ?``,
atomic across processes by itself; so is ``lease_due``, one ``UPDATE ...
RETURNING`` that marks the due rows, so two workers never lease the same row.
Leasing does not re-encode the blob: the columns ``version``, ``lease_owner``
and ``lease_until`` are authoritative, and every read patches them into the
decoded request (``transition`` writes blob and columns together).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec

from ciba_gateway.errors import StoreError
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.store.base import Polled, Value, poller

__all__ = ["SQLiteStore"]

_BUSY_TIMEOUT_MS = 5000
_UPGRADE_BUSY_TIMEOUT_MS = 600_000
"""How long a worker opening the file waits for another one's upgrade of it."""

_BATCH_LIMIT = 128
"""Writes per transaction at most: a full batch is flushed at once, which bounds how
long a flush holds the write lock that other worker processes wait for."""

_T = TypeVar("_T")
_Op = Callable[[sqlite3.Connection], Any]


class _Table(NamedTuple):
    """A table of the schema: its DDL (``{name}`` for the name), columns and indexes."""

    name: str
    ddl: str
    columns: str
    indexes: tuple[str, ...] = ()

    def create(self, name: str | None = None) -> str:
        return self.ddl.format(name=name or self.name)


_REQUESTS = _Table(
    "requests",
    """CREATE TABLE IF NOT EXISTS {name} (
    auth_req_id  TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    expires_at   REAL NOT NULL,
    next_poll_at REAL,
    lease_until  REAL,
    lease_owner  TEXT,
    data         BLOB NOT NULL,
    poll_owner   TEXT,
    poll_last    REAL,
    poll_interval INTEGER,
    poll_early   INTEGER
)""",
    "auth_req_id, status, version, expires_at, next_poll_at, lease_until, lease_owner,"
    " data, poll_owner, poll_last, poll_interval, poll_early",
    (
        "CREATE INDEX IF NOT EXISTS requests_next ON requests (next_poll_at)",
        "CREATE INDEX IF NOT EXISTS requests_expires ON requests (expires_at)",
    ),
)
_KV = _Table(
    "kv",
    """CREATE TABLE IF NOT EXISTS {name} (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB,
    expires_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
)""",
    "namespace, key, value, expires_at",
)
_TABLES = (_REQUESTS, _KV)
"""Rowid tables: new rows go to the end of the rowid B-tree, and the random keys are
only in the (small) primary-key index. As WITHOUT ROWID tables, whose rows (about 1 KB
of request ``data``, ~450 B of an access token's record) sat in the key's B-tree, an
insert cost about three times the CPU (64 per transaction, 20k-60k rows: requests
46-50 us against 15-16 us, kv 35 us against 12 us) and a poll's UPDATE twice."""

_SCHEMA = "".join(
    f"{table.create()};\n" + "".join(f"{index};\n" for index in table.indexes) for table in _TABLES
) + (
    "-- No index on kv.expires_at: keeping one cost ~50 us per write of a value; the\n"
    "-- periodic purge scans kv instead (16 ms with 100k pending requests on a slow\n"
    "-- 2-core machine, bench/store_ops.py).\n"
    "DROP INDEX IF EXISTS kv_expires;\n"
)

_INSERT_REQUEST = (
    "INSERT INTO requests (status, version, expires_at, next_poll_at,"
    " lease_until, lease_owner, data, auth_req_id, poll_owner, poll_interval)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_UPDATE_REQUEST = """
UPDATE requests
   SET status = ?, version = ?, expires_at = ?, next_poll_at = ?,
       lease_until = ?, lease_owner = ?, data = ?
 WHERE auth_req_id = ? AND version = ? AND expires_at >= ?
"""

# Token-poll pacing lives in the request's row (poll_*: whose polls count, the last
# one, the interval, and whether the last one came too early), so one statement reads
# the request and records the poll atomically, across processes. SET expressions
# all see the old row; RETURNING the new one.
_POLL = """
UPDATE requests
   SET poll_early = (status = 'pending' AND expires_at > :now AND poll_owner = :owner
                     AND poll_last IS NOT NULL AND :now - poll_last < poll_interval - :jitter),
       poll_interval = poll_interval + CASE
           WHEN status = 'pending' AND expires_at > :now AND poll_owner = :owner
                AND poll_last IS NOT NULL AND :now - poll_last < poll_interval - :jitter
           THEN :step ELSE 0 END,
       poll_last = CASE WHEN status = 'pending' AND expires_at > :now AND poll_owner = :owner
                        THEN :now ELSE poll_last END
 WHERE auth_req_id = :id AND expires_at >= :cutoff
RETURNING data, version, lease_owner, lease_until, poll_interval, poll_early
"""

_COLUMNS_ADDED = (
    "poll_owner TEXT",
    "poll_last REAL",
    "poll_interval INTEGER",
    "poll_early INTEGER",
)
"""Columns a database made before pacing moved into the row lacks (added on open)."""

_LEASE = """
UPDATE requests
   SET lease_owner = ?, lease_until = ?, version = version + 1
 WHERE auth_req_id IN (
        SELECT auth_req_id FROM requests
         WHERE next_poll_at <= ?
           AND (lease_until IS NULL OR lease_until < ?)
           AND expires_at >= ?
         ORDER BY next_poll_at
         LIMIT ?)
RETURNING data, version
"""

_PUT_VALUE = """
INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""

_PUT_VALUES = """
INSERT INTO kv (namespace, key, value, expires_at) VALUES {rows}
ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""

_REMEMBER = """
INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, NULL, ?)
ON CONFLICT (namespace, key) DO UPDATE SET value = NULL, expires_at = excluded.expires_at
 WHERE kv.expires_at <= ?
"""

_GET_VALUE = "SELECT value FROM kv WHERE namespace = ? AND key = ? AND expires_at > ?"

_TAKE_VALUE = "DELETE FROM kv WHERE namespace = ? AND key = ? AND expires_at > ? RETURNING value"

_INCR = """
INSERT INTO kv (namespace, key, value, expires_at) VALUES (:namespace, :key, 1, :expires_at)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = CASE WHEN kv.expires_at <= :now THEN 1 ELSE kv.value + 1 END,
    expires_at = CASE WHEN kv.expires_at <= :now THEN excluded.expires_at ELSE kv.expires_at END
RETURNING value
"""


class SQLiteStore:
    """The ``Store`` protocol on a SQLite file.

    Args:
        path: the database file; its parent directory is created on ``open``.
            ``":memory:"`` is refused: an in-memory database belongs to one
            connection, so other workers (and a restart) would not see it. Use
            ``MemoryStore`` for that.
        retention: seconds a request stays readable after its ``expires_at``.
        clock: returns the current time in seconds (injectable for tests).

    Raises:
        StoreError: for ``":memory:"`` here, and from any method when SQLite fails.
    """

    def __init__(
        self, path: str, retention: float = 3600, clock: Callable[[], float] = time.time
    ) -> None:
        if path in ("", ":memory:") or path.startswith("file:"):
            raise StoreError("the SQLite store needs a file path, not an in-memory database")
        self.path = Path(path)
        self.retention = retention
        self._clock = clock
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AuthRequest)
        self._conn: sqlite3.Connection | None = None
        self._batches: dict[asyncio.AbstractEventLoop, _Batch] = {}
        self._lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Create the directory, connect, switch to WAL and create the schema."""
        if self._conn is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {self.path}: {exc}") from exc
        try:
            # isolation_level=None: autocommit, transactions only where we BEGIN.
            # check_same_thread=False: every call runs on the loop's thread anyway,
            # but open() may run from another thread than the one serving requests.
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            # Another worker may be upgrading the file (seconds per 100k rows): wait.
            conn.execute(f"PRAGMA busy_timeout = {_UPGRADE_BUSY_TIMEOUT_MS}")
            self._add_pacing_columns(conn)
            _rebuild_as_rowid_tables(conn)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot prepare {self.path}: {exc}") from exc
        self._conn = conn

    def _add_pacing_columns(self, conn: sqlite3.Connection) -> None:
        """Upgrade a database of an older release: pacing columns, filled for pending rows."""
        if not _missing_columns(conn):
            return
        with _write_transaction(conn):
            # Again under the write lock: another worker may have upgraded the file meanwhile.
            missing = _missing_columns(conn)
            if not missing:
                return
            for column in missing:
                conn.execute(f"ALTER TABLE requests ADD COLUMN {column}")
            rows = conn.execute(
                "SELECT data FROM requests WHERE status = ?", (Status.PENDING.value,)
            ).fetchall()
            pending = [self._decoder.decode(data) for (data,) in rows]
            conn.executemany(
                "UPDATE requests SET poll_owner = ?, poll_interval = ? WHERE auth_req_id = ?",
                [(poller(r.tenant_id, r.client_id), r.interval, r.auth_req_id) for r in pending],
            )

    async def close(self) -> None:
        """Commit the queued writes, then close the connection (idempotent)."""
        for batch in list(self._batches.values()):
            self._flush(batch)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def ping(self) -> bool:
        """True when the database answers a query."""
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.execute("SELECT 1").fetchall()
            except sqlite3.Error:
                return False
        return True

    # --- requests ---------------------------------------------------------

    async def create(self, request: AuthRequest) -> None:
        """Insert a new request; raises StoreError if ``auth_req_id`` exists."""
        params = (
            *self._columns(request),
            poller(request.tenant_id, request.client_id),
            request.interval,
        )

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_REQUEST, params)
            except sqlite3.IntegrityError as exc:
                raise StoreError("auth_req_id already exists") from exc

        await self._write(insert)

    async def get(self, auth_req_id: str) -> AuthRequest | None:
        """The request, or None when unknown or past its retention."""
        with self._db() as conn:
            row = conn.execute(
                "SELECT data, version, lease_owner, lease_until FROM requests"
                " WHERE auth_req_id = ? AND expires_at >= ?",
                (auth_req_id, self._clock() - self.retention),
            ).fetchone()
        return None if row is None else self._request(*row)

    async def poll(
        self, auth_req_id: str, owner: str, now: float, jitter: float, step: int
    ) -> Polled | None:
        """The request for a token poll, the poll recorded when it is pending: one UPDATE."""
        params = {
            "id": auth_req_id,
            "owner": owner,
            "now": now,
            "jitter": jitter,
            "step": step,
            "cutoff": self._clock() - self.retention,
        }
        # fetchall: a RETURNING statement only completes when exhausted.
        rows = await self._write(lambda conn: conn.execute(_POLL, params).fetchall())
        if not rows:
            return None
        data, version, owner, until, interval, early = rows[0]
        return self._request(data, version, owner, until), interval if early else None

    async def transition(self, new: AuthRequest, values: Sequence[Value] = ()) -> bool:
        """Replace the stored request whose version is ``new.version - 1`` with ``new``.

        ``values`` follow in one multi-row upsert when the UPDATE won, in the same
        batch (alone in it: two autocommit statements; a crash between them loses
        only the values).
        """
        now = self._clock()
        update = (*self._columns(new), new.version - 1, now - self.retention)
        upsert = ""
        params: list[object] = []
        if values:
            upsert = _PUT_VALUES.format(rows=", ".join(["(?, ?, ?, ?)"] * len(values)))
            params = [p for ns, k, v, ttl in values for p in (ns, k, v, now + ttl)]

        def replace(conn: sqlite3.Connection) -> bool:
            if conn.execute(_UPDATE_REQUEST, update).rowcount != 1:
                return False
            if upsert:
                conn.execute(upsert, params)
            return True

        return await self._write(replace)

    async def lease_due(
        self, now: float, owner: str, lease_seconds: float, limit: int
    ) -> list[AuthRequest]:
        """Lease up to ``limit`` pending requests whose ``next_poll_at <= now``, earliest first."""
        if limit <= 0:
            return []
        lease_until = now + lease_seconds
        params = (owner, lease_until, now, now, now - self.retention, limit)
        # One statement, atomic by itself; fetchall: RETURNING completes when exhausted.
        rows = await self._write(lambda conn: conn.execute(_LEASE, params).fetchall())
        leased = [self._request(data, version, owner, lease_until) for data, version in rows]
        leased.sort(key=lambda r: (r.next_poll_at or 0.0, r.auth_req_id))
        return leased

    async def release_leases(self, owner: str) -> int:
        """Clear every lease ``owner`` holds; bumps the version of each request it frees."""
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE requests SET lease_owner = NULL, lease_until = NULL,"
                    " version = version + 1 WHERE lease_owner = ?",
                    (owner,),
                ).rowcount
            )
        )

    async def purge_expired(self, now: float) -> int:
        """Delete requests past their retention and expired values; returns how many."""

        def purge(conn: sqlite3.Connection) -> int:
            requests = conn.execute(
                "DELETE FROM requests WHERE expires_at < ?", (now - self.retention,)
            ).rowcount
            return requests + conn.execute("DELETE FROM kv WHERE expires_at <= ?", (now,)).rowcount

        return await self._write(purge)

    async def count_pending(self) -> int:
        """How many retained requests are pending."""
        with self._db() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM requests WHERE status = ? AND expires_at >= ?",
                (Status.PENDING.value, self._clock() - self.retention),
            ).fetchone()
        return count

    # --- small values -----------------------------------------------------

    async def remember(self, namespace: str, key: str, ttl: float) -> bool:
        """Record ``key`` once; True the first time, False while it is remembered."""
        now = self._clock()
        params = (namespace, key, now + ttl, now)
        return await self._write(lambda conn: conn.execute(_REMEMBER, params).rowcount == 1)

    async def put_value(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store a small value that expires after ``ttl`` seconds."""
        params = (namespace, key, value, self._clock() + ttl)
        # An upsert updates the row in place; INSERT OR REPLACE deletes and
        # re-inserts it, 40% slower (swap_value shares it).
        await self._write(lambda conn: conn.execute(_PUT_VALUE, params))

    async def get_value(self, namespace: str, key: str) -> bytes | None:
        """A stored value, or None when absent or expired."""
        with self._db() as conn:
            row = conn.execute(
                _GET_VALUE,
                (namespace, key, self._clock()),
            ).fetchone()
        return _as_bytes(row)

    async def swap_value(self, namespace: str, key: str, value: bytes, ttl: float) -> bytes | None:
        """Store ``value`` (expiring after ``ttl`` s); return the live value it replaced.

        A read, then an upsert (SQLite's RETURNING reports the new row, never the old
        one). Nothing of this process runs between them, but, when the swap is alone
        in its batch (autocommit), another process's write can: fine for the advisory
        state it serves.
        """
        now = self._clock()

        def swap(conn: sqlite3.Connection) -> tuple[object, ...] | None:
            row = conn.execute(_GET_VALUE, (namespace, key, now)).fetchone()
            conn.execute(_PUT_VALUE, (namespace, key, value, now + ttl))
            return row

        return _as_bytes(await self._write(swap))

    async def take_value(self, namespace: str, key: str) -> bytes | None:
        """Atomically read and delete a value (single use), also across processes."""
        params = (namespace, key, self._clock())
        # fetchall: a RETURNING statement only completes when exhausted.
        rows = await self._write(lambda conn: conn.execute(_TAKE_VALUE, params).fetchall())
        return _as_bytes(rows[0] if rows else None)

    async def incr(self, namespace: str, key: str, ttl: float) -> int:
        """Atomically add one to a counter that expires ``ttl`` s after its first increment."""
        now = self._clock()
        params = {"namespace": namespace, "key": key, "expires_at": now + ttl, "now": now}
        ((count,),) = await self._write(lambda conn: conn.execute(_INCR, params).fetchall())
        return count

    # --- internals --------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read, outside any flush."""
        with self._lock:
            if self._conn is None:
                raise StoreError("the SQLite store is not open")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite failed: {exc}") from exc

    async def _write(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """Queue ``op`` in this loop's batch; its result once the batch has committed."""
        if self._conn is None:
            raise StoreError("the SQLite store is not open")
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = _Batch(loop)
            loop.call_soon(self._flush, batch)
        future: asyncio.Future[_T] = loop.create_future()
        batch.ops.append((op, future))
        if len(batch.ops) >= _BATCH_LIMIT:
            self._flush(batch)
        return await future

    def _flush(self, batch: _Batch) -> None:
        """Run the batch's writes in one transaction and settle their callers."""
        if self._batches.get(batch.loop) is batch:
            del self._batches[batch.loop]
        ops, batch.ops = batch.ops, []
        if not ops:
            return
        with self._lock:
            outcomes = self._run(ops)
        try:
            here = asyncio.get_running_loop() is batch.loop
        except RuntimeError:
            here = False
        for (_, future), outcome in zip(ops, outcomes, strict=True):
            if here:
                _settle(future, outcome)
            else:  # close() from another thread than the batch's loop
                with suppress(RuntimeError):  # that loop is closed: nobody waits
                    batch.loop.call_soon_threadsafe(_settle, future, outcome)

    def _run(self, ops: list[tuple[_Op, asyncio.Future[Any]]]) -> list[_Outcome]:
        conn = self._conn
        if conn is None:
            return [_Outcome(error=StoreError("the SQLite store is not open")) for _ in ops]
        if len(ops) == 1:
            return [_outcome(ops[0][0], conn)]
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes: list[_Outcome] = []
            for op, _ in ops:
                outcome = _outcome(op, conn)
                if outcome.error is not None and not conn.in_transaction:
                    # SQLite rolled the whole transaction back (I/O error, disk full...).
                    raise outcome.error
                outcomes.append(outcome)
            conn.execute("COMMIT")
        except Exception as exc:
            with suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return [_failed_batch(exc) for _ in ops]
        return outcomes

    def _request(
        self, data: bytes, version: int, owner: str | None, lease_until: float | None
    ) -> AuthRequest:
        """The stored request with the row's authoritative version and lease."""
        request = self._decoder.decode(data)
        if (version, owner, lease_until) == (
            request.version,
            request.lease_owner,
            request.lease_until,
        ):
            return request
        return msgspec.structs.replace(
            request, version=version, lease_owner=owner, lease_until=lease_until
        )

    def _columns(self, request: AuthRequest) -> tuple[object, ...]:
        return (
            request.status.value,
            request.version,
            request.expires_at,
            request.next_poll_at,
            request.lease_until,
            request.lease_owner,
            self._encoder.encode(request),
            request.auth_req_id,
        )


class _Batch:
    """The writes one event loop queued in its current turn."""

    __slots__ = ("loop", "ops")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ops: list[tuple[_Op, asyncio.Future[Any]]] = []


class _Outcome:
    __slots__ = ("error", "result")

    def __init__(self, result: object = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error


def _outcome(op: _Op, conn: sqlite3.Connection) -> _Outcome:
    try:
        return _Outcome(op(conn))
    except sqlite3.Error as exc:
        error = StoreError(f"SQLite failed: {exc}")
        error.__cause__ = exc
        return _Outcome(error=error)
    except Exception as exc:  # the op's own refusal (StoreError), or a bug: its caller's alone
        return _Outcome(error=exc)


def _failed_batch(exc: BaseException) -> _Outcome:
    cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
    error = StoreError(f"SQLite failed, the batch was rolled back: {cause}")
    error.__cause__ = cause
    return _Outcome(error=error)


def _settle(future: asyncio.Future[Any], outcome: _Outcome) -> None:
    if future.done():  # its caller was cancelled
        return
    if outcome.error is None:
        future.set_result(outcome.result)
    else:
        future.set_exception(outcome.error)


def _without_rowid(conn: sqlite3.Connection, table: str) -> bool:
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return "WITHOUT ROWID" in " ".join(sql.upper().split())


def _rebuild_as_rowid_tables(conn: sqlite3.Connection) -> None:
    """Upgrade a database of an older release: its tables were WITHOUT ROWID.

    Each is copied row for row into a rowid table in one write transaction, so
    every worker that opens the file at once sees either the old table or the new.
    """
    for table in _TABLES:
        if not _without_rowid(conn, table.name):
            continue
        with _write_transaction(conn):
            if not _without_rowid(conn, table.name):  # another worker upgraded it meanwhile
                continue
            staging = f"{table.name}_rowid"
            conn.execute(table.create(staging))
            # Every name below is a constant of this module.
            conn.execute(
                f"INSERT INTO {staging} ({table.columns})"  # noqa: S608
                f" SELECT {table.columns} FROM {table.name}"
            )
            conn.execute(f"DROP TABLE {table.name}")
            conn.execute(f"ALTER TABLE {staging} RENAME TO {table.name}")
            for index in table.indexes:
                conn.execute(index)


def _missing_columns(conn: sqlite3.Connection) -> list[str]:
    have = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    return [c for c in _COLUMNS_ADDED if c.split()[0] not in have]


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that holds the database's write lock from its start."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _as_bytes(row: tuple[object, ...] | None) -> bytes | None:
    if row is None:
        return None
    value = row[0]
    return value if isinstance(value, bytes) else None
