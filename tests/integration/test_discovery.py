"""Discovery, JWKS and the HTTP surface's error shape."""

from __future__ import annotations

from structlog.testing import capture_logs

from tests.integration.conftest import Harness


async def test_discovery_is_true_to_the_tenant(harness: Harness) -> None:
    """Every CIBA metadata field is present and derived from the tenant's config."""
    response = await harness.client.get("/acme/.well-known/openid-configuration")
    assert response.status_code == 200
    meta = response.json()
    issuer = "http://testserver.local/acme"
    assert meta["issuer"] == issuer
    assert meta["jwks_uri"] == f"{issuer}/jwks"
    assert meta["token_endpoint"] == f"{issuer}/token"
    assert meta["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert meta["backchannel_authentication_endpoint"] == f"{issuer}/bc-authorize"
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll", "ping", "push"]
    assert meta["backchannel_user_code_parameter_supported"] is True
    assert "urn:openid:params:grant-type:ciba" in meta["grant_types_supported"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    }
    assert "ES256" in meta["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in meta["backchannel_authentication_request_signing_alg_values_supported"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert meta["acr_values_supported"] == ["urn:example:acr:substantial", "urn:example:acr:low"]
    assert set(meta["scopes_supported"]) == {"openid", "profile", "ssn", "email"}
    assert {"sub", "name", "ssn", "email", "acr", "amr"} <= set(meta["claims_supported"])
    assert meta["subject_types_supported"] == ["public"]
    assert meta["authorization_details_types_supported"] == [
        "approval",
        "example_payment",
        "payment_initiation",
    ]


async def test_second_tenant_has_its_own_metadata(harness: Harness) -> None:
    """Tenant beta advertises its own issuer, RS256 key and no acr values."""
    meta = (await harness.client.get("/beta/.well-known/openid-configuration")).json()
    assert meta["issuer"] == "http://testserver.local/beta"
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["acr_values_supported"] == []
    assert meta["backchannel_user_code_parameter_supported"] is True


async def test_jwks_publishes_public_keys_only(harness: Harness) -> None:
    """The JWKS holds the tenant's key with kid and no private members."""
    keys = (await harness.client.get("/acme/jwks")).json()["keys"]
    assert [k["kid"] for k in keys] == ["acme-1"]
    assert "d" not in keys[0]


async def test_unknown_tenant_and_path_answer_json(harness: Harness) -> None:
    """Unknown tenants and paths answer OAuth-shaped JSON, never HTML."""
    unknown = await harness.client.get("/nope/.well-known/openid-configuration")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "invalid_request"
    missing = await harness.client.get("/acme/nothing/here/at-all")
    assert missing.status_code == 404
    assert missing.json()["error"] == "invalid_request"
    wrong_method = await harness.client.get("/acme/token")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "invalid_request"
    token = await harness.token("x", auth=("callcenter", "wrong-secret-0123456789"))
    discovery = await harness.client.get("/acme/.well-known/openid-configuration")
    jwks = await harness.client.get("/acme/jwks")
    for answer in (unknown, missing, wrong_method, token, discovery, jwks):
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_unrouted_requests_are_logged_and_counted(harness: Harness) -> None:
    """404s and 405s no route serves reach the access log and /metrics as (unrouted)."""
    with capture_logs() as logs:
        await harness.client.get("/acme/nothing/here/at-all")
        await harness.client.post("/nope/token")
        await harness.client.delete("/acme/token")
        await harness.client.get("/no/such/path/at/all")
    lines = [e for e in logs if e["event"] == "request"]
    assert [(e["endpoint"], e["status"]) for e in lines] == [
        ("(unrouted)", 404),
        ("(unrouted)", 404),
        ("(unrouted)", 405),
        ("(unrouted)", 404),
    ]
    metrics = await harness.client.get("/metrics")
    assert metrics.headers["content-type"].count("charset") == 1
    counted = [
        line
        for line in metrics.text.splitlines()
        if line.startswith("ciba_http_requests_total") and 'endpoint="unrouted"' in line
    ]
    assert len(counted) == 3, metrics.text[:2000]  # 404 in acme, 404 and 405 outside
    assert "no/such" not in metrics.text


async def test_token_endpoint_requires_form_encoding(harness: Harness) -> None:
    """A JSON body at the token endpoint is refused with invalid_request."""
    response = await harness.client.post("/acme/token", json={"grant_type": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_health_and_readiness(harness: Harness) -> None:
    """/healthz and /readyz answer JSON once the app is up."""
    assert (await harness.client.get("/healthz")).json() == {"status": "ok"}
    ready = await harness.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"] is True
