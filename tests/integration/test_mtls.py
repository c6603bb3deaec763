"""Mutual-TLS client authentication and certificate-bound tokens (RFC 8705) in the real app.

The certificate arrives as the RFC 9440 ``Client-Cert`` header; requests come
from the trusted proxy address 127.0.0.2 (httpx's ASGI transport sets the peer)
unless a test says otherwise. tests/e2e/test_mtls_nginx.py runs the same rules
through a real nginx terminating TLS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import (
    FakeClock,
    TestPki,
    issue_self_signed_certificate,
    issue_test_pki,
)
from ciba_gateway.errors import ConfigError
from ciba_gateway.protocol.certificates import ClientCertificate
from tests.mtls_kit import PROXY, bank_tenant, certificate, client_cert_header

CIBA = "urn:openid:params:grant-type:ciba"


def self_signed_jwk(bundle: str) -> dict[str, Any]:
    key = serialization.load_pem_private_key(Path(bundle).read_bytes(), None)
    return ECKey.import_key(key).as_dict(private=False)  # type: ignore[arg-type]


def mtls_yaml(tmp: Path, pki: TestPki, self_signed: str, *, issuer: str) -> str:
    selfie_keys = json.dumps({"keys": [self_signed_jwk(self_signed)]})
    clients = f"""\
      - client_id: selfie
        auth: {{method: self_signed_tls_client_auth, jwks: {selfie_keys}}}
        tls_client_certificate_bound_access_tokens: true
        access_token_format: jwt
        scopes: [openid, profile]
      - client_id: plain
        auth: {{method: client_secret_post, secret: "plain-secret-0123456789"}}
        scopes: [openid, profile]
      - client_id: bound
        auth: {{method: client_secret_post, secret: "bound-secret-0123456789"}}
        tls_client_certificate_bound_access_tokens: true
        grant_types: [urn:openid:params:grant-type:ciba, refresh_token]
        scopes: [openid, profile]
"""
    mtls = ', endpoint_base: "https://mtls.bank.test/bank"'
    tenant = bank_tenant(tmp, pki, issuer, mtls=mtls, clients=clients)
    return f"""
