"""The persisted authentication request and its states (DESIGN.md section 4).

A leaf: it imports nothing of the gateway but the connector API's value types
(``Identity``, ``LoginHint``, in ``connector.api``, itself a leaf), so the stores
and the flow layer both depend on it and it on neither (an import-linter
contract in pyproject.toml keeps it so).
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from ciba_gateway.connector.api import Identity, LoginHint

__all__ = ["TERMINAL", "AuthRequest", "Status", "advance", "with_lease"]


class Status(enum.StrEnum):
    """``pending -> approved | denied | failed | expired``, ``approved -> issued``."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"
    EXPIRED = "expired"
    ISSUED = "issued"


TERMINAL = frozenset({Status.APPROVED, Status.DENIED, Status.FAILED, Status.EXPIRED, Status.ISSUED})


class AuthRequest(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One CIBA authentication request, as stored.

    Changed only through ``advance`` (the one place ``version`` is bumped) plus a
    compare-and-set on ``version`` in the store. ``next_poll_at`` is when the background driver
    should next poll the connector (None: nothing to poll); ``lease_until`` /
    ``lease_owner`` mark a driver that is working on it.
    """

    auth_req_id: str
    tenant_id: str
    client_id: str
    scope: tuple[str, ...]
    login_hint: LoginHint
    connector: str
    created_at: float
    expires_at: float
    interval: int
    status: Status = Status.PENDING
    version: int = 0
    acr_values: tuple[str, ...] = ()
    route_acr: str | None = None
    binding_message: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    delivery_mode: str = "poll"
    client_notification_token: str | None = None
    session: dict[str, Any] | None = None
    next_poll_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    identity: Identity | None = None
    error: str | None = None
    error_description: str | None = None
    decided_at: float | None = None
    notify_state: str | None = None
    """Ping/push delivery: None (poll, or not yet decided), due, delivered or failed."""
    notify_attempts: int = 0
    notify_payload: bytes | None = None
    """Push mode: the sealed token response, minted once and resent on every retry."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def advance(request: AuthRequest, **changes: Any) -> AuthRequest:
    """The next version of ``request`` with ``changes``: the one place ``version`` is bumped.

    The flow's transitions build every change with it; the stores use it (through
    ``with_lease``) for the leases they hand out atomically. The Redis store's
    scripts do the same ``version + 1`` on the server, where Python cannot run.
    """
    return msgspec.structs.replace(request, version=request.version + 1, **changes)


def with_lease(request: AuthRequest, owner: str | None, until: float | None) -> AuthRequest:
    """``request`` leased to ``owner`` until ``until`` (or released: both None)."""
    return advance(request, lease_owner=owner, lease_until=until)
