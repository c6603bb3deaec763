"""``profile: fapi-ciba``: each FAPI-CIBA / FAPI 1.0 clause refused once and passed once.

Config-time clauses go through the config loader (what check-config runs) and
one through ``check-config`` itself; request-time clauses through the real
app, with the client certificate arriving from the trusted proxy address as
in tests/integration/test_mtls.py. docs/protocol.md maps clause -> check -> test.
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.cli_check import check_config_command
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock, TestPki, issue_test_pki
from ciba_gateway.errors import ConfigError
from ciba_gateway.tokens.keys import generate_private_jwk
from tests.mtls_kit import PROXY, client_cert_header

CIBA = "urn:openid:params:grant-type:ciba"
ISSUER = "http://testserver.local/bank"
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}


@dataclass
class Keys:
    ec: dict[str, Any]
    rsa: dict[str, Any]

    def sign(self, claims: dict[str, Any], alg: str = "ES256") -> str:
        if alg.startswith("ES"):
            key: Any = ECKey.import_key(self.ec)
            kid = self.ec["kid"]
        else:
            key = RSAKey.import_key(self.rsa)
            kid = self.rsa["kid"]
        return jwt.encode({"alg": alg, "kid": kid}, claims, key, algorithms=[alg])


def fapi_yaml(tmp: Path, pki: TestPki, keys: Keys, **change: str) -> str:
    """A fapi-ciba tenant that satisfies the profile; ``change`` swaps one setting."""
    jwks = json.dumps({"keys": [public(keys.ec), public(keys.rsa)]})
    settings = {
        "key_alg": "PS256",
        "signing_algs": "[ES256, RS256, PS256, EdDSA]",
        "mtls": f"mtls: {{ca_file: {pki.ca}}}",
        "route": '{acr: "urn:example:acr:high", connector: example}',
        "auth": f"{{method: private_key_jwt, jwks: {jwks}}}",
        "bound": "true",
        "delivery": "poll",
        "client_extra": "",
        "profile": "fapi-ciba",
        "client_profile": "",
    }
    settings.update(change)
    return f"""
store: {{url: "memory://"}}
server: {{trusted_proxies: ["{PROXY}"]}}
tenants:
  - id: bank
    issuer: {ISSUER}
    profile: {settings["profile"]}
    keys: [{{kid: bank-1, alg: {settings["key_alg"]}, file: {tmp}/bank-1.jwk, generate: true}}]
    subject: {{salt: "bank-subject-salt-0123456789"}}
    signing_algs: {settings["signing_algs"]}
    lifetimes: {{poll_interval: 1}}
    {settings["mtls"]}
    connectors:
      example:
        type: example
        acr: urn:example:acr:high
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}]
    routes: [{settings["route"]}]
    clients:
      - client_id: fapi-rp
        auth: {settings["auth"]}
        tls_client_certificate_bound_access_tokens: {settings["bound"]}
        delivery_mode: {settings["delivery"]}
        scopes: [openid, profile]
        default_acr_values: [urn:example:acr:high]
        {settings["client_profile"]}
        {settings["client_extra"]}