store: {{url: "memory://"}}
server: {{trusted_proxies: ["{PROXY}"]}}
tenants:{tenant}"""


@dataclass
class Mtls:
    app: Litestar
    pki: TestPki
    other: TestPki
    self_signed: str
    via: Callable[[str], httpx.AsyncClient]

    @property
    def right(self) -> str:
        return client_cert_header(self.pki.client)

    @property
    def wrong(self) -> str:
        return client_cert_header(self.other.client)

    async def drive(self) -> None:
        driver = self.app.state.driver
        await driver.run_once()
        await driver.drain()

    async def flow(
        self, client_id: str, cert: str, peer: str = PROXY, secret: dict[str, str] | None = None
    ) -> httpx.Response:
        """bc-authorize, approve, redeem: the token response."""
        async with self.via(peer) as http:
            form = {"client_id": client_id, "scope": "openid profile", **(secret or {})}
            started = await http.post(
                "/bank/bc-authorize",
                data={**form, "login_hint": "ssn:199001011239"},
                headers={"Client-Cert": cert},
            )
            assert started.status_code == 200, started.text
            await self.drive()
            clock: FakeClock = self.app.state.gateway.clock
            clock.advance(5)
            return await http.post(
                "/bank/token",
                data={
                    **form,
                    "grant_type": CIBA,
                    "auth_req_id": started.json()["auth_req_id"],
                },
                headers={"Client-Cert": cert},
            )


@pytest.fixture
async def mtls(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Mtls]:
    pki = issue_test_pki(tmp_path)
    (tmp_path / "other").mkdir()
    other = issue_test_pki(tmp_path / "other")  # same subject names, another CA
    self_signed = issue_self_signed_certificate(tmp_path)
    config = parse_config(
        mtls_yaml(tmp_path, pki, self_signed, issuer="http://testserver.local"),
        registry=load_registry(),
    )
    app = create_app(config, clock=clock, run_driver=False)

    def via(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver.local")

    async with AsyncTestClient(app=app, base_url="http://testserver.local"):  # lifespan
        yield Mtls(app=app, pki=pki, other=other, self_signed=self_signed, via=via)


async def test_discovery_advertises_mtls(mtls: Mtls) -> None:
    """RFC 8705 2.1, 3, 5: the auth methods, bound tokens and the mTLS endpoint aliases."""
    async with mtls.via(PROXY) as http:
        meta = (await http.get("/bank/.well-known/openid-configuration")).json()
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    aliases = meta["mtls_endpoint_aliases"]
    assert aliases["token_endpoint"] == "https://mtls.bank.test/bank/token"
    assert aliases["introspection_endpoint"] == "https://mtls.bank.test/bank/introspect"
    assert (
        meta["mtls_endpoint_aliases"]["backchannel_authentication_endpoint"]
        == "https://mtls.bank.test/bank/bc-authorize"
    )


async def test_tls_client_auth_issues_a_bound_token(mtls: Mtls) -> None:
    """The CA-issued certificate with the registered DN authenticates; cnf binds the token."""
    response = await mtls.flow("bank-rp", mtls.right)
    assert response.status_code == 200, response.text
    access_token = response.json()["access_token"]
    assert response.json()["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {access_token}"}
    async with mtls.via(PROXY) as http:
        ok = await http.get("/bank/userinfo", headers={**bearer, "Client-Cert": mtls.right})
        wrong = await http.get("/bank/userinfo", headers={**bearer, "Client-Cert": mtls.wrong})
        none = await http.get("/bank/userinfo", headers=bearer)
    assert ok.status_code == 200, ok.text
    assert ok.json()["name"] == "Karl Karlsson"
    for refused in (wrong, none):
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
    async with mtls.via(PROXY) as http:
        introspected = await http.post(
            "/bank/introspect",
            data={
                "client_id": "plain",
                "client_secret": "plain-secret-0123456789",
                "token": access_token,
            },
        )
    # RFC 8705 3.2: the resource server gets the binding to check its own TLS peer against.
    thumbprint = ClientCertificate(certificate(mtls.pki.client).public_bytes(Encoding.DER))
    assert introspected.json()["cnf"] == {"x5t#S256": thumbprint.thumbprint}


async def test_refresh_tokens_are_bound_to_the_certificate(mtls: Mtls) -> None:
    """A bound client's refresh token works only with its certificate; another burns the grant."""
    secret = {"client_id": "bound", "client_secret": "bound-secret-0123456789"}
    first = (await mtls.flow("bound", mtls.right, secret=secret)).json()
    refresh = {**secret, "grant_type": "refresh_token"}
    async with mtls.via(PROXY) as http:
        ok = await http.post(
            "/bank/token",
            data={**refresh, "refresh_token": first["refresh_token"]},
            headers={"Client-Cert": mtls.right},
        )
        assert ok.status_code == 200, ok.text
        stolen = await http.post(
            "/bank/token",
            data={**refresh, "refresh_token": ok.json()["refresh_token"]},
            headers={"Client-Cert": mtls.wrong},
        )
        assert stolen.status_code == 400
        assert stolen.json()["error"] == "invalid_grant"
        after = await http.get(
            "/bank/userinfo",
            headers={
                "Authorization": f"Bearer {ok.json()['access_token']}",
                "Client-Cert": mtls.right,
            },
        )
    assert after.status_code == 401  # the family, and its access tokens, are revoked


