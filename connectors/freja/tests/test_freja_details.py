"""Verification of the ``details`` JWS itself: key lookup, algorithms and payload checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ciba_gateway_freja.details import (
    DetailsError,
    Expected,
    TrustStore,
    load_certificates,
    verify_details,
    x5t_of,
)
from ciba_gateway_freja_sim.signing import SigningMaterial, load, unsigned_token
from freja_support import CERT_FILE, KARL, KEY_FILE, NOW, b64json

AUTH_REF = "Ab3dE6fGh9jK2mN5pQ8rS1tU4vW7xY0z"
SSN_INFO = b64json({"country": "SE", "ssn": KARL})
EXPECTED = Expected(
    auth_ref=AUTH_REF, user_info_type="SSN", user_info=SSN_INFO, min_registration_level="EXTENDED"
)


@pytest.fixture(scope="module")
def signer() -> SigningMaterial:
    return load(KEY_FILE, CERT_FILE)


@pytest.fixture(scope="module")
def trust() -> TrustStore:
    return TrustStore.load([(CERT_FILE, "freja-test-1")])


def payload(**changes: Any) -> dict[str, Any]:
    """A valid APPROVED payload for EXPECTED, with ``changes`` applied."""
    value = {
        "authRef": AUTH_REF,
        "status": "APPROVED",
        "userInfoType": "SSN",
        "userInfo": json.dumps({"country": "SE", "ssn": KARL}, separators=(",", ":")),
        "minRegistrationLevel": "EXTENDED",
        "requestedAttributes": {"basicUserInfo": {"name": "Karl", "surname": "Karlsson"}},
        "timestamp": int(NOW * 1000) - 2000,
    }
    value.update(changes)
    return value


def verify(token: str, trust: TrustStore, expected: Expected = EXPECTED) -> Any:
    return verify_details(token, trust, expected, now=NOW, max_age=300, clock_skew=30)


def test_valid_details_verify(signer: SigningMaterial, trust: TrustStore) -> None:
    """A payload signed with the pinned certificate (header x5t + RS256) verifies."""
    verified = verify(signer.sign(json.dumps(payload()).encode()), trust)

    assert verified.auth_ref == AUTH_REF
    assert verified.attributes.basic_user_info is not None
    assert verified.attributes.basic_user_info.surname == "Karlsson"


def test_x5t_is_base64url_sha1_of_der() -> None:
    """x5t is 27 base64url characters (SHA-1) and matches the certificate file."""
    cert = load_certificates(CERT_FILE)[0]

    assert len(x5t_of(cert)) == 27
    assert "=" not in x5t_of(cert)


def test_kid_header_selects_a_configured_key(signer: SigningMaterial, trust: TrustStore) -> None:
    """A header with the configured kid (and no x5t) selects that certificate."""
    token = signer.sign(json.dumps(payload()).encode(), {"kid": "freja-test-1", "alg": "RS256"})

    assert verify(token, trust).auth_ref == AUTH_REF


@pytest.mark.parametrize(
    "header",
    [{"kid": "someone-else", "alg": "RS256"}, {"alg": "RS256"}, {"x5t": "AAAA", "alg": "RS256"}],
)
def test_unknown_key_is_refused(
    signer: SigningMaterial, trust: TrustStore, header: dict[str, str]
) -> None:
    """An unknown kid or x5t, or neither, is refused as unknown_key."""
    token = signer.sign(json.dumps(payload()).encode(), header)

    with pytest.raises(DetailsError) as caught:
        verify(token, trust)
    assert caught.value.check == "unknown_key"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256", "ES256"])
def test_only_rs256_is_accepted(signer: SigningMaterial, trust: TrustStore, alg: str) -> None:
    """Any alg but RS256 is refused before a key is looked at."""
    token = unsigned_token({"x5t": signer.x5t, "alg": alg}, json.dumps(payload()).encode(), b"x")

    with pytest.raises(DetailsError) as caught:
        verify(token, trust)
    assert caught.value.check == "alg"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "!!.e30.", "WzFd.e30.", "e30.e30.e30.e30"])
def test_malformed_tokens_are_refused(trust: TrustStore, token: str) -> None:
    """Wrong part counts, non-base64 and non-object headers are refused as malformed or alg."""
    with pytest.raises(DetailsError) as caught:
        verify(token, trust)
    assert caught.value.check in {"malformed", "alg"}


def test_crit_header_is_refused(signer: SigningMaterial, trust: TrustStore) -> None:
    """A header with critical extensions is refused."""
    header = {"x5t": signer.x5t, "alg": "RS256", "crit": ["x5t"]}
    token = signer.sign(json.dumps(payload()).encode(), header)

    with pytest.raises(DetailsError) as caught:
        verify(token, trust)
    assert caught.value.check == "malformed"


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"authRef": "another"}, "auth_ref"),
        ({"status": "CANCELED"}, "status"),
        ({"userInfoType": "EMAIL"}, "user_info"),
        ({"userInfo": json.dumps({"country": "SE", "ssn": "191212121212"})}, "user_info"),
        ({"userInfo": {"country": "NO", "ssn": KARL}}, "user_info"),
        ({"userInfo": "not json"}, "user_info"),
        ({"minRegistrationLevel": "BASIC"}, "level"),
        ({"timestamp": int(NOW * 1000) - 301_000}, "timestamp"),
        ({"timestamp": int(NOW * 1000) + 31_000}, "timestamp"),
        ({"timestamp": "1760000000000"}, "timestamp"),
        ({"requestedAttributes": {"basicUserInfo": "Karl"}}, "attributes"),
    ],
)
def test_payload_checks(
    signer: SigningMaterial, trust: TrustStore, changes: dict[str, Any], check: str
) -> None:
    """A validly signed payload about something else than our request is refused."""
    token = signer.sign(json.dumps(payload(**changes)).encode())

    with pytest.raises(DetailsError) as caught:
        verify(token, trust)
    assert caught.value.check == check


def test_missing_level_means_basic(signer: SigningMaterial, trust: TrustStore) -> None:
    """A payload without minRegistrationLevel counts as BASIC: too low for EXTENDED."""
    body = payload()
    del body["minRegistrationLevel"]

    with pytest.raises(DetailsError) as caught:
        verify(signer.sign(json.dumps(body).encode()), trust)
    assert caught.value.check == "level"


def test_ssn_user_info_as_object_and_higher_level_verify(
    signer: SigningMaterial, trust: TrustStore
) -> None:
    """An SSN userInfo object and a level above the required one are accepted."""
    body = payload(userInfo={"country": "SE", "ssn": KARL}, minRegistrationLevel="PLUS")

    assert verify(signer.sign(json.dumps(body).encode()), trust).min_registration_level == "PLUS"


def test_email_user_info_compares_case_insensitively(
    signer: SigningMaterial, trust: TrustStore
) -> None:
    """EMAIL userInfo matches regardless of letter case."""
    expected = Expected(
        auth_ref=AUTH_REF,
        user_info_type="EMAIL",
        user_info="anna@example.com",
        min_registration_level="BASIC",
    )
    body = payload(userInfoType="EMAIL", userInfo="Anna@Example.com")

    assert verify(signer.sign(json.dumps(body).encode()), trust, expected).auth_ref == AUTH_REF


def test_trust_store_reads_inline_pem_and_rejects_garbage(tmp_path: Path) -> None:
    """Inline PEMs load like files; a missing file or a non-PEM is a clear ValueError."""
    pem = Path(CERT_FILE).read_text()
    (tmp_path / "junk.pem").write_text("not a certificate")

    assert (
        TrustStore.load([(pem, None)]).certs[0].x5t
        == TrustStore.load([(CERT_FILE, None)]).certs[0].x5t
    )
    with pytest.raises(ValueError, match="cannot read certificate file"):
        TrustStore.load([(str(tmp_path / "missing.pem"), None)])
    with pytest.raises(ValueError, match="no PEM certificate"):
        TrustStore.load([(str(tmp_path / "junk.pem"), None)])