"""


@pytest.fixture
def keys() -> Keys:
    rsa = generate_private_jwk("PS256", "rp-rsa")
    rsa.pop("alg", None)  # one RSA key signs PS256 and, for the refusals, RS256
    return Keys(ec=generate_private_jwk("ES256", "rp-ec"), rsa=rsa)


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return issue_test_pki(tmp_path)


def problems(doc: str) -> list[str]:
    try:
        parse_config(doc, registry=load_registry())
    except ConfigError as exc:
        return [p.message for p in exc.problems]
    return []


def test_a_tenant_that_satisfies_the_profile_loads(
    tmp_path: Path, pki: TestPki, keys: Keys
) -> None:
    """The passing case of every config-time clause at once."""
    assert problems(fapi_yaml(tmp_path, pki, keys)) == []


PUSH = "push\n        notification_endpoint: https://rp.test/cb"


@pytest.mark.parametrize(
    ("change", "clause"),
    [
        ({"delivery": PUSH, "bound": "false"}, "FAPI-CIBA 5.2.2-3"),
        (
            {"auth": '{method: client_secret_basic, secret: "s-0123456789abcdef"}'},
            "FAPI 1.0 Part 2 5.2.2-14",
        ),
        (
            {"auth": '{method: client_secret_jwt, secret: "s-0123456789abcdef"}'},
            "FAPI 1.0 Part 2 5.2.2-14",
        ),
        ({"bound": "false"}, "FAPI 1.0 Part 2 5.2.2-5"),
        ({"key_alg": "RS256"}, "FAPI 1.0 Part 2 8.6-1: key bank-1"),
        ({"signing_algs": "[RS256, EdDSA]"}, "FAPI 1.0 Part 2 8.6-1: signing_algs"),
        ({"client_extra": "request_signing_alg: RS256"}, "8.6-1: request_signing_alg"),
        ({"route": "{login_hint: ssn, connector: example}"}, "FAPI-CIBA 5.2.2-7/-8"),
        ({"mtls": "", "bound": "false"}, "FAPI 1.0 Part 2 5.2.2-6"),
    ],
)
def test_config_refuses_each_clause(
    tmp_path: Path, pki: TestPki, keys: Keys, change: dict[str, str], clause: str
) -> None:
    """check-config names the clause a fapi-ciba tenant or client fails."""
    found = problems(fapi_yaml(tmp_path, pki, keys, **change))
    assert any(clause in p for p in found), found


def test_small_client_keys_are_refused(tmp_path: Path, pki: TestPki) -> None:
    """FAPI 1.0 Part 1 5.2.2-5: an RSA client key under 2048 bits."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    n = numbers.public_numbers().n.to_bytes(128, "big")
    small = {"kty": "RSA", "kid": "small", "e": "AQAB", "n": base64.urlsafe_b64encode(n).decode()}
    keys = Keys(ec=generate_private_jwk("ES256", "e"), rsa=small)
    found = problems(fapi_yaml(tmp_path, pki, keys))
    assert any("FAPI 1.0 Part 1 5.2.2-5: RSA key of 1024 bits" in p for p in found), found


def test_client_profile_overrides_the_tenant(tmp_path: Path, pki: TestPki, keys: Keys) -> None:
    """A fapi-ciba client in a default tenant is checked; a default client in a fapi tenant not."""
    secret = '{method: client_secret_basic, secret: "s-0123456789abcdef"}'
    opted_in = fapi_yaml(
        tmp_path, pki, keys, profile="default", auth=secret, client_profile="profile: fapi-ciba"
    )
    assert any("5.2.2-14" in p for p in problems(opted_in))
    opted_out = fapi_yaml(
        tmp_path, pki, keys, auth=secret, bound="false", client_profile="profile: default"
    )
    assert problems(opted_out) == []


def test_check_config_command_refuses_a_fapi_tenant(
    tmp_path: Path, pki: TestPki, keys: Keys
) -> None:
    """The check-config command exits 1 and prints the clause with its path."""
    path = tmp_path / "gateway.yaml"
    path.write_text(fapi_yaml(tmp_path, pki, keys, bound="false"))
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(str(path), out=out, err=err) == 1
    assert "tenants[0]" in err.getvalue()
    assert "FAPI 1.0 Part 2 5.2.2-5" in err.getvalue()
    path.write_text(fapi_yaml(tmp_path, pki, keys))
    assert check_config_command(str(path), out=out, err=err) == 0


@dataclass
class Bank:
    app: Litestar
    http: httpx.AsyncClient
    keys: Keys
    cert: str
    clock: FakeClock

    def assertion(self, alg: str = "ES256") -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": "fapi-rp",
            "sub": "fapi-rp",
            "aud": ISSUER,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        return {"client_assertion_type": ASSERTION, "client_assertion": self.keys.sign(claims, alg)}

    def request_object(self, alg: str = "ES256", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "fapi-rp",
            "aud": ISSUER,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "scope": "openid profile",
            "login_hint": "ssn:199001011239",
            "binding_message": "Pay 42",
        }
        claims.update(overrides)
        return self.keys.sign({k: v for k, v in claims.items() if v is not None}, alg)

    async def authorize(self, data: dict[str, str], alg: str = "ES256") -> httpx.Response:
        return await self.http.post(
            "/bank/bc-authorize",
            data={**self.assertion(alg), **data},
            headers={"Client-Cert": self.cert},
        )

    async def token(self, auth_req_id: str, cert: bool = True) -> httpx.Response:
        await self.app.state.driver.run_once()
        await self.app.state.driver.drain()
        self.clock.advance(2)
        return await self.http.post(
            "/bank/token",
            data={**self.assertion(), "grant_type": CIBA, "auth_req_id": auth_req_id},
            headers={"Client-Cert": self.cert} if cert else {},
        )


