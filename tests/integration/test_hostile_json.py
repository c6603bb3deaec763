"""Deeply nested JSON from outside: an OAuth error and one log line, never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc.jwk import OctKey
from structlog.testing import capture_logs

from tests.integration.conftest import CIBA, Harness
from tests.integration.test_backchannel_errors import (
    BASE,
    kiosk_request,
    request_claims,
    signed_request,
    signer_post,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEEP = 3000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_jws(*, in_header: bool) -> str:
    """A compact JWS whose header (or payload) nests ``DEEP`` arrays."""
    header = '{"alg":"HS256","x":' + deep() + "}" if in_header else '{"alg":"HS256"}'
    payload = '{"sub":"kiosk"}' if in_header else '{"sub":"kiosk","x":' + deep() + "}"
    return f"{b64(header.encode())}.{b64(payload.encode())}.{b64(b'sig')}"


def no_tracebacks(logs: list[dict[str, Any]]) -> None:
    assert not [e for e in logs if e.get("event") == "unhandled_error" or "exc_info" in e]


@pytest.mark.parametrize("in_header", [True, False])
@pytest.mark.parametrize("path", ["/acme/token", "/acme/bc-authorize"])
async def test_deep_client_assertion_is_invalid_client(
    harness: Harness, path: str, in_header: bool
) -> None:
    """No credentials needed to send it: 401 invalid_client, not a RecursionError."""
    data = {
        "grant_type": CIBA,
        "auth_req_id": "x",
        **BASE,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": deep_jws(in_header=in_header),
    }
    with capture_logs() as logs:
        response = await harness.client.post(path, data=data)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    no_tracebacks(logs)


async def test_deep_authorization_details_is_refused(harness: Harness) -> None:
    """An authenticated client's 970-deep authorization_details: 400 with the RFC 9396 code."""
    with capture_logs() as logs:
        response = await harness.bc_authorize({**BASE, "authorization_details": deep(970)})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_authorization_details"
    no_tracebacks(logs)


async def test_authorization_details_at_a_sane_depth_passes_the_cap(harness: Harness) -> None:
    """Nesting a few levels deep inside an accepted type is still accepted."""
    details = [{"type": "example_payment", "amount": {"value": "1", "meta": [[{"a": [1]}]]}}]
    response = await harness.bc_authorize({**BASE, "authorization_details": json.dumps(details)})
    assert response.status_code == 200, response.text


async def test_deep_request_object_is_invalid_request(harness: Harness) -> None:
    """A signed request object with a deep claim is refused before it is decoded."""
    claims = request_claims()
    request_jwt = signed_request(harness, claims)
    header, _, signature = request_jwt.split(".")
    payload = json.dumps(claims)[:-1] + ', "x": ' + deep() + "}"
    with capture_logs() as logs:
        response = await signer_post(harness, f"{header}.{b64(payload.encode())}.{signature}")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    no_tracebacks(logs)


@pytest.mark.parametrize("hint", ["login_hint_token", "id_token_hint"])
async def test_deep_hint_tokens_are_invalid_request(harness: Harness, hint: str) -> None:
    """A login_hint_token or id_token_hint with a deep header is a 400, not a 500."""
    data = {"scope": "openid", hint: deep_jws(in_header=True), "user_code": "4711"}
    with capture_logs() as logs:
        response = await kiosk_request(harness, {**data, "login_hint": ""})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    no_tracebacks(logs)


async def test_signed_hint_with_a_deep_payload_is_refused(harness: Harness) -> None:
    """A correctly signed login_hint_token whose payload nests deep is refused as JSON."""
    from joserfc import jws

    payload = '{"exp": 9999999999, "sub_id": ' + deep() + "}"
    token = jws.serialize_compact(
        {"alg": "HS256"}, payload.encode(), OctKey.import_key("kiosk-secret-0123456789abcdef")
    )
    response = await kiosk_request(
        harness, {"login_hint": "", "login_hint_token": token, "user_code": "4711"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
