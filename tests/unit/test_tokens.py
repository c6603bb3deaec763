"""The tokens package: keys, JWKS, sub, scope claims, ID tokens, access tokens and sealing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import warnings
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from ciba_gateway.config.model import KeyConfig, SubjectConfig, TenantConfig
from ciba_gateway.connector.api import Identity
from ciba_gateway.errors import ConfigError
from ciba_gateway.tokens.access_token import new_opaque_token, token_key
from ciba_gateway.tokens.claims import SCOPE_CLAIMS, claims_for_scopes, subject_for
from ciba_gateway.tokens.id_token import mint_id_token, token_hash
from ciba_gateway.tokens.keys import (
    TenantKeys,
    TokenVerificationError,
    generate_private_jwk,
    load_tenant_keys,
)
from ciba_gateway.tokens.sealing import SealError, seal, unseal

ISSUER = "https://gw.example/demo"
SALT = "0123456789abcdef-salt"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def tenant(*keys: KeyConfig) -> TenantConfig:
    return TenantConfig(
        id="demo", issuer=ISSUER, keys=keys, subject=SubjectConfig(mode="hashed", salt=SALT)
    )


def key_config(tmp_path: Path, kid: str, alg: str = "ES256", **kw: object) -> KeyConfig:
    return KeyConfig(kid=kid, alg=alg, file=str(tmp_path / "keys" / f"{kid}.jwk"), **kw)


def identity(**kw: object) -> Identity:
    fields: dict[str, object] = {
        "scheme": "se-pnr",
        "subject": "199001011239",
        "national_id": "199001011239",
        "country": "SE",
        "claims": {
            "name": "Anna Andersson",
            "given_name": "Anna",
            "family_name": "Andersson",
            "birthdate": "1990-01-01",
            "email": "anna@example.se",
            "email_verified": True,
            "phone_number": None,
        },
        "acr": "urn:grn:authn:se:bankid",
        "amr": ("bankid",),
        "auth_time": 1_700_000_000,
    }
    fields.update(kw)
    return Identity(**fields)  # type: ignore[arg-type]


def verify_independently(token: str, jwks: dict, alg: str) -> dict:
    """Verify with plain joserfc against the published JWKS (not through TenantKeys)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # EdDSA is deprecated by RFC 9864
        obj = jws.deserialize_compact(
            token, KeySet.import_key_set(jwks), registry=JWSRegistry(algorithms=[alg])
        )
    return json.loads(obj.payload)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_each_alg_signs_and_verifies_against_jwks(tmp_path: Path, alg: str) -> None:
    """A generated key of every supported alg signs tokens the published JWKS verifies."""
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", alg, generate=True)))
    token = keys.sign({"sub": "x", "n": 1})
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": alg, "kid": "k1"}
    assert verify_independently(token, keys.jwks(), alg) == {"sub": "x", "n": 1}
    assert keys.verify(token) == {"sub": "x", "n": 1}


def test_sign_sets_typ_when_asked(tmp_path: Path) -> None:
    """``typ`` appears in the header only when given."""
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", generate=True)))
    token = keys.sign({"a": 1}, typ="logout+jwt")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == "logout+jwt"


def test_jwks_publishes_every_state_without_private_members(tmp_path: Path) -> None:
    """Current, next and retired keys are all published as public keys with kid/alg/use."""
    keys = load_tenant_keys(
        tenant(
            key_config(tmp_path, "old", "RS256", generate=True, state="retired"),
            key_config(tmp_path, "now", "ES256", generate=True),
            key_config(tmp_path, "new", "EdDSA", generate=True, state="next"),
        )
    )
    published = keys.jwks()["keys"]
    assert [k["kid"] for k in published] == ["now", "new", "old"]
    assert [k["alg"] for k in published] == ["ES256", "EdDSA", "RS256"]
    assert all(k["use"] == "sig" for k in published)
    assert all(not PRIVATE_MEMBERS & k.keys() for k in published)
    assert json.loads(keys.jwks_json()) == keys.jwks()
    assert keys.jwks_json() is keys.jwks_json()


def test_jwks_copy_cannot_change_cached_set(tmp_path: Path) -> None:
    """Mutating the returned JWKS leaves the served one untouched."""
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", generate=True)))
    keys.jwks()["keys"][0]["kid"] = "evil"
    assert keys.jwks()["keys"][0]["kid"] == "k1"


def test_generated_key_file_is_private_and_reloads_same_key(tmp_path: Path) -> None:
    """generate: true writes a 0600 JWK file once; a reload uses the same key."""
    cfg = key_config(tmp_path, "k1", generate=True)
    first = load_tenant_keys(tenant(cfg))
    path = Path(cfg.file)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["kid"] == "k1"
    second = load_tenant_keys(tenant(cfg))
    assert second.jwks() == first.jwks()
    assert second.verify(first.sign({"a": 1})) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["k1.jwk"]