@pytest.fixture
async def bank(tmp_path: Path, pki: TestPki, keys: Keys, clock: FakeClock) -> AsyncIterator[Bank]:
    config = parse_config(fapi_yaml(tmp_path, pki, keys), registry=load_registry())
    app = create_app(config, clock=clock, run_driver=False)
    transport = httpx.ASGITransport(app=app, client=(PROXY, 40000))
    async with (
        AsyncTestClient(app=app, base_url="http://testserver.local"),
        httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http,
    ):
        yield Bank(app, http, keys, client_cert_header(pki.client), clock)


PLAIN = {"scope": "openid profile", "login_hint": "ssn:199001011239"}


async def test_binding_message_is_required(bank: Bank) -> None:
    """FAPI-CIBA 5.2.2-2: without a binding_message (or authorization_details): refused."""
    refused = await bank.authorize(PLAIN)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert "5.2.2-2" in refused.json()["error_description"]
    passed = await bank.authorize({**PLAIN, "binding_message": "Pay 42"})
    assert passed.status_code == 200, passed.text


async def test_signed_request_nbf_must_be_recent(bank: Bank) -> None:
    """FAPI 1.0 Part 2 5.2.2-17: nbf more than 60 minutes old is refused.

    Implied by the checks every tenant runs (exp in the future, exp - nbf <= 60 min).
    """
    old = int(time.time()) - 3700
    for exp in (old + 3500, old + 4000):  # expired, or living too long
        stale = bank.request_object(nbf=old, iat=old, exp=exp)
        refused = await bank.authorize({"request": stale})
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_request"
    passed = await bank.authorize({"request": bank.request_object()})
    assert passed.status_code == 200, passed.text


async def test_signed_request_lifetime_is_at_most_60_minutes(bank: Bank) -> None:
    """FAPI-CIBA 5.2.2-9 / Part 2 5.2.2-13: exp - nbf over 60 minutes is refused."""
    now = int(time.time())
    refused = await bank.authorize({"request": bank.request_object(exp=now + 3700)})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    passed = await bank.authorize({"request": bank.request_object(exp=now + 3500)})
    assert passed.status_code == 200, passed.text


async def test_request_objects_only_ps256_or_es256(bank: Bank) -> None:
    """FAPI 1.0 Part 2 8.6-1: an RS256 request object is refused though the tenant allows RS256."""
    refused = await bank.authorize({"request": bank.request_object("RS256")})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    passed = await bank.authorize({"request": bank.request_object("PS256")})
    assert passed.status_code == 200, passed.text


async def test_client_assertions_only_ps256_or_es256(bank: Bank) -> None:
    """FAPI 1.0 Part 2 8.6-1: an RS256 client assertion fails client authentication."""
    data = {**PLAIN, "binding_message": "Pay 42"}
    refused = await bank.authorize(data, alg="RS256")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    passed = await bank.authorize(data, alg="PS256")
    assert passed.status_code == 200, passed.text


async def test_tokens_are_sender_constrained(bank: Bank) -> None:
    """FAPI 1.0 Part 2 5.2.2-5: no certificate, no token; with one, the token is bound to it."""
    started = await bank.authorize({**PLAIN, "binding_message": "Pay 42"})
    auth_req_id = started.json()["auth_req_id"]
    refused = await bank.token(auth_req_id, cert=False)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    issued = await bank.token(auth_req_id)
    assert issued.status_code == 200, issued.text
    introspected = await bank.http.post(
        "/bank/introspect",
        data={**bank.assertion(), "token": issued.json()["access_token"]},
        headers={"Client-Cert": bank.cert},
    )
    assert "x5t#S256" in introspected.json()["cnf"]


async def test_discovery_offers_only_what_the_profile_allows(bank: Bank) -> None:
    """FAPI-CIBA 5.2.2-3/-4/-5, Part 2 5.2.2-14 and 8.6-1 in the metadata."""
    meta = (await bank.http.get("/bank/.well-known/openid-configuration")).json()
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    assert meta["request_object_signing_alg_values_supported"] == ["ES256", "PS256"]
    assert meta["id_token_signing_alg_values_supported"] == ["PS256"]
    assert meta["tls_client_certificate_bound_access_tokens"] is True
