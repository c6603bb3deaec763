"""The metrics an operator watches, and `ciba-gateway keys generate`."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ciba_gateway.cli import main
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.tokens.keys import load_tenant_keys
from tests.integration.conftest import Harness


async def test_pending_gauge_latency_by_status_and_upstream_errors(harness: Harness) -> None:
    """Pending flows are counted at scrape time; refusals show as upstream errors, no hints."""
    pending = await harness.bc_authorize(
        {"scope": "openid", "login_hint": "email:pending@example.com"}
    )
    assert pending.status_code == 200
    unknown = await harness.bc_authorize({"scope": "openid", "login_hint": "ssn:200001011238"})
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["error"] == "unknown_user_id"
    text = (await harness.client.get("/metrics")).text
    assert re.search(r"^ciba_pending_flows 1\.0$", text, re.M)
    assert re.search(
        r'^ciba_upstream_errors_total\{connector="example",error="UserNotFound",'
        r'operation="start"\} 1\.0$',
        text,
        re.M,
    )
    for status in ("200", "400"):
        assert re.search(
            r'^ciba_http_request_duration_seconds_count\{endpoint="bc-authorize",'
            rf'status="{status}",tenant="acme"\}} 1\.0$',
            text,
            re.M,
        )
    assert "pending@example.com" not in text and "200001011238" not in text
    assert pending.json()["auth_req_id"] not in text


async def test_unknown_paths_fold_into_bounded_endpoint_labels(harness: Harness) -> None:
    """Arbitrary URL paths never become label values."""
    for path in ("/no-such-thing-7f3a", "/acme/made-up-9c1e", "/acme/example/link/secret-42"):
        await harness.client.get(path)
    text = (await harness.client.get("/metrics")).text
    endpoints = set(re.findall(r'ciba_http_requests_total\{endpoint="([^"]*)"', text))
    assert endpoints <= {"other", "connector", "unrouted", "/metrics"}
    for fragment in ("7f3a", "9c1e", "secret-42"):
        assert fragment not in text


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_keys_generate_prints_a_usable_private_jwk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str
) -> None:
    """The printed JWK, saved as a key file, loads as a tenant key and signs verifiable tokens."""
    assert main(["keys", "generate", "--alg", alg, "--kid", "ops-2030-1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["kid"], printed["alg"]) == ("ops-2030-1", alg)
    assert "d" in printed
    key_file = tmp_path / "ops-2030-1.jwk"
    key_file.write_text(json.dumps(printed))
    config = parse_config(
        f"""
tenants:
  - id: ops
    issuer: https://idp.example/ops
    keys: [{{kid: ops-2030-1, alg: {alg}, file: {key_file}}}]
    subject: {{salt: "ops-subject-salt-0123456789"}}
""",
        registry=load_registry(),
    )
    keys = load_tenant_keys(config.tenants[0])
    published = keys.jwks()["keys"]
    assert [k["kid"] for k in published] == ["ops-2030-1"]
    assert "d" not in published[0]
    token = keys.sign({"iss": "https://idp.example/ops", "sub": "x"})
    decoded = jwt.decode(token, KeySet.import_key_set(keys.jwks()), algorithms=[alg])
    assert decoded.header["kid"] == "ops-2030-1"


def test_keys_generate_out_makes_the_directory_and_a_0600_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out keys/x.jwk`` works without keys/, writes mode 0600 and never overwrites."""
    out = tmp_path / "keys" / "ops-2031-1.jwk"
    assert main(["keys", "generate", "--kid", "ops-2031-1", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    first = out.read_text()
    assert json.loads(first)["kid"] == "ops-2031-1"
    assert capsys.readouterr().out == ""
    assert main(["keys", "generate", "--kid", "ops-2031-1", "--out", str(out)]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert out.read_text() == first
