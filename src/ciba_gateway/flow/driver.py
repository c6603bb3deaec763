"""The background driver: polls connectors of pending requests until an outcome.

Each gateway process runs one driver. It leases due requests from the store
(so with several workers or replicas each upstream order is polled by exactly
one of them), polls the connector, and writes the result back through the
engine, which releases the lease. A dead process's leases simply run out and
another driver takes the work over. Expired requests are settled as expired
and cancelled upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import structlog
from msgspec.structs import replace

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
        tick: float = 0.2,
        lease_seconds: float = 15.0,
        batch: int = 500,
        concurrency: int = 256,
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
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
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
            await self.engine.store.release_leases(self.owner)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                # Lease what falls due within half a tick too: polls land on their due
                # time give or take half a tick, instead of up to a whole tick late.
                leased = await self.run_once(lookahead=self.tick / 2)
            except StoreError as exc:
                # The store is down (e.g. Redis restarting): one line per tick, no traceback.
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
        due = await self.engine.store.lease_due(now, self.owner, self.lease_seconds, self.batch)
        for request in due:
            await self._limit.acquire()
            task = asyncio.create_task(self._process(request))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(due)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._limit.release()

    async def drain(self) -> None:
        """Wait until every in-flight poll finished (tests)."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))

    async def _process(self, request: AuthRequest) -> None:
        if request.status is not Status.PENDING:
            await self._notify(request)
            return
        connector = self.connectors(request.tenant_id, request.connector)
        if connector is None:
            await self.engine.settle(request, Failed(reason="the connector is not configured"))
            return
        if self.engine.clock() >= request.expires_at:
            if await self.engine.expire(request) is not None and request.session is not None:
                await self._cancel(connector, request)
            return
        if request.session is None:
            await self.engine.reschedule(request, request.expires_at - self.engine.clock())
            return
        started = self.engine.clock()
        try:
            async with self.engine.metrics.upstream(request.connector, "poll"):
                result = await connector.poll(request.session)
        except UpstreamUnavailable as exc:
            log.warning("upstream_unavailable", connector=request.connector, reason=exc.description)
            await self.engine.reschedule(request, self.retry_delay)
            return
        except ConnectorError as exc:
            # The upstream refused for good (UpstreamRejected, ...): retrying cannot help.
            await self.engine.settle(request, Failed(reason=exc.description))
            return
        except Exception:
            log.exception("connector_poll_failed", connector=request.connector)
            await self.engine.reschedule(request, self.retry_delay)
            return
        if isinstance(result, Pending):
            # poll_after counts from this poll's start, as the upstream sees the interval.
            delay = max(result.poll_after - (self.engine.clock() - started), 0.0)
            await self.engine.reschedule(request, delay, result)
        elif isinstance(result, Approved | Denied | Expired | Failed):
            await self.engine.settle(request, result)

    async def _notify(self, request: AuthRequest) -> None:
        """Deliver a due ping/push notification (one attempt per lease)."""
        store = self.engine.store
        if self.notifier is None or request.notify_state != "due":
            await store.transition(_released(request))
            return
        try:
            if request.delivery_mode == "push" and request.status is Status.APPROVED:
                try:
                    issued = await self.notifier.build_push(request)
                except Exception as exc:
                    # No tokens can be made (client or tenant removed by a reload):
                    # drop once instead of retrying every lease until retention ends.
                    log.exception("push_build_failed", tenant=request.tenant_id)
                    await store.transition(self.notifier.drop(request, type(exc).__name__))
                    return
                if not await store.transition(issued):
                    return
                request = issued
            await store.transition(await self.notifier.attempt(request, self.engine.clock()))
        except Exception:
            log.exception("notification_failed", tenant=request.tenant_id)

    async def _cancel(self, connector: Connector, request: AuthRequest) -> None:
        try:
            async with self.engine.metrics.upstream(request.connector, "cancel"):
                await connector.cancel(request.session or {})
        except Exception:
            log.warning("connector_cancel_failed", connector=request.connector)


def _released(request: AuthRequest) -> AuthRequest:
    """A leased terminal request with nothing (more) to deliver, lease released."""
    return replace(
        request,
        version=request.version + 1,
        next_poll_at=None,
        lease_owner=None,
        lease_until=None,
    )