async def test_tls_client_auth_refuses_a_certificate_of_another_ca(mtls: Mtls) -> None:
    """Same subject DN, but issued by another CA: invalid_client."""
    async with mtls.via(PROXY) as http:
        response = await http.post(
            "/bank/bc-authorize",
            data={"client_id": "bank-rp", "scope": "openid", "login_hint": "ssn:199001011239"},
            headers={"Client-Cert": mtls.wrong},
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_tls_client_auth_without_a_certificate_is_invalid_client(mtls: Mtls) -> None:
    """client_id alone is no authentication."""
    async with mtls.via(PROXY) as http:
        response = await http.post(
            "/bank/token", data={"client_id": "bank-rp", "grant_type": CIBA, "auth_req_id": "x"}
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_client_cert_header_from_an_untrusted_peer_is_refused(mtls: Mtls) -> None:
    """The right certificate, sent as a header by a peer that is not a trusted proxy."""
    async with mtls.via("127.0.0.1") as http:
        response = await http.post(
            "/bank/bc-authorize",
            data={"client_id": "bank-rp", "scope": "openid", "login_hint": "ssn:199001011239"},
            headers={"Client-Cert": mtls.right},
        )
        userinfo = await http.get(
            "/bank/userinfo", headers={"Authorization": "Bearer x", "Client-Cert": mtls.right}
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert userinfo.status_code == 400
    assert userinfo.json()["error"] == "invalid_request"


async def test_self_signed_tls_client_auth(mtls: Mtls) -> None:
    """RFC 8705 2.2: the self-signed certificate whose key is in the client's JWKS."""
    own = client_cert_header(mtls.self_signed)
    response = await mtls.flow("selfie", own)
    assert response.status_code == 200, response.text
    # Its access token is an RFC 9068 JWT carrying the binding (RFC 8705 3.1).
    async with mtls.via(PROXY) as http:
        keys = KeySet.import_key_set((await http.get("/bank/jwks")).json())
    claims = jwt.decode(response.json()["access_token"], keys, algorithms=["PS256"]).claims
    thumbprint = ClientCertificate(certificate(mtls.self_signed).public_bytes(Encoding.DER))
    assert claims["cnf"] == {"x5t#S256": thumbprint.thumbprint}
    async with mtls.via(PROXY) as http:
        refused = await http.post(
            "/bank/bc-authorize",
            data={"client_id": "selfie", "scope": "openid", "login_hint": "ssn:199001011239"},
            headers={"Client-Cert": mtls.right},  # a CA-issued cert, but not the JWKS key
        )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


async def test_secret_client_token_stays_unbound(mtls: Mtls) -> None:
    """A client without bound tokens gets a plain bearer token usable without a certificate."""
    async with mtls.via(PROXY) as http:
        secret = {"client_id": "plain", "client_secret": "plain-secret-0123456789"}
        started = await http.post(
            "/bank/bc-authorize",
            data={**secret, "scope": "openid profile", "login_hint": "ssn:199001011239"},
        )
        await mtls.drive()
        mtls.app.state.gateway.clock.advance(5)
        tokens = await http.post(
            "/bank/token",
            data={**secret, "grant_type": CIBA, "auth_req_id": started.json()["auth_req_id"]},
        )
        info = await http.get(
            "/bank/userinfo", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}
        )
    assert info.status_code == 200, info.text


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (
            "{client_id: c, auth: {method: tls_client_auth, tls_client_auth_subject_dn: CN=x}}",
            "mutual TLS needs the tenant's mtls settings",
        ),
        (
            "{client_id: c, auth: {method: tls_client_auth}}",
            "tls_client_auth needs exactly one of",
        ),
        (
            "{client_id: c, auth: {method: client_secret_post, secret: s0123456789abcdefgh}, "
            "delivery_mode: push, notification_endpoint: 'https://rp.test/cb', "
            "tls_client_certificate_bound_access_tokens: true}",
            "push mode cannot deliver certificate-bound access tokens",
        ),
    ],
)
def test_config_refuses_unusable_mtls_clients(tmp_path: Path, client: str, message: str) -> None:
    """check-config names the client whose mTLS settings cannot work."""
    doc = f"""
tenants:
  - id: t
    issuer: http://h.test/t
    keys: [{{kid: k, file: {tmp_path}/k.jwk, generate: true}}]
    subject: {{salt: "t-subject-salt-0123456789"}}
    clients: [{client}]
"""
    with pytest.raises(ConfigError) as err:
        parse_config(doc, registry=load_registry())
    assert any(message in p.message for p in err.value.problems), err.value.problems
