"""Pure state transitions of an AuthRequest; the engine does the I/O.

Every change of a stored request is one of these functions. Each returns the
next version of a request (built with ``model.advance``, ``version + 1``) for
the store's compare-and-set, or raises ``ValueError`` when the move is not
allowed from the current state. The engine (``flow/engine.py``) applies them
and decides what a lost race means.

=========================  ====================================================
transition                 change
=========================  ====================================================
``begin``                  (nothing) -> pending, version 0
``renew``                  a held lease lasts longer
``reschedule``             pending stays pending, lease released, next poll set
``settle``                 pending -> approved | denied | failed | expired
``expire``                 pending -> expired (its lifetime ran out)
``redeem``                 approved -> issued (token endpoint)
``issue_push``             approved -> issued with the sealed push response
``delivered``              notification due -> delivered
``retry_notification``     notification due -> due again later
``notification_failed``    notification due -> failed (refused, gave up, dropped)
``release``                a terminal request with nothing due: lease released
=========================  ====================================================
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from ciba_gateway.connector import (
    Approved,
    Denied,
    Expired,
    Failed,
    Outcome,
    Pending,
    Started,
    StartRequest,
)
from ciba_gateway.flow.model import AuthRequest, Status, advance, with_lease

__all__ = [
    "begin",
    "delivered",
    "expire",
    "issue_push",
    "needs_notification",
    "notification_failed",
    "redeem",
    "release",
    "renew",
    "reschedule",
    "retry_notification",
    "settle",
]

_ERRORS: dict[type, tuple[Status, str]] = {
    Denied: (Status.DENIED, "access_denied"),
    Expired: (Status.EXPIRED, "expired_token"),
    Failed: (Status.FAILED, "transaction_failed"),
}
_RELEASED: dict[str, Any] = {"next_poll_at": None, "lease_owner": None, "lease_until": None}


def _require(request: AuthRequest, status: Status) -> None:
    if request.status is not status:
        raise ValueError(f"request is {request.status}, not {status}")


def _require_due(request: AuthRequest) -> None:
    if request.notify_state != "due":
        raise ValueError(f"notification is {request.notify_state}, not due")


def begin(
    start: StartRequest,
    started: Started,
    *,
    connector: str,
    now: float,
    interval: int,
    route_acr: str | None,
    delivery_mode: str,
    client_notification_token: str | None,
) -> AuthRequest:
    """The new pending request for an upstream order the connector started.

    The first poll falls due after the connector's ``poll_after``; a connector
    that is called back (``poll_after`` None) is looked at only on expiry.
    """
    expires_at = start.expires_at
    first_poll = expires_at if started.poll_after is None else now + started.poll_after
    return AuthRequest(
        auth_req_id=start.ref,
        tenant_id=start.tenant_id,
        client_id=start.client_id,
        scope=start.scope,
        login_hint=start.login_hint,
        connector=connector,
        created_at=now,
        expires_at=expires_at,
        interval=interval,
        acr_values=start.acr_values,
        route_acr=route_acr,
        binding_message=start.binding_message,
        authorization_details=start.authorization_details,
        delivery_mode=delivery_mode,
        client_notification_token=client_notification_token,
        session=started.session,
        next_poll_at=min(first_poll, expires_at),
    )


def renew(request: AuthRequest, until: float) -> AuthRequest:
    """Extend the lease its holder has, while its poll or delivery is still running."""
    if request.lease_owner is None:
        raise ValueError("request is not leased")
    return with_lease(request, request.lease_owner, until)


def needs_notification(request: AuthRequest, *, on_expiry: bool = True) -> bool:
    """Ping/push clients are notified of every outcome; of a lifetime expiry only ``on_expiry``.

    CIBA Core allows, but does not require, telling a client its request expired
    (section 12 lists ``expired_token`` for push); a ping then makes the client poll
    and learn ``expired_token``.
    """
    if request.delivery_mode == "poll" or not request.is_terminal:
        return False
    decided = request.decided_at if request.decided_at is not None else request.expires_at
    lifetime_expiry = request.status is Status.EXPIRED and decided >= request.expires_at
    return on_expiry or not lifetime_expiry


def settle(
    request: AuthRequest, outcome: Outcome, now: float, *, notify_expiry: bool = True
) -> AuthRequest:
    """Record a terminal outcome of a pending request (and mark a ping/push as due now).

    ``notify_expiry``: whether a lifetime expiry is notified too (``notifications.on_expiry``).
    """
    _require(request, Status.PENDING)
    changes: dict[str, Any] = {**_RELEASED, "decided_at": now}
    if isinstance(outcome, Approved):
        changes.update(status=Status.APPROVED, identity=outcome.identity)
    else:
        status, error = _ERRORS[type(outcome)]
        changes.update(status=status, error=error, error_description=outcome.reason, session=None)
    if needs_notification(replace(request, **changes), on_expiry=notify_expiry):
        changes.update(notify_state="due", next_poll_at=now)
    return advance(request, **changes)


def reschedule(
    request: AuthRequest, pending: Pending | None, now: float, delay: float
) -> AuthRequest:
    """Keep a request pending and release its lease until ``now + delay``.

    The next poll never lands after expiry, so an expired request is picked up
    on time to be cancelled upstream.
    """
    _require(request, Status.PENDING)
    session = request.session
    if pending is not None and pending.session is not None:
        session = pending.session
    return advance(
        request,
        session=session,
        next_poll_at=min(now + delay, request.expires_at),
        lease_owner=None,
        lease_until=None,
    )


def expire(request: AuthRequest, now: float, *, notify: bool = True) -> AuthRequest:
    """A pending request whose lifetime ran out (a ping/push is due when ``notify``)."""
    expired = Expired(reason="the authentication request expired")
    return settle(request, expired, now, notify_expiry=notify)


def redeem(request: AuthRequest) -> AuthRequest:
    """Approved -> issued; the identity leaves the store with it (DESIGN.md section 8).

    Lease and notification fields stay as they are: a ping being delivered
    while the client redeems is still recorded as delivered by its driver.
    """
    _require(request, Status.APPROVED)
    return advance(request, status=Status.ISSUED, identity=None)


def issue_push(request: AuthRequest, payload: bytes) -> AuthRequest:
    """Approved -> issued for a push client, keeping the sealed token response to send."""
    _require(request, Status.APPROVED)
    return advance(request, status=Status.ISSUED, identity=None, notify_payload=payload)


def delivered(request: AuthRequest) -> AuthRequest:
    """The notification was accepted (2xx): never sent again."""
    _require_due(request)
    return advance(
        request, notify_state="delivered", notify_attempts=request.notify_attempts + 1, **_RELEASED
    )


def retry_notification(request: AuthRequest, at: float) -> AuthRequest:
    """One attempt failed in a way worth retrying; try again at ``at``."""
    _require_due(request)
    return advance(
        request,
        notify_attempts=request.notify_attempts + 1,
        next_poll_at=at,
        lease_owner=None,
        lease_until=None,
    )


def notification_failed(request: AuthRequest) -> AuthRequest:
    """Delivery stopped for good: refused, out of attempts, or it cannot be built."""
    _require_due(request)
    return advance(
        request, notify_state="failed", notify_attempts=request.notify_attempts + 1, **_RELEASED
    )


def release(request: AuthRequest) -> AuthRequest:
    """A leased request with nothing (more) to do: off the due list, lease released."""
    return advance(request, **_RELEASED)
