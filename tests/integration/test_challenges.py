"""WWW-Authenticate on every 401: userinfo (RFC 6750 3) and client authentication."""

from __future__ import annotations

import pytest

from tests.integration.conftest import CIBA, OTHER_SECRET, Harness
from tests.integration.test_backchannel_errors import BASE, kiosk_assertion

REALM = 'Bearer realm="http://testserver.local/acme"'
BASIC = 'Basic realm="http://testserver.local/acme"'
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, REALM),
        ({"Authorization": "Basic Y2FsbGNlbnRlcjp4"}, REALM),
        ({"Authorization": "Bearer not-a-token"}, REALM + ', error="invalid_token"'),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_401_challenges(
    harness: Harness, method: str, headers: dict[str, str], challenge: str
) -> None:
    """No token: realm only; a token that fails: realm and error="invalid_token" (3.1)."""
    response = await harness.client.request(method, "/acme/userinfo", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize("path", ["/acme/token", "/acme/bc-authorize"])
async def test_client_secret_post_failure_is_challenged(harness: Harness, path: str) -> None:
    """A wrong client_secret_post secret: 401, the generic description and a challenge."""
    data = {**BASE, "grant_type": CIBA, "client_id": "branch", "client_secret": OTHER_SECRET + "x"}
    response = await harness.client.post(path, data=data)
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    assert response.headers["www-authenticate"] == BASIC


async def test_client_assertion_failure_is_challenged(harness: Harness) -> None:
    """An assertion signed with the wrong secret: 401 with the challenge."""
    data = {
        **BASE,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": kiosk_assertion("http://testserver.local/acme", secret="w" * 32),
    }
    response = await harness.client.post("/acme/bc-authorize", data=data)
    assert response.status_code == 401
    assert response.json()["error_description"] == "client authentication failed"
    assert response.headers["www-authenticate"] == BASIC


async def test_unknown_and_known_clients_answer_alike(harness: Harness) -> None:
    """Unknown client, wrong secret and wrong method cannot be told apart (no enumeration)."""
    attempts = [
        {"client_id": "ghost", "client_secret": OTHER_SECRET},
        {"client_id": "branch", "client_secret": OTHER_SECRET + "x"},
        {"client_id": "callcenter", "client_secret": "callcenter-secret-0123456789"},
    ]
    answers = set()
    for attempt in attempts:
        response = await harness.client.post("/acme/token", data={"grant_type": CIBA, **attempt})
        answers.add((response.status_code, response.text, response.headers["www-authenticate"]))
    assert len(answers) == 1
