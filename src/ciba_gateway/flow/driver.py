"""The background driver: polls connectors of pending requests until an outcome.

Each gateway process runs one driver. It leases due requests through the
engine (so with several workers or replicas each upstream order is polled by
exactly one of them), polls the connector, and writes the result back through
the engine, which releases the lease. A dead process's leases simply run out and
another driver takes the work over. Expired requests are settled as expired
and cancelled upstream; due ping/push notifications are delivered.

A lease outlives the work it covers: while a poll or a delivery runs longer
than half a lease (a hung upstream: ``http.timeout`` x tries), the driver renews
its lease. A request is worked on by one task at a time: one the driver leases
again while its task still runs (its lease ran out while the store was
unreachable) stays with that task. If a lease cannot be renewed before it ends,
the driver stops the task, since another replica may take the work over then.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import structlog

from ciba_gateway.connector import (
    Approved,
    Connector,
    ConnectorError,
    Denied,
    Expired,
    Failed,
    Pending,
    UpstreamUnavailable,
)
from ciba_gateway.errors import StoreError
from ciba_gateway.flow.engine import FlowEngine
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.flow.notify import Notifier

__all__ = ["Driver"]

log = structlog.get_logger("ciba_gateway.driver")

ConnectorLookup = Callable[[str, str], Connector | None]
"""(tenant_id, connector instance name) -> connector."""


class Driver:
    """Leases due requests and polls their connectors, concurrently and bounded."""

    def __init__(
        self,
        engine: FlowEngine,
        connectors: ConnectorLookup,
        *,
        tick: float = 0.05,
        lease_seconds: float = 15.0,
        batch: int = 500,
        concurrency: int = 1024,
        retry_delay: float = 2.0,
        owner: str | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine = engine
        self.connectors = connectors
        self.tick = tick
        self.lease_seconds = lease_seconds
        self.batch = batch
        self.retry_delay = retry_delay
        self.notifier = notifier
        self.owner = owner or f"driver-{secrets.token_hex(6)}"
        # Polls in flight at most. 10k BankID orders collected every 2 s keep ~250 in
        # flight: a cap near that queues due polls behind it (bench driver_scale: p99
        # interval 2.28 s at 256, 2.10 s at 1024); the connectors' pools still bound I/O.
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._work: dict[str, AuthRequest] = {}
        """The latest version this driver holds of each request a task works on."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Run the loop in the background (from the app's lifespan)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="ciba-driver")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop leasing, let in-flight polls finish (bounded), release leases."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._inflight:
            _done, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.engine.release_all(self.owner)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                # Lease what falls due within half a tick too: polls land on their due
                # time give or take half a tick, instead of up to a whole tick late.
                leased = await self.run_once(lookahead=self.tick / 2)
                await self.renew_leases()
            except StoreError as exc:
                # The store is down (e.g. Redis restarting): one line per tick, no traceback.
                self.engine.metrics.store_errors.labels("driver").inc()
                log.warning("driver_store_unavailable", error=str(exc))
                leased = 0
            except Exception:
                log.exception("driver_iteration_failed")
                leased = 0
            if leased < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.tick)

    async def run_once(self, lookahead: float = 0.0) -> int:
        """Lease a batch of requests due within ``lookahead`` s, start them; returns how many."""
        now = self.engine.clock() + lookahead
        due = await self.engine.lease(now, self.owner, self.lease_seconds, self.batch)
        for request in due:
            key = request.auth_req_id
            if key in self._work:
                # Still being worked on (our lease ran out and we got it again): the
                # running task keeps it under the new lease; never a second task.
                self._work[key] = request
                continue
            await self._limit.acquire()
            self._work[key] = request
            task = asyncio.create_task(self._process(key))
            self._tasks[key] = task
            self._inflight.add(task)
            task.add_done_callback(lambda t, key=key: self._done(t, key))
        return len(due)

    def _done(self, task: asyncio.Task[None], key: str) -> None:
        self._inflight.discard(task)
        if self._tasks.get(key) is task:
            del self._tasks[key]
            self._work.pop(key, None)
        self._limit.release()

    async def renew_leases(self) -> int:
        """Renew the leases of work past half its lease; stop work whose lease is lost.

        Returns how many leases were renewed.
        """
        now = self.engine.clock()
        renewed = 0
        for key, held in list(self._work.items()):
            if held.lease_until is None or held.lease_until - now > self.lease_seconds / 2:
                continue
            try:
                new = await self.engine.renew(held, now + self.lease_seconds)
            except StoreError as exc:
                self.engine.metrics.store_errors.labels("driver").inc()
                new = None if held.lease_until <= now + self.tick else held
                log.warning("lease_renewal_failed", error=str(exc))
            if new is None:
                self._stop(key, "lease_lost")
            elif new is not held and self._work.get(key) is held:
                self._work[key] = new
                renewed += 1
        return renewed

    def _stop(self, key: str, reason: str) -> None:
        task = self._tasks.get(key)
        if task is not None and not task.done():
            log.warning("driver_work_stopped", reason=reason, auth_req=key[:8])
            task.cancel()

    async def drain(self) -> None:
        """Wait until every in-flight poll finished (tests)."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))

    def _held(self, key: str) -> AuthRequest:
        return self._work[key]

    def _hold(self, written: AuthRequest | None) -> None:
        if written is not None and written.auth_req_id in self._work:
            self._work[written.auth_req_id] = written

    async def _process(self, key: str) -> None:
        request = self._held(key)
        if request.status is not Status.PENDING:
            await self._notify(key)
            return
        tracing = self.engine.tracing
        attributes = None
        if tracing.enabled:
            attributes = {"ciba.tenant": request.tenant_id, "ciba.connector": request.connector}
        # One span for the whole step, so the decision's log and audit lines written
        # after the connector call (flow_finished, ...) carry its trace id too.
        with tracing.span("flow.drive", attributes=attributes):
            await self._drive(key, request)

    async def _drive(self, key: str, request: AuthRequest) -> None:
        """Poll the upstream of one leased pending request and apply what it says."""
        engine = self.engine
        connector = self.connectors(request.tenant_id, request.connector)
        if connector is None:
            failed = Failed(reason="the connector is not configured")
            await engine.settle(request, failed, leased=True)
            return
        if engine.clock() >= request.expires_at:
            expired = await engine.expire(request)
            self._hold(expired)  # no lease to renew while the upstream order is cancelled
            if expired is not None and request.session is not None:
                await self._cancel(connector, request)
            return
        if request.session is None:
            await engine.reschedule(request, request.expires_at - engine.clock())
            return
        started = engine.clock()
        try:
            async with engine.connector_call(
                request.tenant_id, request.connector, connector, "poll"
            ) as span:
                result = await connector.poll(request.session)
                span.set("ciba.outcome", type(result).__name__.lower())
        except UpstreamUnavailable as exc:
            log.warning("upstream_unavailable", connector=request.connector, reason=exc.description)
            await engine.reschedule(self._held(key), self.retry_delay)
            return
        except ConnectorError as exc:
            # The upstream refused for good (UpstreamRejected, ...): retrying cannot help.
            await engine.settle(self._held(key), Failed(reason=exc.description), leased=True)
            return
        except Exception:
            log.exception("connector_poll_failed", connector=request.connector)
            await engine.reschedule(self._held(key), self.retry_delay)
            return
        if isinstance(result, Pending):
            # poll_after counts from this poll's start, as the upstream sees the interval.
            delay = max(result.poll_after - (engine.clock() - started), 0.0)
            await engine.reschedule(self._held(key), delay, result)
        elif isinstance(result, Approved | Denied | Expired | Failed):
            await engine.settle(self._held(key), result, leased=True)

    async def _notify(self, key: str) -> None:
        """Deliver a due ping/push notification (one attempt per lease)."""
        engine, notifier = self.engine, self.notifier
        request = self._held(key)
        if notifier is None or request.notify_state != "due":
            await engine.release(request)
            return
        if request.delivery_mode == "push" and request.status is Status.ISSUED:
            if request.notify_payload is None:
                # Redeemed at the token endpoint (the client was switched to poll by a
                # reload): that was the one token response; nothing to push.
                await engine.record_delivery(request, notifier.drop(request, "already_issued"))
                return
        try:
            if request.delivery_mode == "push" and request.status is Status.APPROVED:
                try:
                    payload = await notifier.build_push(request)
                except Exception as exc:
                    # No tokens can be made (client or tenant removed by a reload):
                    # drop once instead of retrying every lease until retention ends.
                    log.exception("push_build_failed", tenant=request.tenant_id)
                    dropped = notifier.drop(request, type(exc).__name__)
                    await engine.record_delivery(self._held(key), dropped)
                    return
                issued = await engine.issue_push(self._held(key), payload)
                if issued is None:
                    # Issued meanwhile at the token endpoint: that was the one token
                    # response; this one is never sent.
                    dropped = notifier.drop(request, "already_issued")
                    await engine.record_delivery(self._held(key), dropped)
                    return
                self._hold(issued)
            delivery = await notifier.attempt(self._held(key), engine.clock())
            await engine.record_delivery(self._held(key), delivery)
        except Exception:
            # Unexpected (a bug, or the store failing mid-delivery): counted as a failed
            # attempt, so it is retried with backoff and given up on in the end instead
            # of being leased again every lease period for ever.
            log.exception("notification_failed", tenant=request.tenant_id)
            failed = notifier.failed_attempt(self._held(key), engine.clock())
            with contextlib.suppress(Exception):
                await engine.record_delivery(self._held(key), failed)

    async def _cancel(self, connector: Connector, request: AuthRequest) -> None:
        try:
            async with self.engine.connector_call(
                request.tenant_id, request.connector, connector, "cancel"
            ):
                await connector.cancel(request.session or {})
        except Exception:
            log.warning("connector_cancel_failed", connector=request.connector)
