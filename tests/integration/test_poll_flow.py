"""CIBA poll mode end to end: bc-authorize, driver, token endpoint, userinfo."""

from __future__ import annotations

import asyncio

from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.errors import AuthorizationPendingError
from ciba_gateway.web.responses import JsonAnswer
from tests.integration.conftest import SECRET, Harness


async def start(h: Harness, **extra: str) -> str:
    data = {"scope": "openid profile ssn", "login_hint": "ssn:199001011239", **extra}
    response = await h.bc_authorize(data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 120
    assert body["interval"] == 5
    return body["auth_req_id"]


async def test_full_flow_issues_verifiable_id_token(harness: Harness) -> None:
    """A request goes pending, the driver approves it, and the token endpoint issues once."""
    auth_req_id = await start(harness, binding_message="Call 4711")
    assert len(auth_req_id) >= 43

    pending = await harness.token(auth_req_id)
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"

    await harness.drive(rounds=3)
    harness_clock: FakeClock = harness.app.state.gateway.clock
    harness_clock.advance(5)
    response = await harness.token(auth_req_id)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    claims = await harness.verify_id_token(body["id_token"])
    assert claims["iss"] == "http://testserver.local/acme"
    assert claims["aud"] == "callcenter"
    assert claims["acr"] == "urn:example:acr:substantial"
    assert claims["amr"] == ["example"]
    assert claims["name"] == "Karl Karlsson"
    assert claims["ssn"] == "199001011239"
    assert "199001011239" not in claims["sub"]
    assert claims["exp"] - claims["iat"] == 300
    assert "auth_time" in claims

    userinfo = await harness.client.get(
        "/acme/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 200
    info = userinfo.json()
    assert info["sub"] == claims["sub"]
    assert info["name"] == "Karl Karlsson"
    assert info["ssn"] == "199001011239"

    again = await harness.token(auth_req_id)
    assert again.json()["error"] == "invalid_grant"


async def test_id_token_header_names_the_current_key(harness: Harness) -> None:
    """The ID token's header carries the tenant's kid and ES256."""
    import base64
    import json

    auth_req_id = await start(harness)
    await harness.drive(rounds=3)
    body = (await harness.token(auth_req_id)).json()
    header_b64 = body["id_token"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    assert header["kid"] == "acme-1"
    assert header["alg"] == "ES256"


async def test_sub_is_stable_per_tenant_and_differs_across_tenants(harness: Harness) -> None:
    """The same person gets the same sub twice in a tenant and another sub in another tenant."""
    subs = []
    for _ in range(2):
        auth_req_id = await start(harness)
        await harness.drive(rounds=3)
        subs.append(
            (await harness.verify_id_token((await harness.token(auth_req_id)).json()["id_token"]))[
                "sub"
            ]
        )
    assert subs[0] == subs[1]
    beta = await harness.bc_authorize(
        {"scope": "openid", "login_hint": "ssn:199001011239"},
        tenant="beta",
        auth=("beta-rp", "beta-secret-0123456789abcdef"),
    )
    await harness.drive(rounds=2)
    token = await harness.token(
        beta.json()["auth_req_id"], tenant="beta", auth=("beta-rp", "beta-secret-0123456789abcdef")
    )
    assert token.status_code == 200, token.text
    beta_claims = await harness.verify_id_token(token.json()["id_token"], tenant="beta")
    assert beta_claims["sub"] != subs[0]


async def test_slow_down_grows_interval_by_five(harness: Harness, clock: FakeClock) -> None:
    """Polling faster than the interval answers slow_down, and the interval grows by 5 s."""
    auth_req_id = await start(harness, login_hint="email:pending@example.com", scope="openid")
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"
    clock.advance(1)
    slow = (await harness.token(auth_req_id)).json()
    assert slow["error"] == "slow_down"
    clock.advance(6)  # 6 s < the new 10 s interval
    assert (await harness.token(auth_req_id)).json()["error"] == "slow_down"
    clock.advance(15)  # now more than 15 s
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"


async def test_pending_answer_is_the_errors_bytes(harness: Harness, clock: FakeClock) -> None:
    """authorization_pending (returned, not raised) answers the raised error's bytes, each time."""
    error = AuthorizationPendingError("the user has not yet been authenticated")
    expected = JsonAnswer.error(error)
    auth_req_id = await start(harness, login_hint="email:pending@example.com", scope="openid")
    answers = []
    for _ in range(2):
        response = await harness.token(auth_req_id)
        answers.append((response.status_code, response.content, sorted(response.headers.raw)))
        clock.advance(6)
    assert answers[0] == answers[1]
    assert answers[0][:2] == (expected.status, expected.body)
    assert answers[0][2] == sorted(expected.headers)


async def test_grown_interval_outlives_polls_on_time(harness: Harness, clock: FakeClock) -> None:
    """A client slowed down keeps its longer interval: a poll on time does not reset it."""
    auth_req_id = await start(harness, login_hint="email:pending@example.com", scope="openid")
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"
    clock.advance(1)
    assert (await harness.token(auth_req_id)).json()["error"] == "slow_down"  # now 10 s
    clock.advance(11)
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"
    clock.advance(7)  # on time for the original 5 s, too early for 10 s
    assert (await harness.token(auth_req_id)).json()["error"] == "slow_down"  # now 15 s
    clock.advance(16)
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"


async def test_expired_request_answers_expired_token(harness: Harness, clock: FakeClock) -> None:
    """After its lifetime a pending request answers expired_token, before and after the driver."""
    auth_req_id = await start(harness, login_hint="email:pending@example.com", scope="openid")
    clock.advance(121)
    assert (await harness.token(auth_req_id)).json()["error"] == "expired_token"
    await harness.drive()
    status = (await harness.app.state.gateway.engine.get(auth_req_id)).status
    assert status == "expired"
    assert (await harness.token(auth_req_id)).json()["error"] == "expired_token"


async def test_denied_request_answers_access_denied(harness: Harness) -> None:
    """A person who declines gives access_denied at the token endpoint."""
    response = await harness.bc_authorize({"scope": "openid", "login_hint": "ssn:191212121212"})
    auth_req_id = response.json()["auth_req_id"]
    await harness.drive(rounds=3)
    token = await harness.token(auth_req_id)
    assert token.status_code == 400
    assert token.json() == {"error": "access_denied", "error_description": "the person said no"}


async def test_unknown_and_foreign_auth_req_id_are_invalid_grant(harness: Harness) -> None:
    """An unknown auth_req_id, and another client's, both answer invalid_grant."""
    assert (await harness.token("no-such-id")).json()["error"] == "invalid_grant"
    auth_req_id = await start(harness)
    other = await harness.client.post(
        "/acme/token",
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": auth_req_id,
            "client_id": "branch",
            "client_secret": "branch-secret-0123456789abcdef",
        },
    )
    assert other.status_code == 400
    assert other.json()["error"] == "invalid_grant"


async def test_concurrent_redemption_issues_exactly_once(harness: Harness) -> None:
    """Twenty parallel token requests for one approved request yield exactly one token."""
    auth_req_id = await start(harness)
    await harness.drive(rounds=3)
    responses = await asyncio.gather(*(harness.token(auth_req_id) for _ in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1
    errors = {r.json()["error"] for r in responses if r.status_code != 200}
    assert errors == {"invalid_grant"}


async def test_wrong_secret_is_invalid_client_with_challenge(harness: Harness) -> None:
    """A wrong client secret at the token endpoint answers 401 invalid_client."""
    response = await harness.token("x", auth=("callcenter", "wrong-secret-0123456789"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_unsupported_grant_type(harness: Harness) -> None:
    """Another grant type answers unsupported_grant_type."""
    response = await harness.client.post(
        "/acme/token",
        data={
            "grant_type": "password",
            "client_id": "branch",
            "client_secret": "branch-secret-0123456789abcdef",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_userinfo_rejects_unknown_token(harness: Harness) -> None:
    """An unknown access token answers 401 invalid_token."""
    response = await harness.client.get("/acme/userinfo", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_client_of_one_tenant_is_unknown_to_another(harness: Harness) -> None:
    """Tenant beta does not know tenant acme's client."""
    response = await harness.bc_authorize(
        {"scope": "openid", "login_hint": "ssn:199001011239"},
        tenant="beta",
        auth=("callcenter", SECRET),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_acr_values_route_in_the_clients_order(harness: Harness) -> None:
    """The first acr of the request that a route serves picks the connector."""
    auth_req_id = await start(
        harness, acr_values="urn:unknown urn:example:acr:low urn:example:acr:substantial"
    )
    await harness.drive(rounds=3)
    claims = await harness.verify_id_token((await harness.token(auth_req_id)).json()["id_token"])
    assert claims["name"] == "Karl Via Other"
    assert claims["acr"] == "urn:example:acr:low"


async def test_id_token_hint_identifies_the_same_person(harness: Harness) -> None:
    """An ID token the tenant issued can name the user of a later request."""
    auth_req_id = await start(harness)
    await harness.drive(rounds=3)
    id_token = (await harness.token(auth_req_id)).json()["id_token"]
    again = await harness.bc_authorize({"scope": "openid", "id_token_hint": id_token})
    assert again.status_code == 200, again.text
    await harness.drive(rounds=3)
    second = await harness.token(again.json()["auth_req_id"])
    claims = await harness.verify_id_token(second.json()["id_token"])
    first = await harness.verify_id_token(id_token)
    assert claims["sub"] == first["sub"]
