"""Each named FAPI-CIBA check of config.fapi and protocol.fapi, passing and refusing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ciba_gateway.config import fapi
from ciba_gateway.config.model import (
    ClientAuth,
    ClientConfig,
    KeyConfig,
    MtlsConfig,
    RouteConfig,
    SubjectConfig,
    TenantConfig,
)
from ciba_gateway.protocol.fapi import fapi_algs
from ciba_gateway.tokens.keys import generate_private_jwk

EC_KEY = {k: v for k, v in generate_private_jwk("ES256", "k").items() if k != "d"}
STRONG = ClientAuth(method="private_key_jwt", jwks={"keys": [EC_KEY]})


def client(**overrides: Any) -> ClientConfig:
    fields: dict[str, Any] = {
        "client_id": "rp",
        "auth": STRONG,
        "tls_client_certificate_bound_access_tokens": True,
    }
    fields.update(overrides)
    return ClientConfig(**fields)


def tenant(**overrides: Any) -> TenantConfig:
    fields: dict[str, Any] = {
        "id": "t",
        "issuer": "https://gw.test/t",
        "keys": (KeyConfig(kid="k", alg="PS256", file="k.jwk"),),
        "subject": SubjectConfig(salt="t-subject-salt-0123456789"),
        "mtls": MtlsConfig(),
    }
    fields.update(overrides)
    return TenantConfig(**fields)


def rsa_jwk(bits: int) -> dict[str, Any]:
    n = (1 << (bits - 1)) | 1
    raw = n.to_bytes((bits + 7) // 8, "big")
    return {"kty": "RSA", "e": "AQAB", "n": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (
            fapi.no_push_mode,
            {"delivery_mode": "ping", "notification_endpoint": "https://x"},
            {
                "delivery_mode": "push",
                "notification_endpoint": "https://x",
                "tls_client_certificate_bound_access_tokens": False,
            },
        ),
        (
            fapi.strong_client_auth,
            {},
            {"auth": ClientAuth(method="client_secret_post", secret="s" * 20)},
        ),
        (fapi.sender_constrained_tokens, {}, {"tls_client_certificate_bound_access_tokens": False}),
        (fapi.client_algs, {"request_signing_alg": "ES256"}, {"request_signing_alg": "RS256"}),
        (
            fapi.client_key_sizes,
            {"auth": ClientAuth(method="private_key_jwt", jwks={"keys": [rsa_jwk(2048)]})},
            {"auth": ClientAuth(method="private_key_jwt", jwks={"keys": [rsa_jwk(1024)]})},
        ),
    ],
)
def test_client_checks(check: Any, good: dict[str, Any], bad: dict[str, Any]) -> None:
    """The good client passes (None); the bad one gets a message citing a clause."""
    assert check(client(**good)) is None
    problem = check(client(**bad))
    assert problem is not None and "FAPI" in problem


def test_a_resource_server_needs_no_bound_tokens() -> None:
    """Part 2 5.2.2-5 concerns access tokens, which a client without the CIBA grant never gets."""
    rs = client(grant_types=(), tls_client_certificate_bound_access_tokens=False)
    assert fapi.sender_constrained_tokens(rs) is None


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (fapi.tenant_mtls, {}, {"mtls": None}),
        (
            fapi.tenant_signing_keys,
            {"keys": (KeyConfig(kid="k", alg="ES256", file="k"),)},
            {"keys": (KeyConfig(kid="k", alg="RS256", file="k"),)},
        ),
        (fapi.tenant_accepted_algs, {"signing_algs": ("PS256",)}, {"signing_algs": ("RS256",)}),
        (
            fapi.tenant_routes_have_acr,
            {"routes": (RouteConfig(acr="urn:acr:high", connector="c"),)},
            {"routes": (RouteConfig(login_hint="ssn", connector="c"),)},
        ),
    ],
)
def test_tenant_checks(check: Any, good: dict[str, Any], bad: dict[str, Any]) -> None:
    """Tenant-level clauses; routes need a connector, so a stub instance is declared."""
    from ciba_gateway.config.model import ConnectorInstance

    connectors = {"connectors": {"c": ConnectorInstance(type="example")}}
    assert check(tenant(**connectors, **good)) is None
    problem = check(tenant(**connectors, **bad))
    assert problem is not None and "FAPI" in problem


def test_a_retired_rs256_key_is_allowed() -> None:
    """8.6-1 concerns keys that sign; a retired key only verifies old tokens."""
    keys = (
        KeyConfig(kid="new", alg="PS256", file="n"),
        KeyConfig(kid="old", alg="RS256", file="o", state="retired"),
    )
    assert fapi.tenant_signing_keys(tenant(keys=keys)) is None


def test_profile_is_the_clients_else_the_tenants() -> None:
    """A client's own profile wins; without one it follows the tenant."""
    plain = tenant()
    assert not fapi.is_fapi(plain, client())
    assert fapi.is_fapi(plain, client(profile="fapi-ciba"))
    fapi_tenant = tenant(profile="fapi-ciba")
    assert fapi.is_fapi(fapi_tenant, client())
    assert not fapi.is_fapi(fapi_tenant, client(profile="default"))


def test_fapi_algs_narrow_only_fapi_clients() -> None:
    """Part 2 8.6-1: PS256/ES256 for a fapi-ciba client; others keep the tenant's list."""
    algs = ("ES256", "RS256", "PS256", "EdDSA")
    assert fapi_algs(tenant(), client(), algs) == algs
    assert fapi_algs(tenant(), client(profile="fapi-ciba"), algs) == ("ES256", "PS256")
