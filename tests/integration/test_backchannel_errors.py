"""bc-authorize refusals: every CIBA error code, its status, and nothing persisted."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from tests.integration.conftest import Harness

BASE = {"scope": "openid", "login_hint": "ssn:199001011239"}


async def pending_count(h: Harness) -> int:
    return await h.app.state.gateway.engine.store.count_pending()


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ({"login_hint": "ssn:199001011239"}, 400, "invalid_request"),
        ({**BASE, "scope": "profile"}, 400, "invalid_scope"),
        ({**BASE, "scope": "openid admin"}, 400, "invalid_scope"),
        ({"scope": "openid"}, 400, "invalid_request"),
        ({**BASE, "id_token_hint": "x.y.z"}, 400, "invalid_request"),
        ({**BASE, "login_hint": "ssn:199001011238"}, 400, "invalid_request"),
        ({**BASE, "login_hint": "fax:123"}, 400, "invalid_request"),
        ({**BASE, "login_hint": "ssn:198112289874"}, 400, "unknown_user_id"),
        ({**BASE, "binding_message": "x" * 65}, 400, "invalid_binding_message"),
        ({**BASE, "binding_message": "line\nbreak"}, 400, "invalid_binding_message"),
        ({**BASE, "requested_expiry": "0"}, 400, "invalid_request"),
        ({**BASE, "requested_expiry": "-5"}, 400, "invalid_request"),
        ({**BASE, "requested_expiry": "ten"}, 400, "invalid_request"),
        (
            {**BASE, "acr_values": "urn:nobody:serves:this", "login_hint": "tel:+46701234567"},
            400,
            "invalid_request",
        ),
        ({**BASE, "authorization_details": "not json"}, 400, "invalid_authorization_details"),
        (
            {**BASE, "authorization_details": '[{"type": "wire_transfer"}]'},
            400,
            "invalid_authorization_details",
        ),
        (
            {**BASE, "authorization_details": '{"type": "example_payment"}'},
            400,
            "invalid_authorization_details",
        ),
        ({**BASE, "request": "a.b.c"}, 400, "invalid_request"),
    ],
)
async def test_refusals(harness: Harness, data: dict[str, str], status: int, error: str) -> None:
    """Each bad request gets its CIBA error and status, and nothing is stored."""
    response = await harness.bc_authorize(data)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert response.headers["content-type"].startswith("application/json")
    assert await pending_count(harness) == 0


async def test_duplicate_parameter_is_invalid_request(harness: Harness) -> None:
    """A parameter sent twice is refused (RFC 6749 3.2)."""
    response = await harness.client.post(
        "/acme/bc-authorize",
        content=b"scope=openid&login_hint=ssn:199001011239&scope=openid&client_id=branch"
        b"&client_secret=branch-secret-0123456789abcdef",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_no_client_authentication_is_401(harness: Harness) -> None:
    """A request without client authentication answers 401 invalid_client."""
    response = await harness.client.post("/acme/bc-authorize", data=BASE)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert await pending_count(harness) == 0


async def test_requested_expiry_is_capped_by_tenant_max(harness: Harness) -> None:
    """A requested_expiry above the tenant's maximum is capped, not refused."""
    response = await harness.bc_authorize({**BASE, "requested_expiry": "100000"})
    assert response.status_code == 200
    assert response.json()["expires_in"] == 300
    short = await harness.bc_authorize(
        {**BASE, "login_hint": "ssn:191212121212", "requested_expiry": "30"}
    )
    assert short.json()["expires_in"] == 30


async def test_accepted_authorization_details_are_kept(harness: Harness) -> None:
    """authorization_details of a type the connector declares is accepted and stored."""
    details = [{"type": "example_payment", "amount": "10.00"}]
    response = await harness.bc_authorize({**BASE, "authorization_details": json.dumps(details)})
    assert response.status_code == 200, response.text
    stored = await harness.app.state.gateway.engine.get(response.json()["auth_req_id"])
    assert list(stored.authorization_details) == details


