"""JWT access tokens (RFC 9068) for clients with ``access_token_format: jwt``."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ciba_gateway.config.load import ConfigError, parse_config
from ciba_gateway.connector import load_registry
from tests.integration.test_introspection import JWT_RP, RP, Rs, config_yaml

pytest_plugins = ["tests.integration.test_introspection"]


async def decode(rs: Rs, token: str, tenant: str = "acme") -> Any:
    keys = KeySet.import_key_set((await rs.http.get(f"/{tenant}/jwks")).json())
    return jwt.decode(token, keys, algorithms=["ES256"])


async def test_jwt_access_token_validates_against_the_jwks(rs: Rs) -> None:
    """Section 2: typ at+jwt, signed by the tenant key; iss, exp, aud, sub, client_id, iat, jti."""
    token = await rs.access_token(client=JWT_RP)
    decoded = await decode(rs, token)
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == "acme-1"
    claims = decoded.claims
    assert claims["iss"] == "http://testserver.local/acme"
    assert claims["aud"] == ["https://api.example"]
    assert claims["client_id"] == "jwt-rp"
    assert claims["scope"] == "openid profile"
    assert claims["exp"] - claims["iat"] == 600
    userinfo = await rs.http.get("/acme/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 200, userinfo.text
    assert claims["sub"] == userinfo.json()["sub"]
    assert userinfo.json()["name"] == "Karl Karlsson"
    assert "name" not in claims and "cnf" not in claims
    second = (await decode(rs, await rs.access_token(client=JWT_RP))).claims
    assert second["jti"] != claims["jti"]


async def test_default_audience_is_the_userinfo_endpoint(rs: Rs) -> None:
    token = await rs.access_token(tenant="beta", client=JWT_RP)
    claims = (await decode(rs, token, tenant="beta")).claims
    assert claims["aud"] == ["http://testserver.local/beta/userinfo"]


async def test_introspection_and_revocation_apply_to_jwt_access_tokens(rs: Rs) -> None:
    token = await rs.access_token(client=JWT_RP)
    assert (await rs.introspect(token)).json()["active"] is True
    revoked = await rs.revoke(token, client=JWT_RP)
    assert revoked.status_code == 200
    assert (await rs.introspect(token)).json() == {"active": False}
    userinfo = await rs.http.get("/acme/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 401


async def test_another_tenants_jwt_is_not_accepted(rs: Rs) -> None:
    token = await rs.access_token(tenant="beta", client=JWT_RP)
    userinfo = await rs.http.get("/acme/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 401
    assert (await rs.introspect(token)).json() == {"active": False}


async def test_a_forged_jwt_with_valid_claims_is_refused(rs: Rs) -> None:
    """Userinfo reads the gateway's record, not the token's claims: a re-signed copy is void."""
    token = await rs.access_token(client=JWT_RP)
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{'A' * 86}"
    userinfo = await rs.http.get("/acme/userinfo", headers={"Authorization": f"Bearer {forged}"})
    assert userinfo.status_code == 401


async def test_opaque_clients_keep_opaque_tokens(rs: Rs) -> None:
    token = await rs.access_token(client=RP)
    assert token.count(".") == 0


def test_audience_without_the_jwt_format_is_a_config_error(tmp_path: Any) -> None:
    text = config_yaml(tmp_path).replace(
        "grant_types: []", "grant_types: []\n        access_token_audience: [https://x]", 1
    )
    with pytest.raises(ConfigError, match="access_token_audience needs access_token_format"):
        parse_config(text, registry=load_registry())
