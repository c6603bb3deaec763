"""The flow engine: the I/O around the pure transitions.

It owns every write of an AuthRequest after creation: compare-and-set retries,
settling outcomes from the driver or a connector callback, expiring, and the
once-only approved -> issued move of the token endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from msgspec.structs import replace

from ciba_gateway.connector import Outcome, Pending, StartRequest
from ciba_gateway.flow import transitions
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.flow.notify import needs_notification
from ciba_gateway.metrics import Metrics
from ciba_gateway.store.base import Store

__all__ = ["FlowEngine", "start_request_for"]

_CAS_ATTEMPTS = 5
log = structlog.get_logger("ciba_gateway.flow")


class FlowEngine:
    """Moves requests between states in the store, once and atomically."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()

    def _finished(self, written: AuthRequest | None) -> AuthRequest | None:
        if written is not None:
            self.metrics.flows_finished.labels(
                written.tenant_id, written.connector, str(written.status)
            ).inc()
            log.info(
                "flow_finished",
                tenant=written.tenant_id,
                connector=written.connector,
                outcome=str(written.status),
            )
        return written

    async def create(self, request: AuthRequest) -> None:
        """Persist a new pending request."""
        await self.store.create(request)

    async def get(self, auth_req_id: str) -> AuthRequest | None:
        return await self.store.get(auth_req_id)

    async def _update(
        self,
        request: AuthRequest,
        step: Callable[[AuthRequest], AuthRequest | None],
    ) -> AuthRequest | None:
        """Apply ``step`` with compare-and-set, re-reading on conflict.

        ``step`` returns the next version, or None when nothing should change
        (for example the request is no longer pending). Returns what was written.
        """
        current: AuthRequest | None = request
        for _ in range(_CAS_ATTEMPTS):
            if current is None:
                return None
            new = step(current)
            if new is None:
                return None
            if await self.store.transition(new):
                return new
            current = await self.store.get(request.auth_req_id)
        log.warning("cas_gave_up", auth_req=request.auth_req_id[:8])
        return None

    async def settle(self, request: AuthRequest, outcome: Outcome) -> AuthRequest | None:
        """Record a terminal outcome if the request is still pending."""
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.PENDING:
                return None
            if now >= current.expires_at:
                return transitions.expire(current, now)
            return _with_notification(transitions.settle(current, outcome, now), now)

        return self._finished(await self._update(request, step))

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
        """Expire a pending request whose lifetime ran out."""
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.PENDING:
                return None
            return transitions.expire(current, now)

        return self._finished(await self._update(request, step))

    async def reschedule(
        self, request: AuthRequest, delay: float, pending: Pending | None = None
    ) -> AuthRequest | None:
        """Keep a leased request pending and poll it again after ``delay`` seconds."""
        now = self.clock()

        def step(current: AuthRequest) -> AuthRequest | None:
            if current.status is not Status.PENDING:
                return None
            return transitions.reschedule(current, pending, now, delay)

        return await self._update(request, step)

    async def issue(self, request: AuthRequest) -> bool:
        """Approved -> issued exactly once; True only for the caller that won."""
        if request.status is not Status.APPROVED:
            return False
        return await self.store.transition(transitions.issue(request))


def _with_notification(request: AuthRequest, now: float) -> AuthRequest:
    """Mark a ping/push outcome as due for delivery right away."""
    if needs_notification(request):
        return replace(request, notify_state="due", next_poll_at=now)
    return request


def start_request_for(request: AuthRequest, client_name: str) -> StartRequest:
    """The connector's view of a stored request."""
    return StartRequest(
        ref=request.auth_req_id,
        tenant_id=request.tenant_id,
        client_id=request.client_id,
        client_name=client_name,
        login_hint=request.login_hint,
        scope=request.scope,
        acr_values=request.acr_values,
        binding_message=request.binding_message,
        authorization_details=request.authorization_details,
        expires_at=request.expires_at,
    )
