"""Introspection (RFC 7662), revocation (RFC 7009) and resource-server clients, in the real app."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock

CIBA = "urn:openid:params:grant-type:ciba"
RP = ("rp", "rp-secret-0123456789abcdef")
OTHER_RP = ("other-rp", "other-secret-0123456789abcd")
RS = ("rs", "rs-secret-0123456789abcdefgh")
JWT_RP = ("jwt-rp", "jwt-rp-secret-0123456789abc")


def config_yaml(tmp: Path) -> str:
    def tenant(name: str) -> str:
        return f"""
  - id: {name}
    issuer: http://testserver.local/{name}
    keys: [{{kid: {name}-1, alg: ES256, file: {tmp}/{name}-1.jwk, generate: true}}]
    subject: {{salt: "{name}-subject-salt-0123456789"}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{RP[1]}"}}
        scopes: [openid, profile]
      - client_id: other-rp
        auth: {{method: client_secret_basic, secret: "{OTHER_RP[1]}"}}
      - client_id: rs
        auth: {{method: client_secret_basic, secret: "{RS[1]}"}}
        grant_types: []
      - client_id: jwt-rp
        auth: {{method: client_secret_basic, secret: "{JWT_RP[1]}"}}
        scopes: [openid, profile]
        access_token_format: jwt{audience if name == "acme" else ""}"""

    audience = "\n        access_token_audience: [https://api.example]"

    return f'store: {{url: "memory://"}}\ntenants:{tenant("acme")}{tenant("beta")}\n'


def basic(credentials: tuple[str, str]) -> dict[str, str]:
    raw = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@dataclass
class Rs:
    app: Litestar
    http: AsyncTestClient[Litestar]
    clock: FakeClock

    async def access_token(self, tenant: str = "acme", client: tuple[str, str] = RP) -> str:
        started = await self.http.post(
            f"/{tenant}/bc-authorize",
            data={"scope": "openid profile", "login_hint": "ssn:199001011239"},
            headers=basic(client),
        )
        assert started.status_code == 200, started.text
        await self.app.state.driver.run_once()
        await self.app.state.driver.drain()
        self.clock.advance(5)
        tokens = await self.http.post(
            f"/{tenant}/token",
            data={"grant_type": CIBA, "auth_req_id": started.json()["auth_req_id"]},
            headers=basic(client),
        )
        assert tokens.status_code == 200, tokens.text
        return tokens.json()["access_token"]

    async def introspect(
        self, token: str, *, tenant: str = "acme", client: tuple[str, str] = RS
    ) -> Any:
        return await self.http.post(
            f"/{tenant}/introspect", data={"token": token}, headers=basic(client)
        )

    async def revoke(self, token: str, client: tuple[str, str] = RP) -> Any:
        return await self.http.post(
            "/acme/revoke",
            data={"token": token, "token_type_hint": "access_token"},
            headers=basic(client),
        )


@pytest.fixture
async def rs(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rs]:
    config = parse_config(config_yaml(tmp_path), registry=load_registry())
    app = create_app(config, clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as http:
        yield Rs(app=app, http=http, clock=clock)


async def test_resource_server_introspects_an_active_token(rs: Rs) -> None:
    """RFC 7662 2.2: active, scope, client_id, token_type, sub, iss, exp, iat."""
    token = await rs.access_token()
    response = await rs.introspect(token)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["scope"] == "openid profile"
    assert body["client_id"] == "rp"
    assert body["token_type"] == "Bearer"
    assert body["iss"] == "http://testserver.local/acme"
    assert body["exp"] - body["iat"] == 600
    userinfo = await rs.http.get("/acme/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert body["sub"] == userinfo.json()["sub"]
    assert "cnf" not in body


async def test_unknown_expired_and_foreign_tokens_are_inactive(rs: Rs) -> None:
    """Anything not live in this tenant is just {"active": false}."""
    token = await rs.access_token()
    assert (await rs.introspect("not-a-token")).json() == {"active": False}
    assert (await rs.introspect(token, tenant="beta")).json() == {"active": False}
    rs.clock.advance(601)
    assert (await rs.introspect(token)).json() == {"active": False}


async def test_introspection_needs_client_authentication_and_a_token(rs: Rs) -> None:
    """No credentials: 401 invalid_client; no token parameter: 400 invalid_request."""
    anonymous = await rs.http.post("/acme/introspect", data={"token": "x"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    wrong = await rs.introspect("x", client=("rs", "not-the-secret-0123456789"))
    assert wrong.status_code == 401
    missing = await rs.http.post("/acme/introspect", data={}, headers=basic(RS))
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_resource_server_cannot_use_the_ciba_grant(rs: Rs) -> None:
    """CIBA Core 13 / RFC 6749 5.2: unauthorized_client at bc-authorize and at the token grant."""
    started = await rs.http.post(
        "/acme/bc-authorize",
        data={"scope": "openid", "login_hint": "ssn:199001011239"},
        headers=basic(RS),
    )
    assert started.status_code == 400
    assert started.json()["error"] == "unauthorized_client"
    grant = await rs.http.post(
        "/acme/token", data={"grant_type": CIBA, "auth_req_id": "x"}, headers=basic(RS)
    )
    assert grant.status_code == 400
    assert grant.json()["error"] == "unauthorized_client"


async def test_revocation_by_the_owner_ends_the_token(rs: Rs) -> None:
    """RFC 7009: 200, and the token is inactive and refused at userinfo afterwards."""
    token = await rs.access_token()
    response = await rs.revoke(token)
    assert response.status_code == 200
    assert response.json() == {}
    assert (await rs.introspect(token)).json() == {"active": False}
    userinfo = await rs.http.get("/acme/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 401
    again = await rs.revoke(token)
    assert again.status_code == 200  # an unknown token is not an error (RFC 7009 2.2)


async def test_revocation_by_another_client_is_refused(rs: Rs) -> None:
    """RFC 7009 2.1: the token must have been issued to the revoking client."""
    token = await rs.access_token()
    response = await rs.revoke(token, client=OTHER_RP)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert (await rs.introspect(token)).json()["active"] is True


async def test_discovery_lists_introspection_and_revocation(rs: Rs) -> None:
    """Both endpoints and their auth methods are in the tenant's metadata."""
    meta = (await rs.http.get("/acme/.well-known/openid-configuration")).json()
    assert meta["introspection_endpoint"] == "http://testserver.local/acme/introspect"
    assert meta["revocation_endpoint"] == "http://testserver.local/acme/revoke"
    assert "client_secret_basic" in meta["introspection_endpoint_auth_methods_supported"]
    assert "client_secret_basic" in meta["revocation_endpoint_auth_methods_supported"]
    assert meta["grant_types_supported"] == [CIBA]
