"""Token endpoint and hint edge cases the other integration tests leave open.

Token endpoint after expiry, tenant isolation of auth_req_id and id_token_hint,
request-object claim rules, and userinfo against the ID token.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from ciba_gateway.connector.testing import FakeClock
from tests.integration.conftest import Harness
from tests.integration.test_backchannel_errors import request_claims, signed_request, signer_post

BETA_AUTH = ("beta-rp", "beta-secret-0123456789abcdef")
PERSON = "ssn:199001011239"
PROTOCOL_CLAIMS = {"iss", "aud", "exp", "iat", "auth_time", "acr", "amr"}


async def start(h: Harness, *, scope: str = "openid profile ssn", **extra: str) -> str:
    response = await h.bc_authorize({"scope": scope, "login_hint": PERSON, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["auth_req_id"])


async def pending_count(h: Harness) -> int:
    return int(await h.app.state.gateway.engine.store.count_pending())


async def test_approval_not_redeemed_before_expiry_answers_expired_token(
    harness: Harness, clock: FakeClock
) -> None:
    """An approved request whose lifetime ran out mints nothing: expired_token."""
    auth_req_id = await start(harness, requested_expiry="30")
    await harness.drive(rounds=3)
    stored = await harness.app.state.gateway.engine.get(auth_req_id)
    assert stored.status == "approved"
    clock.advance(31)
    late = await harness.token(auth_req_id)
    assert late.status_code == 400, late.text
    assert late.json()["error"] == "expired_token"
    assert "id_token" not in late.json()
    stored = await harness.app.state.gateway.engine.get(auth_req_id)
    assert stored.status == "approved"


async def test_approval_redeemed_in_time_still_issues(harness: Harness, clock: FakeClock) -> None:
    """Just before expires_at an approved request is redeemed normally."""
    auth_req_id = await start(harness, requested_expiry="30")
    await harness.drive(rounds=3)
    clock.advance(29)
    response = await harness.token(auth_req_id)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


async def test_denied_request_after_expiry_answers_expired_token(
    harness: Harness, clock: FakeClock
) -> None:
    """Past expires_at the token endpoint answers expired_token whatever the outcome."""
    response = await harness.bc_authorize(
        {"scope": "openid", "login_hint": "ssn:191212121212", "requested_expiry": "30"}
    )
    auth_req_id = response.json()["auth_req_id"]
    await harness.drive(rounds=3)
    assert (await harness.token(auth_req_id)).json()["error"] == "access_denied"
    clock.advance(31)
    assert (await harness.token(auth_req_id)).json()["error"] == "expired_token"


async def test_issued_request_stays_invalid_grant_after_expiry(
    harness: Harness, clock: FakeClock
) -> None:
    """A redeemed auth_req_id keeps answering invalid_grant, also after its expiry."""
    auth_req_id = await start(harness, requested_expiry="30")
    await harness.drive(rounds=3)
    assert (await harness.token(auth_req_id)).status_code == 200
    clock.advance(31)
    again = await harness.token(auth_req_id)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_auth_req_id_of_another_tenant_is_invalid_grant(harness: Harness) -> None:
    """Tenant beta's token endpoint does not redeem an auth_req_id of tenant acme."""
    auth_req_id = await start(harness)
    await harness.drive(rounds=3)
    foreign = await harness.token(auth_req_id, tenant="beta", auth=BETA_AUTH)
    assert foreign.status_code == 400
    assert foreign.json()["error"] == "invalid_grant"
    own = await harness.token(auth_req_id)
    assert own.status_code == 200, own.text


async def test_token_request_without_auth_req_id_is_invalid_request(harness: Harness) -> None:
    """The CIBA grant without auth_req_id is a malformed request."""
    basic = base64.b64encode(b"branch:branch-secret-0123456789abcdef").decode()
    response = await harness.client.post(
        "/acme/token",
        data={"grant_type": "urn:openid:params:grant-type:ciba"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 401  # branch is a client_secret_post client
    response = await harness.client.post(
        "/acme/token",
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "client_id": "branch",
            "client_secret": "branch-secret-0123456789abcdef",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "auth_req_id" in response.json()["error_description"]


async def test_id_token_of_another_tenant_is_not_a_hint(harness: Harness) -> None:
    """id_token_hint must be an ID token this tenant issued; beta's is refused by acme."""
    beta = await harness.bc_authorize(
        {"scope": "openid", "login_hint": PERSON}, tenant="beta", auth=BETA_AUTH
    )
    await harness.drive(rounds=2)
    token = await harness.token(beta.json()["auth_req_id"], tenant="beta", auth=BETA_AUTH)
    beta_id_token = token.json()["id_token"]
    before = await pending_count(harness)
    response = await harness.bc_authorize({"scope": "openid", "id_token_hint": beta_id_token})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "id_token_hint" in response.json()["error_description"]
    assert await pending_count(harness) == before


async def test_userinfo_returns_the_id_tokens_user_claims(harness: Harness) -> None:
    """/userinfo answers the same sub and scope claims the ID token carries."""
    auth_req_id = await start(harness)
    await harness.drive(rounds=3)
    body = (await harness.token(auth_req_id)).json()
    claims = await harness.verify_id_token(body["id_token"])
    info = await harness.client.get(
        "/acme/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert info.status_code == 200
    user_claims = {k: v for k, v in claims.items() if k not in PROTOCOL_CLAIMS}
    assert {"sub", "name", "ssn"} <= set(user_claims)
    assert info.json() == user_claims


def _unsigned(claims: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none'})}.{b64(claims)}."


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda h: signed_request(h, request_claims(iat=None)), "iat"),
        (
            lambda h: signed_request(
                h,
                request_claims(
                    iat=int(time.time()) - 900,
                    nbf=int(time.time()) - 900,
                    exp=int(time.time()) - 600,
                ),
            ),
            "expired",
        ),
        (lambda h: _unsigned(request_claims()), "signed"),
    ],
    ids=["missing-iat", "expired", "alg-none"],
)
async def test_request_object_claim_rules(harness: Harness, make: Any, reason: str) -> None:
    """A request object without iat, expired, or unsigned is refused; nothing is stored."""
    response = await signer_post(harness, make(harness))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert reason in body["error_description"]
    assert await pending_count(harness) == 0
