"""An in-process store for tests and single-process demos.

Every operation runs synchronously inside its coroutine, so it is atomic with
respect to the other tasks of the one event loop that uses the store. Nothing
is shared between processes: use SQLite or Redis for several workers.

Memory layout (it is benchmarked at 100k pending requests): each request is
kept as its msgpack encoding plus a small row of the fields the store itself
needs (version, status, expiry, due time, lease owner), so no decoded
``AuthRequest`` stays alive. Rows are plain tuples of str, bytes and numbers:
the garbage collector untracks such tuples, so a full collection does not walk
every stored request (a tail-latency cost at 100k pending). Due work is indexed by a min-heap of
``(due, auth_req_id)`` with lazy invalidation: an entry is valid only while it
matches the row's current ``due``; stale entries are dropped when popped, and
the heap is rebuilt when stale entries outnumber the live ones.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence

import msgspec

from ciba_gateway.errors import StoreError
from ciba_gateway.flow.model import AuthRequest, Status, with_lease
from ciba_gateway.store.base import Polled, Value, poller

__all__ = ["MemoryStore"]

_COMPACT_SLACK = 1024
"""Stale heap entries tolerated beyond the live rows before the heap is rebuilt."""


_Row = tuple[bytes, int, str, float, float | None, str | None]
"""(blob, version, status, expires_at, due, owner). ``due``: when the request may next
be leased, ``max(next_poll_at, lease_until)``; None if never."""
_BLOB, _VERSION, _STATUS, _EXPIRES, _DUE, _OWNER = range(6)
_PENDING = Status.PENDING.value


def _due_time(request: AuthRequest) -> float | None:
    if request.next_poll_at is None:
        return None
    if request.lease_until is not None and request.lease_until > request.next_poll_at:
        return request.lease_until
    return request.next_poll_at


class MemoryStore:
    """The ``Store`` protocol in process memory.

    Args:
        retention: seconds a request stays readable after its ``expires_at``.
        clock: returns the current time in seconds (injectable for tests).
    """

    def __init__(self, retention: float = 3600, clock: Callable[[], float] = time.time) -> None:
        self.retention = retention
        self._clock = clock
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AuthRequest)
        self._rows: dict[str, _Row] = {}
        self._queue: list[tuple[float, str]] = []
        self._values: dict[str, dict[str, tuple[bytes | int | None, float]]] = {}
        self._paces: dict[str, tuple[float, int]] = {}
        """Token-poll pacing by request: (last poll, interval)."""

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release; the data stays until the object is dropped."""

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    # --- requests ---------------------------------------------------------

    async def create(self, request: AuthRequest) -> None:
        """Insert a new request; raises StoreError if ``auth_req_id`` exists."""
        if request.auth_req_id in self._rows:
            raise StoreError("auth_req_id already exists")
        self._put(request, None)
        self._maybe_compact()

    async def get(self, auth_req_id: str) -> AuthRequest | None:
        """The request, or None when unknown or past its retention."""
        row = self._live_row(auth_req_id, self._clock())
        return None if row is None else self._decoder.decode(row[_BLOB])

    async def poll(
        self, auth_req_id: str, owner: str, now: float, jitter: float, step: int
    ) -> Polled | None:
        """The request for a token poll, the poll recorded when it is pending (``Store.poll``)."""
        row = self._live_row(auth_req_id, now)
        if row is None:
            return None
        request = self._decoder.decode(row[_BLOB])
        if (
            row[_STATUS] != _PENDING
            or now >= row[_EXPIRES]
            or owner != poller(request.tenant_id, request.client_id)
        ):
            return request, None
        pace = self._paces.get(auth_req_id)
        if pace is None:
            self._paces[auth_req_id] = (now, request.interval)
            return request, None
        last, interval = pace
        if now - last < interval - jitter:
            interval += step
            self._paces[auth_req_id] = (now, interval)
            return request, interval
        self._paces[auth_req_id] = (now, interval)
        return request, None

    async def transition(self, new: AuthRequest, values: Sequence[Value] = ()) -> bool:
        """Replace the stored request whose version is ``new.version - 1`` with ``new``."""
        now = self._clock()
        row = self._live_row(new.auth_req_id, now)
        if row is None or row[_VERSION] != new.version - 1:
            return False
        self._put(new, row[_DUE])
        for namespace, key, value, ttl in values:
            self._values.setdefault(namespace, {})[key] = (value, now + ttl)
        self._maybe_compact()
        return True

    async def lease_due(
        self, now: float, owner: str, lease_seconds: float, limit: int
    ) -> list[AuthRequest]:
        """Lease up to ``limit`` pending requests whose ``next_poll_at <= now``, earliest first."""
        leased: list[AuthRequest] = []
        deferred: list[tuple[float, str]] = []
        cutoff = now - self.retention
        heap = self._queue
        while heap and len(leased) < limit and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            due, auth_req_id = entry
            row = self._rows.get(auth_req_id)
            if row is None or row[_DUE] != due or row[_EXPIRES] < cutoff:
                continue  # stale entry, or the request is gone
            request = self._decoder.decode(row[_BLOB])
            if request.lease_until is not None and request.lease_until >= now:
                deferred.append(entry)  # lease ends exactly now: free only after it
                continue
            request = with_lease(request, owner, now + lease_seconds)
            self._put(request, None)  # its entry was popped above
            leased.append(request)
        for entry in deferred:
            heapq.heappush(heap, entry)
        self._maybe_compact()
        return leased

    async def release_leases(self, owner: str) -> int:
        """Clear every lease ``owner`` holds; bumps the version of each request it frees."""
        held = [(key, row) for key, row in self._rows.items() if row[_OWNER] == owner]
        for _key, row in held:
            request = self._decoder.decode(row[_BLOB])
            self._put(with_lease(request, None, None), row[_DUE])
        self._maybe_compact()
        return len(held)

    async def purge_expired(self, now: float) -> int:
        """Delete requests past their retention and expired values; returns how many."""
        cutoff = now - self.retention
        gone = [key for key, row in self._rows.items() if row[_EXPIRES] < cutoff]
        for key in gone:
            del self._rows[key]
            self._paces.pop(key, None)
        purged = len(gone)
        for namespace, values in list(self._values.items()):
            expired = [key for key, (_, expires_at) in values.items() if expires_at <= now]
            for key in expired:
                del values[key]
            purged += len(expired)
            if not values:
                del self._values[namespace]
        self._maybe_compact()
        return purged

    async def count_pending(self) -> int:
        """How many retained requests are pending."""
        cutoff = self._clock() - self.retention
        return sum(
            1 for row in self._rows.values() if row[_STATUS] == _PENDING and row[_EXPIRES] >= cutoff
        )

    # --- small values -----------------------------------------------------

    async def remember(self, namespace: str, key: str, ttl: float) -> bool:
        """Record ``key`` once; True the first time, False while it is remembered."""
        now = self._clock()
        if self._live_value(namespace, key, now) is not None:
            return False
        self._values.setdefault(namespace, {})[key] = (None, now + ttl)
        return True

    async def put_value(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store a small value that expires after ``ttl`` seconds."""
        self._values.setdefault(namespace, {})[key] = (value, self._clock() + ttl)

    async def get_value(self, namespace: str, key: str) -> bytes | None:
        """A stored value, or None when absent or expired."""
        entry = self._live_value(namespace, key, self._clock())
        return _as_bytes(entry)

    async def swap_value(self, namespace: str, key: str, value: bytes, ttl: float) -> bytes | None:
        """Store ``value`` (expiring after ``ttl`` s); return the live value it replaced."""
        now = self._clock()
        previous = _as_bytes(self._live_value(namespace, key, now))
        self._values.setdefault(namespace, {})[key] = (value, now + ttl)
        return previous

    async def take_value(self, namespace: str, key: str) -> bytes | None:
        """Read and delete a value (single use)."""
        entry = self._live_value(namespace, key, self._clock())
        if entry is None:
            return None
        del self._values[namespace][key]
        return _as_bytes(entry)

    async def incr(self, namespace: str, key: str, ttl: float) -> int:
        """Add one to a counter that expires ``ttl`` s after its first increment."""
        now = self._clock()
        entry = self._live_value(namespace, key, now)
        if entry is None or not isinstance(entry[0], int):
            count, expires_at = 1, now + ttl
        else:
            count, expires_at = entry[0] + 1, entry[1]
        self._values.setdefault(namespace, {})[key] = (count, expires_at)
        return count

    # --- internals --------------------------------------------------------

    def _live_row(self, auth_req_id: str, now: float) -> _Row | None:
        row = self._rows.get(auth_req_id)
        if row is None or row[_EXPIRES] < now - self.retention:
            return None
        return row

    def _put(self, request: AuthRequest, queued_due: float | None) -> None:
        """Store ``request``; ``queued_due`` is the due time of its entry still in the heap."""
        due = _due_time(request)
        self._rows[request.auth_req_id] = (
            self._encoder.encode(request),
            request.version,
            request.status.value,
            request.expires_at,
            due,
            request.lease_owner,
        )
        # Every row with a due time has exactly one valid heap entry; when the
        # due time is unchanged, the entry already queued stays valid.
        if due is not None and due != queued_due:
            heapq.heappush(self._queue, (due, request.auth_req_id))

    def _maybe_compact(self) -> None:
        if len(self._queue) > 2 * len(self._rows) + _COMPACT_SLACK:
            self._queue = [
                (row[_DUE], key) for key, row in self._rows.items() if row[_DUE] is not None
            ]
            heapq.heapify(self._queue)

    def _live_value(
        self, namespace: str, key: str, now: float
    ) -> tuple[bytes | int | None, float] | None:
        entry = self._values.get(namespace, {}).get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry


def _as_bytes(entry: tuple[bytes | int | None, float] | None) -> bytes | None:
    if entry is None:
        return None
    value = entry[0]
    return value if isinstance(value, bytes) else None