def test_relative_key_file_resolves_against_base_dir(tmp_path: Path) -> None:
    """A relative key path is read under base_dir."""
    cfg = KeyConfig(kid="k1", file="var/k1.jwk", generate=True)
    load_tenant_keys(tenant(cfg), base_dir=tmp_path)
    assert (tmp_path / "var" / "k1.jwk").exists()


def test_missing_key_without_generate_names_kid_and_file(tmp_path: Path) -> None:
    """A missing key file without generate: true is a config error naming kid and path."""
    cfg = key_config(tmp_path, "prod-1")
    with pytest.raises(ConfigError) as info:
        load_tenant_keys(tenant(cfg))
    message = str(info.value)
    assert "prod-1" in message
    assert cfg.file in message
    assert info.value.problems[0].path == "tenants.demo.keys[0]"


def test_key_file_of_wrong_type_is_refused(tmp_path: Path) -> None:
    """An EC key configured as RS256 is refused, whether or not the JWK names its alg."""
    cfg = key_config(tmp_path, "k1", "RS256")
    ec_key = generate_private_jwk("ES256", "k1")
    Path(cfg.file).parent.mkdir()
    Path(cfg.file).write_text(json.dumps(ec_key))
    with pytest.raises(ConfigError, match="alg 'ES256' is not 'RS256'"):
        load_tenant_keys(tenant(cfg))
    del ec_key["alg"]
    Path(cfg.file).write_text(json.dumps(ec_key))
    with pytest.raises(ConfigError, match="RS256 needs an RSA key"):
        load_tenant_keys(tenant(cfg))


def test_public_only_key_file_is_refused(tmp_path: Path) -> None:
    """A key file without its private part cannot sign and is refused."""
    cfg = key_config(tmp_path, "k1")
    private = generate_private_jwk("ES256", "k1")
    Path(cfg.file).parent.mkdir()
    Path(cfg.file).write_text(json.dumps({k: v for k, v in private.items() if k != "d"}))
    with pytest.raises(ConfigError, match="no private part"):
        load_tenant_keys(tenant(cfg))


def test_key_file_with_other_kid_is_refused(tmp_path: Path) -> None:
    """A JWK whose own kid differs from the configured kid is refused."""
    cfg = key_config(tmp_path, "k1")
    Path(cfg.file).parent.mkdir()
    Path(cfg.file).write_text(json.dumps(generate_private_jwk("ES256", "other")))
    with pytest.raises(ConfigError, match="kid 'other'"):
        load_tenant_keys(tenant(cfg))


def test_verify_accepts_retired_key_after_rotation(tmp_path: Path) -> None:
    """A token signed before rotation still verifies while its key is retired."""
    old = key_config(tmp_path, "k1", generate=True)
    before = load_tenant_keys(tenant(old))
    token = before.sign({"a": 1})
    retired = key_config(tmp_path, "k1", state="retired")
    after = load_tenant_keys(tenant(retired, key_config(tmp_path, "k2", generate=True)))
    assert after.current.kid == "k2"
    assert after.verify(token) == {"a": 1}


def test_verify_rejects_foreign_signature_with_known_kid(tmp_path: Path) -> None:
    """A token signed by another key under our kid fails verification."""
    ours = load_tenant_keys(tenant(key_config(tmp_path / "a", "k1", generate=True)))
    theirs = load_tenant_keys(tenant(key_config(tmp_path / "b", "k1", generate=True)))
    with pytest.raises(TokenVerificationError):
        ours.verify(theirs.sign({"a": 1}))
    with pytest.raises(TokenVerificationError):
        ours.verify("not.a.jwt")


def test_tenant_keys_need_exactly_one_current(tmp_path: Path) -> None:
    """TenantKeys refuses a key list without a current key."""
    with pytest.raises(ValueError, match="current"):
        TenantKeys([])


def test_hashed_sub_is_stable_per_salt_and_hides_national_id() -> None:
    """The hashed sub is deterministic per salt, differs across salts and hides the id."""
    person = identity()
    a1 = subject_for(SubjectConfig(salt=SALT), person)
    a2 = subject_for(SubjectConfig(salt=SALT), person)
    b = subject_for(SubjectConfig(salt="another-salt-0123456"), person)
    assert a1 == a2
    assert a1 != b
    assert "199001011239" not in a1
    assert len(a1) == 43 and "=" not in a1
    mac = hmac.new(SALT.encode(), b"se-pnr:199001011239", hashlib.sha256).digest()
    assert a1 == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_national_id_sub_mode() -> None:
    """Mode national_id uses scheme:subject as sub."""
    assert subject_for(SubjectConfig(mode="national_id"), identity()) == "se-pnr:199001011239"


