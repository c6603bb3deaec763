"""Pure state transitions of an AuthRequest; the engine does the I/O.

Each function returns the next version of a request (``version + 1``) for the
store's compare-and-set, or raises ``ValueError`` when the move is not allowed
from the current state.
"""

from __future__ import annotations

from msgspec.structs import replace

from ciba_gateway.connector import Approved, Denied, Expired, Failed, Outcome, Pending
from ciba_gateway.flow.model import AuthRequest, Status

__all__ = ["expire", "issue", "reschedule", "settle"]

_ERRORS: dict[type, tuple[Status, str]] = {
    Denied: (Status.DENIED, "access_denied"),
    Expired: (Status.EXPIRED, "expired_token"),
    Failed: (Status.FAILED, "transaction_failed"),
}


def _require_pending(request: AuthRequest) -> None:
    if request.status is not Status.PENDING:
        raise ValueError(f"request is {request.status}, not pending")


def settle(request: AuthRequest, outcome: Outcome, now: float) -> AuthRequest:
    """Record a terminal outcome of a pending request."""
    _require_pending(request)
    common = {
        "version": request.version + 1,
        "next_poll_at": None,
        "lease_owner": None,
        "lease_until": None,
        "decided_at": now,
    }
    if isinstance(outcome, Approved):
        return replace(request, status=Status.APPROVED, identity=outcome.identity, **common)
    status, error = _ERRORS[type(outcome)]
    return replace(
        request,
        status=status,
        error=error,
        error_description=outcome.reason,
        session=None,
        **common,
    )


def reschedule(
    request: AuthRequest, pending: Pending | None, now: float, delay: float
) -> AuthRequest:
    """Keep a request pending and release its lease until ``now + delay``.

    The next poll never lands after expiry, so an expired request is picked up
    on time to be cancelled upstream.
    """
    _require_pending(request)
    session = request.session
    if pending is not None and pending.session is not None:
        session = pending.session
    return replace(
        request,
        version=request.version + 1,
        session=session,
        next_poll_at=min(now + delay, request.expires_at),
        lease_owner=None,
        lease_until=None,
    )


def expire(request: AuthRequest, now: float) -> AuthRequest:
    """A pending request whose lifetime ran out."""
    return settle(request, Expired(reason="the authentication request expired"), now)


def issue(request: AuthRequest) -> AuthRequest:
    """Approved -> issued; the identity leaves the store with it (DESIGN.md section 8)."""
    if request.status is not Status.APPROVED:
        raise ValueError(f"request is {request.status}, not approved")
    return replace(request, status=Status.ISSUED, version=request.version + 1, identity=None)
