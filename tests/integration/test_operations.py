"""Operations: metrics, readiness detail, config reload and key rotation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import load_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock
from tests.integration.conftest import SECRET, Harness, config_yaml


async def test_metrics_count_requests_and_flows_with_bounded_labels(harness: Harness) -> None:
    """/metrics shows request counts, flows and upstream timings, never request ids or hints."""
    started = await harness.bc_authorize({"scope": "openid", "login_hint": "ssn:199001011239"})
    auth_req_id = started.json()["auth_req_id"]
    await harness.drive(rounds=3)
    await harness.token(auth_req_id)
    text = (await harness.client.get("/metrics")).text
    assert (
        'ciba_http_requests_total{endpoint="bc-authorize",status="200",tenant="acme"} 1.0' in text
    )
    assert 'ciba_flows_started_total{connector="example",tenant="acme"} 1.0' in text
    assert (
        'ciba_flows_finished_total{connector="example",outcome="approved",tenant="acme"} 1.0'
        in text
    )
    assert re.search(
        r'ciba_upstream_call_duration_seconds_count\{connector="example",operation="poll"\} [1-9]',
        text,
    )
    assert "ciba_pending_flows 0.0" in text
    assert auth_req_id not in text
    assert "199001011239" not in text


async def test_readyz_reports_keys_and_connectors(harness: Harness) -> None:
    """/readyz lists each tenant's keys and constructed connectors."""
    body = (await harness.client.get("/readyz")).json()
    assert body["status"] == "ok"
    assert body["checks"]["tenants"]["acme"] == {"keys": 1, "connectors": ["example", "other"]}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_reload_applies_new_clients_and_refuses_invalid(
    tmp_path: Path, clock: FakeClock, client_jwk: dict[str, Any]
) -> None:
    """A valid config adds a client and keeps pending requests; an invalid one is refused."""
    text = config_yaml(tmp_path, client_jwk)
    path = write(tmp_path / "gw.yaml", text)
    app = create_app(
        load_config(path, registry=load_registry()), clock=clock, run_driver=False, config_path=path
    )
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        started = await client.post(
            "/acme/bc-authorize",
            auth=("callcenter", SECRET),
            data={"scope": "openid", "login_hint": "ssn:199001011239"},
        )
        auth_req_id = started.json()["auth_req_id"]
        newcomer = ("newcomer", "newcomer-secret-0123456789")
        refused = await client.post(
            "/acme/bc-authorize",
            auth=newcomer,
            data={"scope": "openid", "login_hint": "ssn:199001011239"},
        )
        assert refused.status_code == 401

        write(path, text + "      - {client_id: broken, auth: {method: magic}}\n")
        assert await app.state.runtime.reload() is False
        assert (await client.get("/acme/.well-known/openid-configuration")).status_code == 200

        added = text.replace(
            "      - client_id: branch\n",
            "      - client_id: newcomer\n"
            '        auth: {method: client_secret_basic, secret: "newcomer-secret-0123456789"}\n'
            "      - client_id: branch\n",
        )
        write(path, added)
        assert await app.state.runtime.reload() is True
        accepted = await client.post(
            "/acme/bc-authorize",
            auth=newcomer,
            data={"scope": "openid", "login_hint": "ssn:199001011239"},
        )
        assert accepted.status_code == 200
        await app.state.driver.run_once()
        await app.state.driver.drain()
        await app.state.driver.run_once()
        await app.state.driver.drain()
        token = await client.post(
            "/acme/token",
            auth=("callcenter", SECRET),
            data={"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id},
        )
        assert token.status_code == 200, token.text


async def test_reload_with_a_new_secret_refuses_the_old_one(
    tmp_path: Path, clock: FakeClock, client_jwk: dict[str, Any]
) -> None:
    """Credentials that authenticated before a reload do not outlive the secret they used."""
    text = config_yaml(tmp_path, client_jwk)
    path = write(tmp_path / "gw.yaml", text)
    app = create_app(
        load_config(path, registry=load_registry()), clock=clock, run_driver=False, config_path=path
    )
    form = {"scope": "openid", "login_hint": "ssn:199001011239"}
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        for _ in range(2):  # the second one is answered from what the first verified
            ok = await client.post("/acme/bc-authorize", auth=("callcenter", SECRET), data=form)
            assert ok.status_code == 200, ok.text
        assert f'secret: "{SECRET}"' in text
        write(path, text.replace(f'secret: "{SECRET}"', 'secret: "rotated-secret-0123456789"'))
        assert await app.state.runtime.reload() is True
        old = await client.post("/acme/bc-authorize", auth=("callcenter", SECRET), data=form)
        assert old.status_code == 401
        assert old.json()["error"] == "invalid_client"
        new = await client.post(
            "/acme/bc-authorize", auth=("callcenter", "rotated-secret-0123456789"), data=form
        )
        assert new.status_code == 200, new.text


async def test_key_rotation_keeps_old_tokens_verifiable(
    tmp_path: Path, clock: FakeClock, client_jwk: dict[str, Any]
) -> None:
    """After promoting a next key, tokens signed before still verify against the JWKS."""
    base = config_yaml(tmp_path, client_jwk)
    two_keys = base.replace(
        f"keys: [{{kid: acme-1, alg: ES256, file: {tmp_path}/acme-1.jwk, generate: true}}]",
        f"keys: [{{kid: acme-1, alg: ES256, file: {tmp_path}/acme-1.jwk, generate: true}},"
        f" {{kid: acme-2, alg: ES256, file: {tmp_path}/acme-2.jwk, generate: true, state: next}}]",
    )
    assert two_keys != base
    path = write(tmp_path / "gw.yaml", two_keys)
    app = create_app(
        load_config(path, registry=load_registry()), clock=clock, run_driver=False, config_path=path
    )
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert [k["kid"] for k in (await client.get("/acme/jwks")).json()["keys"]] == [
            "acme-1",
            "acme-2",
        ]
        old = await issue(app, client)
        rotated = two_keys.replace("acme-1.jwk, generate: true}", "acme-1.jwk, state: retired}")
        rotated = rotated.replace("generate: true, state: next}", "generate: true, state: current}")
        write(path, rotated)
        assert await app.state.runtime.reload() is True
        jwks = (await client.get("/acme/jwks")).json()
        assert {k["kid"] for k in jwks["keys"]} == {"acme-1", "acme-2"}
        keys = KeySet.import_key_set(jwks)
        assert jwt.decode(old, keys, algorithms=["ES256"]).header["kid"] == "acme-1"
        new = await issue(app, client)
        assert jwt.decode(new, keys, algorithms=["ES256"]).header["kid"] == "acme-2"


async def issue(app: Any, client: Any) -> str:
    started = await client.post(
        "/acme/bc-authorize",
        auth=("callcenter", SECRET),
        data={"scope": "openid", "login_hint": "ssn:199001011239"},
    )
    for _ in range(2):
        await app.state.driver.run_once()
        await app.state.driver.drain()
    token = await client.post(
        "/acme/token",
        auth=("callcenter", SECRET),
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": started.json()["auth_req_id"],
        },
    )
    assert token.status_code == 200, token.text
    return token.json()["id_token"]
