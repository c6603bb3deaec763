"""Pure state transitions of an AuthRequest."""

from __future__ import annotations

import pytest

from ciba_gateway.connector import Approved, Denied, Expired, Failed, Identity, LoginHint, Pending
from ciba_gateway.flow import transitions
from ciba_gateway.flow.model import AuthRequest, Status


def pending(**overrides) -> AuthRequest:
    base = dict(
        auth_req_id="r1",
        tenant_id="t",
        client_id="c",
        scope=("openid",),
        login_hint=LoginHint(kind="ssn", value="199001011239", country="SE"),
        connector="x",
        created_at=100.0,
        expires_at=220.0,
        interval=5,
        lease_owner="d1",
        lease_until=130.0,
        next_poll_at=100.0,
        session={"o": 1},
    )
    base.update(overrides)
    return AuthRequest(**base)


def test_settle_approved_keeps_identity_and_clears_lease() -> None:
    """Approval stores the identity, bumps the version and releases the lease."""
    identity = Identity(scheme="se-pnr", subject="199001011239")
    new = transitions.settle(pending(), Approved(identity=identity), now=110.0)
    assert new.status is Status.APPROVED
    assert new.identity == identity
    assert new.version == 1
    assert (new.lease_owner, new.lease_until, new.next_poll_at) == (None, None, None)
    assert new.decided_at == 110.0


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        (Denied(reason="no"), Status.DENIED, "access_denied"),
        (Expired(reason="late"), Status.EXPIRED, "expired_token"),
        (Failed(reason="broken"), Status.FAILED, "transaction_failed"),
    ],
)
def test_settle_refusals_record_error_and_drop_session(outcome, status, error) -> None:
    """Each refusal maps to its status and CIBA error code, and forgets the upstream session."""
    new = transitions.settle(pending(), outcome, now=110.0)
    assert new.status is status
    assert new.error == error
    assert new.error_description == outcome.reason
    assert new.session is None


def test_settle_refuses_non_pending() -> None:
    """A decided request cannot be settled again."""
    done = transitions.settle(pending(), Denied(), now=110.0)
    with pytest.raises(ValueError, match="not pending"):
        transitions.settle(done, Denied(), now=111.0)


def test_reschedule_never_goes_past_expiry_and_takes_new_session() -> None:
    """The next poll is capped at expires_at and a Pending's session replaces the old one."""
    new = transitions.reschedule(pending(), Pending(session={"o": 2}), now=200.0, delay=60.0)
    assert new.next_poll_at == 220.0
    assert new.session == {"o": 2}
    assert new.lease_owner is None
    kept = transitions.reschedule(pending(), None, now=150.0, delay=2.0)
    assert kept.next_poll_at == 152.0
    assert kept.session == {"o": 1}


def test_issue_only_from_approved_and_drops_identity() -> None:
    """approved -> issued removes the identity; anything else is refused."""
    approved = transitions.settle(
        pending(), Approved(identity=Identity(scheme="s", subject="1")), now=110.0
    )
    issued = transitions.redeem(approved)
    assert issued.status is Status.ISSUED
    assert issued.identity is None
    assert issued.version == approved.version + 1
    with pytest.raises(ValueError, match="not approved"):
        transitions.redeem(issued)