def kiosk_assertion(audience: str, secret: str = "kiosk-secret-0123456789abcdef") -> str:
    now = int(time.time())
    claims = {
        "iss": "kiosk",
        "sub": "kiosk",
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))


async def kiosk_request(h: Harness, extra: dict[str, str]) -> Any:
    data = {
        **BASE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": kiosk_assertion("http://testserver.local/acme"),
        **extra,
    }
    return await h.client.post("/acme/bc-authorize", data=data)


async def test_user_code_missing_invalid_and_valid(harness: Harness) -> None:
    """A client that requires user codes gets missing_user_code, invalid_user_code, then 200."""
    missing = await kiosk_request(harness, {})
    assert missing.json()["error"] == "missing_user_code"
    wrong = await kiosk_request(harness, {"user_code": "0000"})
    assert wrong.json()["error"] == "invalid_user_code"
    ok = await kiosk_request(harness, {"user_code": "4711"})
    assert ok.status_code == 200, ok.text
    assert await pending_count(harness) == 1


async def test_replayed_client_assertion_is_refused(harness: Harness) -> None:
    """The same client assertion (same jti) cannot be used twice."""
    assertion = kiosk_assertion("http://testserver.local/acme")
    data = {
        **BASE,
        "user_code": "4711",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    first = await harness.client.post("/acme/bc-authorize", data=data)
    assert first.status_code == 200
    second = await harness.client.post("/acme/bc-authorize", data=data)
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_client"


def signed_request(h: Harness, claims: dict[str, Any], alg: str = "ES256") -> str:
    key = ECKey.import_key(h.client_jwk)
    return jwt.encode({"alg": alg, "kid": h.client_jwk["kid"]}, claims, key)


def signer_assertion(h: Harness) -> str:
    now = int(time.time())
    claims = {
        "iss": "signer",
        "sub": "signer",
        "aud": "http://testserver.local/acme",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return signed_request(h, claims)


def request_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "signer",
        "aud": "http://testserver.local/acme",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "scope": "openid profile",
        "login_hint": "ssn:199001011239",
        "binding_message": "Signed 42",
        "requested_expiry": 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def signer_post(h: Harness, request_jwt: str | None, **extra: str) -> Any:
    data = {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signer_assertion(h),
        **extra,
    }
    if request_jwt is not None:
        data["request"] = request_jwt
    return await h.client.post("/acme/bc-authorize", data=data)


async def test_signed_request_object_is_accepted(harness: Harness) -> None:
    """A valid signed authentication request starts a flow with the JWT's parameters."""
    response = await signer_post(harness, signed_request(harness, request_claims()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 60
    stored = await harness.app.state.gateway.engine.get(body["auth_req_id"])
    assert stored.binding_message == "Signed 42"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "http://evil.example"},
        {"iss": "someone-else"},
        {"exp": None},
        {"nbf": None},
        {"jti": None},
        {
            "iat": int(time.time()) - 4000,
            "nbf": int(time.time()) - 4000,
            "exp": int(time.time()) + 100,
        },
    ],
)
async def test_bad_signed_request_objects(harness: Harness, overrides: dict[str, Any]) -> None:
    """Request objects with a wrong aud/iss, missing claims or a long lifetime are refused."""
    response = await signer_post(harness, signed_request(harness, request_claims(**overrides)))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert await pending_count(harness) == 0


async def test_request_object_jti_is_single_use(harness: Harness) -> None:
    """A request object cannot be replayed."""
    token = signed_request(harness, request_claims())
    assert (await signer_post(harness, token)).status_code == 200
    again = await signer_post(harness, token)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_request"


async def test_parameters_outside_the_request_object_are_refused(harness: Harness) -> None:
    """With a request object, no authentication parameter may travel outside it."""
    response = await signer_post(
        harness, signed_request(harness, request_claims()), binding_message="outside"
    )
    assert response.status_code == 400
    assert "outside" in response.json()["error_description"]


async def test_client_requiring_signed_requests_refuses_plain_ones(harness: Harness) -> None:
    """A client configured with request_signing_alg must use a request object."""
    response = await signer_post(harness, None, scope="openid", login_hint="ssn:199001011239")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
