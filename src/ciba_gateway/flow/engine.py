"""The flow engine: the one writer of stored AuthRequests.

Every change of a stored request is a named transition of ``flow/transitions.py``
applied here by ``_apply``: compare-and-set on ``version``, and on a conflict
re-read and decide again. Nothing else writes requests: the protocol layer asks
the engine (``begin``, ``poll``, ``redeem``), and so do the driver (``lease``,
``renew``, ``reschedule``, ``settle``, ``expire``, ``release``) and the
notification steps (``issue_push``, ``record_delivery``). A test
(``tests/unit/test_one_owner.py``) keeps every store write and version bump here.

A write of the driver names the lease it holds (its owner id, the *fence*); it
is re-applied after a conflict only while that driver still holds the lease.
(A driver never runs two tasks for one request, so its own writes and lease
renewals never fence each other out; a restarted process has a new owner id.)
Every lost race has an outcome:

==========================================  ==============================================
race                                        outcome
==========================================  ==============================================
two token calls redeem one approval         the first write wins and its caller gets the
                                            tokens; the other re-reads ``issued`` and
                                            answers ``invalid_grant``: one token response
redeem while the driver leases the request  the lease's version bump fails the redeem's
(for its ping)                              write; it re-reads, is still approved, wins
ping delivered after the client redeemed    the delivery re-reads the issued request, its
(it called /token before answering)         lease still stands: ``delivered`` is recorded
                                            on top of ``issued``; the ping is never re-sent
push built while a token call redeemed      whichever issues first wins; the push's
(a reload made the client poll)             response is thrown away, never sent (its
                                            access token is unknown to anyone)
poll result vs. a callback's outcome        the first outcome wins; the later one finds
                                            the request decided and is dropped
poll result vs. expiry                      past ``expires_at`` any outcome settles as
                                            expired, so a late approval mints nothing
driver write after its lease was taken      the fence fails: the write is dropped and the
over (it could not renew in time)           new holder does the work; the driver stops
                                            the task as its lease runs out
a lease renewal vs. any other write         re-applied while the lease is unchanged
a retried write that keeps losing           gives up after ``_CAS_ATTEMPTS`` re-reads and
                                            logs ``cas_gave_up``; the lease runs out and
                                            the work is done again, never twice at once
==========================================  ==============================================
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any

import msgspec
import structlog

from ciba_gateway.connector import (
    Connector,
    LoginHint,
    Outcome,
    Pending,
    StartRequest,
)
from ciba_gateway.flow import transitions
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.flow.notify import Delivery
from ciba_gateway.metrics import Metrics
from ciba_gateway.store.base import Polled, Store, Value, poller
from ciba_gateway.store.values import Values
from ciba_gateway.tracing import NO_TRACING, Span, Tracing

__all__ = ["SLOW_DOWN_STEP", "FlowEngine", "NewRequest", "start_request_for"]

_CAS_ATTEMPTS = 5
SLOW_DOWN_STEP = 5
"""Seconds ``slow_down`` adds to a client's polling interval (CIBA Core 11, RFC 8628 3.5)."""
_JITTER = 0.5
log = structlog.get_logger("ciba_gateway.flow")

Step = Callable[[AuthRequest], AuthRequest | None]
Fence = str | None


class NewRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A validated backchannel request, ready to start (``FlowEngine.begin``)."""

    tenant_id: str
    client_id: str
    client_name: str
    login_hint: LoginHint
    scope: tuple[str, ...]
    connector: str
    """The connector instance name of the route."""
    expires_in: int
    interval: int
    acr_values: tuple[str, ...] = ()
    route_acr: str | None = None
    binding_message: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    delivery_mode: str = "poll"
    client_notification_token: str | None = None
    end_user_ip: str = "127.0.0.1"


def _fence(request: AuthRequest) -> Fence:
    return request.lease_owner


class _ConnectorCall:
    """``FlowEngine.connector_call``: a class, not a generator, since it wraps every start.

    Enters the metrics timer, then the span; leaves them in reverse order, so the
    timer sees the exception the block raised.
    """

    __slots__ = ("_span", "_timer")

    def __init__(
        self, timer: AbstractAsyncContextManager[None], span: AbstractContextManager[Span]
    ) -> None:
        self._timer = timer
        self._span = span

    async def __aenter__(self) -> Span:
        await self._timer.__aenter__()
        try:
            return self._span.__enter__()
        except BaseException as exc:
            await self._timer.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._span.__exit__(kind, exc, tb)
        finally:
            await self._timer.__aexit__(kind, exc, tb)


class FlowEngine:
    """Moves requests between states in the store, once and atomically."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        on_decision: Callable[[AuthRequest], None] | None = None,
        notify_expiry: bool = True,
        tracing: Tracing = NO_TRACING,
        connector_kinds: Mapping[type, str] | None = None,
    ) -> None:
        self.store = store
        self._values = Values(store)
        self.tracing = tracing
        self.connector_kinds = connector_kinds or {}
        """Connector class -> its ``type`` name in the config (a span attribute)."""
        self.notify_expiry = notify_expiry
        """Ping/push clients are told of a lifetime expiry (``notifications.on_expiry``)."""
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.on_decision = on_decision
        """Called once with every request this engine settled (the audit trail)."""

    @property
    def values(self) -> Values:
        """The store's small-value space (replay caches, tokens): everything but requests."""
        return self._values

    def connector_call(
        self, tenant_id: str, name: str, connector: Connector, operation: str
    ) -> _ConnectorCall:
        """``async with``: time, count and trace one ``start``, ``poll`` or ``cancel``.

        The one place connector calls are measured (the driver's polls and cancels
        too); upstream HTTP calls made inside become child spans of this one. The
        block gets the span (a no-op one when tracing is off).
        """
        attributes = None
        if self.tracing.enabled:
            attributes = {
                "ciba.tenant": tenant_id,
                "ciba.connector": name,
                "ciba.connector.kind": self.connector_kinds.get(type(connector), "unknown"),
                "ciba.operation": operation,
            }
        return _ConnectorCall(
            self.metrics.upstream(name, operation),
            self.tracing.span(f"connector.{operation}", attributes=attributes),
        )

    # --- the one writer -----------------------------------------------------

    async def _apply(
        self,
        request: AuthRequest,
        step: Step,
        *,
        fence: Fence | None = None,
        values: Sequence[Value] = (),
    ) -> AuthRequest | None:
        """Apply ``step`` with compare-and-set, re-reading on conflict.

        ``step`` returns the next version, or None when nothing should change
        (the race is lost, see the table above). With a ``fence`` the step is
        applied only while that owner holds the stored lease; ``values`` are stored
        with the write that wins (``Store.transition``). Returns what was written.
        """
        current: AuthRequest | None = request
        for _ in range(_CAS_ATTEMPTS):
            if current is None or (fence is not None and current.lease_owner != fence):
                return None
            new = step(current)
            if new is None:
                return None
            if await self.store.transition(new, values):
                return new
            current = await self.store.get(request.auth_req_id)
        log.warning("cas_gave_up", auth_req=request.auth_req_id[:8])
        return None

    def _finished(self, written: AuthRequest | None) -> AuthRequest | None:
        if written is not None:
            outcome = str(written.status)
            self.metrics.flows_finished.labels(written.tenant_id, written.connector, outcome).inc()
            self.metrics.flow_duration.labels(
                written.tenant_id, written.connector, outcome
            ).observe(max(0.0, self.clock() - written.created_at))
            log.info(
                "flow_finished",
                tenant=written.tenant_id,
                connector=written.connector,
                outcome=outcome,
            )
            if self.on_decision is not None:
                self.on_decision(written)
        return written

    # --- the protocol layer's requests ---------------------------------------

    async def begin(self, new: NewRequest, connector: Connector) -> AuthRequest:
        """Start the upstream authentication and persist the pending request.

        Raises the connector's ``ConnectorError`` when the upstream refuses. If
        persisting fails, the upstream order is cancelled (so nothing is left
        running that no request knows of) and the store's error propagates.
        """
        now = self.clock()
        start = StartRequest(
            ref=secrets.token_urlsafe(32),
            tenant_id=new.tenant_id,
            client_id=new.client_id,
            client_name=new.client_name,
            login_hint=new.login_hint,
            scope=new.scope,
            expires_at=now + new.expires_in,
            acr_values=new.acr_values,
            binding_message=new.binding_message,
            end_user_ip=new.end_user_ip,
            authorization_details=new.authorization_details,
        )
        async with self.connector_call(new.tenant_id, new.connector, connector, "start") as span:
            started = await connector.start(start)
            span.set("ciba.outcome", "started")
        request = transitions.begin(
            start,
            started,
            connector=new.connector,
            now=now,
            interval=new.interval,
            route_acr=new.route_acr,
            delivery_mode=new.delivery_mode,
            client_notification_token=new.client_notification_token,
        )
        try:
            await self.store.create(request)
        except BaseException:
            with contextlib.suppress(Exception):
                async with self.connector_call(new.tenant_id, new.connector, connector, "cancel"):
                    await connector.cancel(started.session)
            raise
        self.metrics.flows_started.labels(new.tenant_id, new.connector).inc()
        return request

    async def get(self, auth_req_id: str) -> AuthRequest | None:
        return await self.store.get(auth_req_id)

    async def redeem(
        self, request: AuthRequest, values: Sequence[Value] = ()
    ) -> AuthRequest | None:
        """Approved -> issued exactly once; the issued request only for the caller that won.

        Never past ``expires_at`` (CIBA Core 7.3: the auth_req_id is void then), so an
        approval redeemed too late mints nothing whatever the caller checked before.
        ``values`` (the new access token's record) are stored only by the winning
        write, in the same store call.
        """
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.APPROVED or now >= current.expires_at:
                return None
            return transitions.redeem(current)

        return await self._apply(request, step, values=values)

    async def poll(
        self, auth_req_id: str, tenant_id: str, client_id: str, now: float
    ) -> Polled | None:
        """Read a request for a token poll of ``client_id``; if pending, record the poll.

        One store call (``Store.poll``) reads the request and, when it is pending
        and this client's, records the poll's pacing atomically, on every store and
        across workers and replicas. A poll earlier than ``interval - 0.5 s`` after
        the previous one (the half-second absorbs network jitter of a client polling
        exactly on time) grows the interval by ``SLOW_DOWN_STEP`` and comes back as
        the second item (``slow_down``). The pacing state is the store's, beside the
        request and outside its versioned fields, so a busy polling client never
        races the driver's writes.
        """
        return await self.store.poll(
            auth_req_id, poller(tenant_id, client_id), now, _JITTER, SLOW_DOWN_STEP
        )

    # --- outcomes -----------------------------------------------------------

    async def settle(
        self, request: AuthRequest, outcome: Outcome, *, leased: bool = False
    ) -> AuthRequest | None:
        """Record a terminal outcome if the request is still pending.

        ``leased``: the caller is the driver holding ``request``'s lease (fenced).
        """
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.PENDING:
                return None
            if now >= current.expires_at:
                return transitions.expire(current, now, notify=self.notify_expiry)
            return transitions.settle(current, outcome, now)

        fence = _fence(request) if leased else None
        return self._finished(await self._apply(request, step, fence=fence))

    async def settle_by_id(
        self, auth_req_id: str, outcome: Outcome, *, tenant_id: str | None = None
    ) -> bool:
        """Settle by id (connector callbacks); False when unknown or no longer pending."""
        request = await self.store.get(auth_req_id)
        if request is None or (tenant_id is not None and request.tenant_id != tenant_id):
            return False
        written = await self.settle(request, outcome)
        return written is not None and written.status is not Status.EXPIRED

    async def expire(self, request: AuthRequest) -> AuthRequest | None:
        """Expire a pending request whose lifetime ran out (by the driver holding its lease)."""
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.PENDING:
                return None
            return transitions.expire(current, now, notify=self.notify_expiry)

        return self._finished(await self._apply(request, step, fence=_fence(request)))

    # --- the driver's leases --------------------------------------------------

    async def lease(
        self, now: float, owner: str, lease_seconds: float, limit: int
    ) -> list[AuthRequest]:
        """Lease up to ``limit`` requests due by ``now`` to ``owner`` (atomic in the store)."""
        return await self.store.lease_due(now, owner, lease_seconds, limit)

    async def renew(self, request: AuthRequest, until: float) -> AuthRequest | None:
        """Extend a held lease to ``until``; None when the lease is no longer the holder's."""

        def step(current: AuthRequest) -> AuthRequest | None:
            return transitions.renew(current, until)

        return await self._apply(request, step, fence=_fence(request))

    async def release_all(self, owner: str) -> int:
        """Release every lease ``owner`` holds (graceful shutdown)."""
        return await self.store.release_leases(owner)

    async def reschedule(
        self, request: AuthRequest, delay: float, pending: Pending | None = None
    ) -> AuthRequest | None:
        """Keep a leased request pending and poll it again after ``delay`` seconds."""
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.PENDING:
                return None
            return transitions.reschedule(current, pending, now, delay)

        return await self._apply(request, step, fence=_fence(request))

    async def release(self, request: AuthRequest) -> AuthRequest | None:
        """A leased request with nothing to do: off the due list."""
        return await self._apply(request, transitions.release, fence=_fence(request))

    # --- notifications ------------------------------------------------------

    async def issue_push(self, request: AuthRequest, payload: bytes) -> AuthRequest | None:
        """Approved -> issued with the sealed push response; None if it was issued already."""

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.APPROVED:
                return None
            return transitions.issue_push(current, payload)

        return await self._apply(request, step, fence=_fence(request))

    async def record_delivery(self, request: AuthRequest, delivery: Delivery) -> AuthRequest | None:
        """Record what a notification attempt came to, on whatever the request became meanwhile."""

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.notify_state != "due":
                return None
            if delivery.state == "delivered":
                return transitions.delivered(current)
            if delivery.state == "retry" and delivery.retry_at is not None:
                return transitions.retry_notification(current, delivery.retry_at)
            return transitions.notification_failed(current)

        return await self._apply(request, step, fence=_fence(request))


def start_request_for(request: AuthRequest, client_name: str) -> StartRequest:
    """The connector's view of a stored request (the fields ``begin`` started it with)."""
    return StartRequest(
        ref=request.auth_req_id,
        tenant_id=request.tenant_id,
        client_id=request.client_id,
        client_name=client_name,
        login_hint=request.login_hint,
        scope=request.scope,
        expires_at=request.expires_at,
        acr_values=request.acr_values,
        binding_message=request.binding_message,
        authorization_details=request.authorization_details,
    )