def test_claims_follow_granted_scopes() -> None:
    """Only the claims of granted scopes appear, and unknown values are left out."""
    person = identity()
    assert claims_for_scopes(person, ["openid"]) == {}
    assert claims_for_scopes(person, ["openid", "profile"]) == {
        "name": "Anna Andersson",
        "given_name": "Anna",
        "family_name": "Andersson",
        "birthdate": "1990-01-01",
    }
    assert claims_for_scopes(person, ["ssn"]) == {"ssn": "199001011239", "ssn_country": "SE"}
    assert claims_for_scopes(person, ["email"]) == {
        "email": "anna@example.se",
        "email_verified": True,
    }
    assert claims_for_scopes(person, ["phone"]) == {}
    assert claims_for_scopes(identity(national_id=None), ["ssn"]) == {}
    assert set(SCOPE_CLAIMS) == {"profile", "ssn", "phone", "email"}


def test_id_token_claims(tmp_path: Path) -> None:
    """The ID token carries the core claims, scope claims and extras."""
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", generate=True)))
    token = mint_id_token(
        keys,
        issuer=ISSUER,
        audience="rp",
        sub="S",
        identity=identity(),
        scopes=("openid", "profile"),
        lifetime=300,
        now=1_700_000_100.7,
        extra={"urn:openid:params:jwt:claim:auth_req_id": "abc", "at_hash": "h"},
    )
    claims = keys.verify(token)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "rp"
    assert claims["sub"] == "S"
    assert claims["iat"] == 1_700_000_100
    assert claims["exp"] == 1_700_000_400
    assert claims["auth_time"] == 1_700_000_000
    assert claims["acr"] == "urn:grn:authn:se:bankid"
    assert claims["amr"] == ["bankid"]
    assert claims["given_name"] == "Anna"
    assert "ssn" not in claims
    assert claims["urn:openid:params:jwt:claim:auth_req_id"] == "abc"


def test_id_token_acr_fallback_and_no_empty_amr(tmp_path: Path) -> None:
    """acr falls back when the identity has none, and an empty amr is omitted."""
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", generate=True)))
    token = mint_id_token(
        keys,
        issuer=ISSUER,
        audience="rp",
        sub="S",
        identity=identity(acr=None, amr=()),
        scopes=("openid",),
        lifetime=60,
        now=1_700_000_000,
        acr_fallback="loa2",
    )
    claims = keys.verify(token)
    assert claims["acr"] == "loa2"
    assert "amr" not in claims


def test_id_token_extra_may_not_replace_core_claims(tmp_path: Path) -> None:
    """extra cannot overwrite sub or other core claims."""
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", generate=True)))
    with pytest.raises(ValueError, match="sub"):
        mint_id_token(
            keys,
            issuer=ISSUER,
            audience="rp",
            sub="S",
            identity=identity(),
            scopes=("openid",),
            lifetime=60,
            now=1_700_000_000,
            extra={"sub": "other"},
        )


def test_at_hash_matches_spec_rule() -> None:
    """at_hash is the base64url left half of the alg's hash (OIDC Core 3.1.3.6)."""
    token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
    # OIDC Core Appendix A pairs this access token with this at_hash.
    assert token_hash(token, "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"
    left = hashlib.sha256(token.encode()).digest()[:16]
    assert token_hash(token, "ES256") == base64.urlsafe_b64encode(left).rstrip(b"=").decode()
    left512 = hashlib.sha512(token.encode()).digest()[:32]
    assert token_hash(token, "EdDSA") == base64.urlsafe_b64encode(left512).rstrip(b"=").decode()
    with pytest.raises(ValueError):
        token_hash(token, "none")


def test_seal_roundtrip_and_wrong_token() -> None:
    """Sealed data opens with its token only, and tampering is detected."""
    token = new_opaque_token()
    blob = seal(token, b'{"sub":"S-0123456789"}')
    assert b"S-0123456789" not in blob
    assert unseal(token, blob) == b'{"sub":"S-0123456789"}'
    assert seal(token, b"x") != seal(token, b"x")
    with pytest.raises(SealError):
        unseal(new_opaque_token(), blob)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError):
        unseal(token, tampered)
    with pytest.raises(SealError):
        unseal(token, b"short")


def test_opaque_tokens_and_store_keys() -> None:
    """Tokens are 256-bit base64url strings; the store key is their hex SHA-256."""
    token = new_opaque_token()
    assert len(token) == 43
    assert token != new_opaque_token()
    assert token_key(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in token_key(token)


def test_es256_signatures_are_fixed_width_r_and_s(tmp_path: Path) -> None:
    """Every ES256 signature is r || s of 32 bytes each, also when r or s is short.

    One signature in 128 has an r or s below 2**248; 400 tokens meet one almost surely.
    """
    keys = load_tenant_keys(tenant(key_config(tmp_path, "k1", "ES256", generate=True)))
    jwks = keys.jwks()
    for n in range(400):
        token = keys.sign({"n": n})
        signature = token.rsplit(".", 1)[1]
        assert len(base64.urlsafe_b64decode(signature + "==")) == 64
        assert verify_independently(token, jwks, "ES256") == {"n": n}
