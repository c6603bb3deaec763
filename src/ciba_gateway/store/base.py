"""The store protocols every backend implements (memory, SQLite, Redis).

A store serves two concerns. ``RequestStore`` keeps auth requests: only the flow
engine calls it, and every state change is ``transition``, a compare-and-set on
``AuthRequest.version``: of two writers starting from the same version exactly
one wins, which is how a token is issued once. ``ValueStore`` keeps small
expiring values in namespaces (replay caches, tokens, connector state); callers
reach it through ``store.values.Values``, one declared namespace at a time.
``Store`` is both, as one backend serves both. All methods are async and safe to
call from many tasks, processes (SQLite) or replicas (Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ciba_gateway.flow.model import AuthRequest
from ciba_gateway.store.namespaces import Name

__all__ = ["Polled", "RequestStore", "Store", "Value", "ValueStore", "poller"]

Value = tuple[Name, str, bytes, float]
"""A small value to store: (namespace, key, value, ttl seconds), as ``put_value`` takes it.

Made by ``Namespace.value``; ``RequestStore.transition`` writes them with a request.
"""

Polled = tuple[AuthRequest, int | None]
"""What ``Store.poll`` returns: the request, and its grown interval if the poll came too early."""


def poller(tenant_id: str, client_id: str) -> str:
    """Who may pace a request's token polls: its own client (``Store.poll``'s ``owner``)."""
    return f"{tenant_id}\x1f{client_id}"


@runtime_checkable
class ValueStore(Protocol):
    """Small expiring values, kept apart by namespace: what a backend implements.

    The namespace is any string here; the gateway passes only declared ones
    (``store.namespaces``), through ``store.values.Namespace``.
    """

    async def remember(self, namespace: str, key: str, ttl: float) -> bool:
        """Record ``key`` once; True the first time, False while it is remembered (jti replay)."""

    async def put_value(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store a small value that expires after ``ttl`` seconds."""

    async def get_value(self, namespace: str, key: str) -> bytes | None:
        """A stored value, or None when absent or expired."""

    async def swap_value(self, namespace: str, key: str, value: bytes, ttl: float) -> bytes | None:
        """Store ``value`` (expiring after ``ttl`` s) and return the live value it replaced.

        For advisory state (token-poll pacing), in one round trip where the backend
        allows. Memory and Redis swap atomically; SQLite reads then writes, atomic
        within a process but not against another process writing the same key.
        """

    async def take_value(self, namespace: str, key: str) -> bytes | None:
        """Atomically read and delete a value (single use)."""

    async def incr(self, namespace: str, key: str, ttl: float) -> int:
        """Atomically add one to a counter that expires ``ttl`` s after creation."""


@runtime_checkable
class RequestStore(Protocol):
    """Auth requests: create, read, compare-and-set, lease due work; and the lifecycle.

    Only the flow engine (``ciba_gateway.flow.engine``) calls the request methods;
    the app's lifespan calls ``open``/``close``, readiness calls ``ping``.
    """

    async def open(self) -> None:
        """Connect / create schema. Called once from the app's lifespan."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> bool:
        """True when the backend is reachable (readiness)."""

    async def create(self, request: AuthRequest) -> None:
        """Insert a new request; raises StoreError if ``auth_req_id`` exists."""

    async def get(self, auth_req_id: str) -> AuthRequest | None:
        """The request, or None when unknown or past its retention."""

    async def poll(
        self, auth_req_id: str, owner: str, now: float, jitter: float, step: int
    ) -> Polled | None:
        """Read a request for a token poll and, if it is pending, record the poll: one call.

        None when unknown or past retention. When the request is pending, unexpired
        at ``now`` and ``owner`` is its ``poller``, the poll is recorded atomically
        (also across processes and replicas): a poll earlier than ``interval -
        jitter`` after the previous one grows the request's polling interval
        (initially ``request.interval``) by ``step`` and returns the grown interval
        as the second item (``slow_down``); otherwise the second item is None.
        The pacing state outlives every ``transition`` of the request.
        """

    async def transition(self, new: AuthRequest, values: Sequence[Value] = ()) -> bool:
        """Replace the stored request whose version is ``new.version - 1`` with ``new``.

        Returns False (and changes nothing) when the stored version differs or
        the request is gone. Callers build ``new`` with ``version + 1``. ``values``
        are stored (as ``put_value`` would) only when the transition wins, in the
        same round trip: atomically with it on memory and Redis, right after it
        on SQLite (a crash between the two loses the values, never the transition).
        """

    async def lease_due(
        self, now: float, owner: str, lease_seconds: float, limit: int
    ) -> list[AuthRequest]:
        """Lease up to ``limit`` requests whose ``next_poll_at <= now``, earliest first.

        Any status: pending requests are due for a connector poll, terminal ones
        for a ping/push delivery (``next_poll_at`` is None when nothing is due).
        Leased requests are not returned to another caller until
        ``lease_until`` passes. The returned requests already carry the lease
        (``lease_owner``/``lease_until`` set, ``version`` bumped).
        """

    async def release_leases(self, owner: str) -> int:
        """Clear every lease ``owner`` holds (graceful shutdown); returns how many."""

    async def purge_expired(self, now: float) -> int:
        """Delete requests and values past their retention; returns how many."""

    async def count_pending(self) -> int:
        """How many requests are pending (metrics)."""


@runtime_checkable
class Store(RequestStore, ValueStore, Protocol):
    """A backend: the request store and the value store in one (one connection, one file)."""
