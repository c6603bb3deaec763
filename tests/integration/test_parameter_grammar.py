"""Parameter grammars: space-separated values, b64token, request_uri, request objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from tests.integration.conftest import Harness
from tests.integration.test_backchannel_errors import (
    BASE,
    request_claims,
    signed_request,
    signer_post,
)
from tests.integration.test_fuzz import POST_SECRET, fuzz_config


@pytest.mark.parametrize("scope", ["openid\tprofile", "openid\u00a0profile", "openid\nprofile"])
async def test_scope_splits_on_space_only(harness: Harness, scope: str) -> None:
    """Tabs, newlines and no-break spaces do not separate scopes (RFC 6749 3.3)."""
    response = await harness.bc_authorize({**BASE, "scope": scope})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_scope_tolerates_repeated_spaces(harness: Harness) -> None:
    """Two U+0020 between scopes still separate them."""
    response = await harness.bc_authorize({**BASE, "scope": "openid  profile"})
    assert response.status_code == 200, response.text


async def test_request_uri_is_not_supported(harness: Harness) -> None:
    """request_uri is refused with the OIDC code, and discovery says so."""
    response = await harness.bc_authorize({**BASE, "request_uri": "https://rp.example/r/1"})
    assert response.status_code == 400
    assert response.json()["error"] == "request_uri_not_supported"
    metadata = (await harness.client.get("/acme/.well-known/openid-configuration")).json()
    assert metadata["request_uri_parameter_supported"] is False


@pytest.mark.parametrize("inner", ["request", "request_uri"])
async def test_request_object_must_not_nest_requests(harness: Harness, inner: str) -> None:
    """A signed request object that carries request or request_uri is invalid_request."""
    claims = request_claims(**{inner: "x.y.z" if inner == "request" else "https://rp.example/r"})
    response = await signer_post(harness, signed_request(harness, claims))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert inner in response.json()["error_description"]


@pytest.fixture
async def ping_client(tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    config = parse_config(fuzz_config(tmp_path), registry=load_registry())
    app = create_app(config, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


async def ping_start(client: AsyncTestClient[Litestar], token: str) -> Any:
    data = {
        "scope": "openid",
        "login_hint": "ssn:199001011239",
        "client_id": "post",
        "client_secret": POST_SECRET,
        "client_notification_token": token,
    }
    return await client.post("/acme/bc-authorize", data=data)


@pytest.mark.parametrize("token", ["ab=cd", "=abcd", "ab cd", "ab,cd", "ab\u00e9"])
async def test_notification_token_outside_b64token_is_refused(
    ping_client: AsyncTestClient[Litestar], token: str
) -> None:
    """client_notification_token follows RFC 6750 2.1 b64token: '=' only as trailing padding."""
    response = await ping_start(ping_client, token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("token", ["abcd", "a-b.c_d~e+f/g", "abcd==", "x" * 1024])
async def test_notification_token_in_b64token_is_accepted(
    ping_client: AsyncTestClient[Litestar], token: str
) -> None:
    """Well-formed b64tokens (padding at the end included) are accepted."""
    response = await ping_start(ping_client, token)
    assert response.status_code == 200, response.text
