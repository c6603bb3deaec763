"""Incoming JWTs: client assertions, request objects, login_hint_token, id_token_hint."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from ciba_gateway.config.model import (
    ClientAuth,
    ClientConfig,
    KeyConfig,
    SubjectConfig,
    TenantConfig,
)
from ciba_gateway.connector.api import Identity
from ciba_gateway.errors import (
    ExpiredLoginHintTokenError,
    InvalidClientError,
    InvalidRequestError,
)
from ciba_gateway.protocol.jose import (
    JwksCache,
    JwksError,
    peek_jwt,
    verify_client_assertion,
    verify_id_token_hint,
    verify_login_hint_token,
    verify_request_object,
)
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.values import Values
from ciba_gateway.tokens.id_token import mint_id_token
from ciba_gateway.tokens.keys import TenantKeys, load_tenant_keys

NOW = 1_700_000_000.0
ISSUER = "https://gw.example/demo"
TOKEN_URL = ISSUER + "/token"
SECRET = "a-high-entropy-client-secret-0123"
JWKS_URI = "https://rp.example/jwks"
ALGS = ("ES256", "RS256", "PS256", "EdDSA")

EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "c1"})
OTHER_EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "c1"})
EC_KEY_2 = ECKey.generate_key("P-256", parameters={"kid": "c2"})
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "r1"})

KEY_CLIENT = ClientConfig(
    client_id="pos",
    auth=ClientAuth(method="private_key_jwt", jwks={"keys": [EC_KEY.as_dict(), RSA_KEY.as_dict()]}),
)
SECRET_CLIENT = ClientConfig(
    client_id="callcenter", auth=ClientAuth(method="client_secret_jwt", secret=SECRET)
)
URI_CLIENT = ClientConfig(
    client_id="kiosk", auth=ClientAuth(method="private_key_jwt", jwks_uri=JWKS_URI)
)


class RecordingStore(MemoryStore):
    """A memory store that also records each jti it was asked to remember, with its ttl."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, str], float] = {}

    async def remember(self, namespace: str, key: str, ttl: float) -> bool:
        self.seen[(namespace, key)] = ttl
        return await super().remember(namespace, key, ttl)


class Clock:
    """A hand-moved clock."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """A jwks_uri endpoint that counts requests and can be switched to fail."""

    def __init__(self, *keys: ECKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URI
        self.fetches += 1
        if self.status != 200:
            return httpx.Response(self.status)
        return httpx.Response(200, json={"keys": [k.as_dict() for k in self.keys]})


@pytest.fixture
async def http() -> AsyncIterator[Callable[[JwksServer], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(server: JwksServer) -> httpx.AsyncClient:
        clients.append(httpx.AsyncClient(transport=httpx.MockTransport(server)))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def cache() -> AsyncIterator[JwksCache]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(JwksServer())) as client:
        yield JwksCache(client, clock=lambda: NOW)


def signed(claims: dict[str, Any], key: Any = EC_KEY, alg: str = "ES256", **header: Any) -> str:
    kid = key.kid if not isinstance(key, OctKey) else None
    head = {"alg": alg, **({"kid": kid} if kid else {}), **header}
    return jwt.encode(head, claims, key, algorithms=[alg])


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return signed(claims, OctKey.import_key(secret), "HS256")


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def assertion_claims(client_id: str = "pos", **overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(NOW) + 60,
        "iat": int(NOW),
        "jti": "jti-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def check_assertion(
    token: str,
    cache: JwksCache,
    client: ClientConfig = KEY_CLIENT,
    remember: RecordingStore | None = None,
    algs: tuple[str, ...] = ALGS,
) -> None:
    await verify_client_assertion(
        token,
        client=client,
        audiences={ISSUER, TOKEN_URL},
        allowed_algs=algs,
        keys=cache,
        values=Values(remember or RecordingStore()),
        now=NOW,
        tenant_id="demo",
    )


# --- client assertions -------------------------------------------------------


async def test_client_secret_jwt_hs256_accepted(cache: JwksCache) -> None:
    """An HS256 assertion made with the client secret authenticates the client."""
    remember = RecordingStore()
    token = hs256(assertion_claims("callcenter"))
    await check_assertion(token, cache, SECRET_CLIENT, remember)
    assert remember.seen == {("client_assertion:demo:callcenter", "jti-1"): 120.0}


async def test_private_key_jwt_es256_accepted(cache: JwksCache) -> None:
    """An ES256 assertion made with the client's key authenticates the client."""
    await check_assertion(signed(assertion_claims()), cache)


async def test_private_key_jwt_rs256_without_kid_accepted(cache: JwksCache) -> None:
    """Without a kid, the key is found by alg among the client's keys."""
    token = jwt.encode({"alg": "RS256"}, assertion_claims(), RSA_KEY, algorithms=["RS256"])
    await check_assertion(token, cache)


async def test_assertion_by_another_key_refused(cache: JwksCache) -> None:
    """A signature by a key that is not the client's fails."""
    with pytest.raises(InvalidClientError, match="signature is invalid"):
        await check_assertion(signed(assertion_claims(), OTHER_EC_KEY), cache)


async def test_assertion_wrong_secret_refused(cache: JwksCache) -> None:
    """An HS256 assertion made with another secret fails."""
    token = hs256(assertion_claims("callcenter"), secret="another-secret-0123456789")
    with pytest.raises(InvalidClientError, match="signature is invalid"):
        await check_assertion(token, cache, SECRET_CLIENT)


async def test_assertion_wrong_aud_refused(cache: JwksCache) -> None:
    """An assertion addressed to someone else is refused."""
    token = signed(assertion_claims(aud="https://elsewhere.example/token"))
    with pytest.raises(InvalidClientError, match="aud") as info:
        await check_assertion(token, cache)
    assert info.value.status_code == 401


async def test_assertion_aud_list_accepted(cache: JwksCache) -> None:
    """An aud array that contains one accepted audience is fine."""
    token = signed(assertion_claims(aud=["https://x.example", ISSUER]))
    await check_assertion(token, cache)


async def test_assertion_expired_refused(cache: JwksCache) -> None:
    """An expired assertion is refused as invalid_client, not expired_token."""
    token = signed(assertion_claims(exp=int(NOW) - 120))
    with pytest.raises(InvalidClientError, match="expired") as info:
        await check_assertion(token, cache)
    assert info.value.error == "invalid_client"


async def test_assertion_within_skew_accepted(cache: JwksCache) -> None:
    """An assertion that expired less than the allowed skew ago still passes."""
    await check_assertion(signed(assertion_claims(exp=int(NOW) - 30)), cache)


async def test_assertion_missing_jti_refused(cache: JwksCache) -> None:
    """jti is required."""
    with pytest.raises(InvalidClientError, match="jti"):
        await check_assertion(signed(assertion_claims(jti=None)), cache)


async def test_assertion_replayed_jti_refused(cache: JwksCache) -> None:
    """The same jti cannot be used twice."""
    remember = RecordingStore()
    token = signed(assertion_claims())
    await check_assertion(token, cache, remember=remember)
    with pytest.raises(InvalidClientError, match="used before"):
        await check_assertion(token, cache, remember=remember)


async def test_assertion_alg_none_refused(cache: JwksCache) -> None:
    """An unsigned assertion is refused."""
    with pytest.raises(InvalidClientError, match="must be signed"):
        await check_assertion(unsigned(assertion_claims()), cache)


async def test_assertion_alg_outside_allow_list_refused(cache: JwksCache) -> None:
    """An alg outside the tenant's allow-list is refused even with a valid signature."""
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, assertion_claims(), RSA_KEY, ["RS256"])
    with pytest.raises(InvalidClientError, match="not allowed"):
        await check_assertion(token, cache, algs=("ES256",))


async def test_assertion_hmac_for_private_key_client_refused(cache: JwksCache) -> None:
    """A private_key_jwt client cannot authenticate with an HMAC assertion."""
    with pytest.raises(InvalidClientError, match="not allowed"):
        await check_assertion(hs256(assertion_claims()), cache)


async def test_assertion_client_signing_alg_enforced(cache: JwksCache) -> None:
    """auth.signing_alg narrows the accepted algs to one."""
    client = ClientConfig(
        client_id="cc",
        auth=ClientAuth(method="client_secret_jwt", secret=SECRET, signing_alg="HS512"),
    )
    with pytest.raises(InvalidClientError, match="not allowed"):
        await check_assertion(hs256(assertion_claims("cc")), cache, client)


async def test_assertion_iss_must_be_client(cache: JwksCache) -> None:
    """iss and sub must both be the client_id."""
    with pytest.raises(InvalidClientError, match="iss"):
        await check_assertion(signed(assertion_claims(iss="someone")), cache)


async def test_assertion_lifetime_bounded(cache: JwksCache) -> None:
    """An assertion valid for an hour is refused (its jti would be kept too long)."""
    with pytest.raises(InvalidClientError, match="too far ahead"):
        await check_assertion(signed(assertion_claims(exp=int(NOW) + 3600)), cache)


async def test_assertion_garbage_refused(cache: JwksCache) -> None:
    """Something that is not a JWS is refused with a plain message."""
    with pytest.raises(InvalidClientError, match="not a signed JWT"):
        await check_assertion("garbage", cache)


# --- jwks_uri ------------------------------------------------------------------


async def test_jwks_uri_fetched_once_and_cached(http: Callable[..., httpx.AsyncClient]) -> None:
    """Keys from jwks_uri are fetched once and reused within the TTL."""
    server = JwksServer(EC_KEY)
    clock = Clock()
    cache = JwksCache(http(server), clock=clock)
    await check_assertion(signed(assertion_claims("kiosk", jti="a")), cache, URI_CLIENT)
    clock.now += 100
    await check_assertion(signed(assertion_claims("kiosk", jti="b")), cache, URI_CLIENT)
    assert server.fetches == 1
    clock.now += 300
    await cache.keys_for(URI_CLIENT)
    assert server.fetches == 2


async def test_jwks_uri_refetched_for_new_kid_at_most_every_30s(
    http: Callable[..., httpx.AsyncClient],
) -> None:
    """An unknown kid causes one refetch (rotation), rate-limited to one per 30 s."""
    server = JwksServer(EC_KEY)
    clock = Clock()
    cache = JwksCache(http(server), clock=clock)
    await cache.keys_for(URI_CLIENT)
    server.keys.append(EC_KEY_2)
    clock.now += 10
    keys = await cache.keys_for(URI_CLIENT, kid="c2")
    assert [k.kid for k in keys] == ["c1"]
    assert server.fetches == 1
    clock.now += 25
    keys = await cache.keys_for(URI_CLIENT, kid="c2")
    assert [k.kid for k in keys] == ["c1", "c2"]
    assert server.fetches == 2
    clock.now += 1
    with pytest.raises(InvalidClientError, match="no key"):
        await verify_client_assertion(
            signed(assertion_claims("kiosk"), ECKey.generate_key("P-256", parameters={"kid": "x"})),
            client=URI_CLIENT,
            audiences={TOKEN_URL},
            allowed_algs=ALGS,
            keys=cache,
            values=Values(RecordingStore()),
            now=NOW,
            tenant_id="demo",
        )
    assert server.fetches == 2


async def test_jwks_uri_failure_without_cache_is_invalid_client(
    http: Callable[..., httpx.AsyncClient],
) -> None:
    """An unreachable jwks_uri fails authentication and is not retried per request."""
    server = JwksServer(EC_KEY)
    server.status = 500
    cache = JwksCache(http(server), clock=Clock())
    for _ in range(2):
        with pytest.raises(InvalidClientError, match="could not be obtained"):
            await check_assertion(signed(assertion_claims("kiosk")), cache, URI_CLIENT)
    assert server.fetches == 1


async def test_jwks_uri_failure_serves_last_good_keys(
    http: Callable[..., httpx.AsyncClient],
) -> None:
    """When a refresh fails, the last good key set keeps working for a while."""
    server = JwksServer(EC_KEY)
    clock = Clock()
    cache = JwksCache(http(server), clock=clock)
    await cache.keys_for(URI_CLIENT)
    server.status = 503
    clock.now += 400
    keys = await cache.keys_for(URI_CLIENT)
    assert [k.kid for k in keys] == ["c1"]
    assert server.fetches == 2
    clock.now += 4000
    with pytest.raises(JwksError, match="could not be fetched"):
        await cache.keys_for(URI_CLIENT)


async def test_jwks_uri_drops_symmetric_keys(http: Callable[..., httpx.AsyncClient]) -> None:
    """A symmetric key published at a jwks_uri is never used."""
    server = JwksServer(OctKey.generate_key(256, parameters={"kid": "o"}), EC_KEY)  # type: ignore[arg-type]
    cache = JwksCache(http(server), clock=Clock())
    keys = await cache.keys_for(URI_CLIENT)
    assert [k.kid for k in keys] == ["c1"]


def test_peek_reads_unverified_parts() -> None:
    """peek_jwt returns header and claims without checking the signature."""
    header, claims = peek_jwt(signed({"sub": "pos"}))
    assert header["alg"] == "ES256"
    assert claims == {"sub": "pos"}
    with pytest.raises(ValueError):
        peek_jwt("a.b")


# --- request objects -----------------------------------------------------------


def request_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": "pos",
        "aud": ISSUER,
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": "r-1",
        "scope": "openid profile",
        "login_hint": "ssn:199001011239",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def check_request(
    token: str,
    cache: JwksCache,
    remember: RecordingStore | None = None,
    client: ClientConfig = KEY_CLIENT,
) -> dict[str, Any]:
    return await verify_request_object(
        token,
        client=client,
        issuer=ISSUER,
        allowed_algs=ALGS,
        keys=cache,
        values=Values(remember or RecordingStore()),
        now=NOW,
        tenant_id="demo",
    )


async def test_request_object_valid(cache: JwksCache) -> None:
    """A well-formed signed request yields its parameters."""
    remember = RecordingStore()
    claims = await check_request(signed(request_claims()), cache, remember)
    assert claims["login_hint"] == "ssn:199001011239"
    assert ("request_object:demo:pos", "r-1") in remember.seen


async def test_request_object_wrong_aud(cache: JwksCache) -> None:
    """A request object for another issuer is invalid_request."""
    with pytest.raises(InvalidRequestError, match="aud") as info:
        await check_request(signed(request_claims(aud=TOKEN_URL)), cache)
    assert info.value.error == "invalid_request"


async def test_request_object_lifetime_over_an_hour(cache: JwksCache) -> None:
    """exp - nbf above 60 minutes is refused."""
    token = signed(request_claims(nbf=int(NOW) - 10, exp=int(NOW) + 3600))
    with pytest.raises(InvalidRequestError, match="60 minutes"):
        await check_request(token, cache)


async def test_request_object_replayed_jti(cache: JwksCache) -> None:
    """A request object is single use."""
    remember = RecordingStore()
    token = signed(request_claims())
    await check_request(token, cache, remember)
    with pytest.raises(InvalidRequestError, match="used before"):
        await check_request(token, cache, remember)


async def test_request_object_missing_nbf(cache: JwksCache) -> None:
    """nbf is required in a request object."""
    with pytest.raises(InvalidRequestError, match="nbf"):
        await check_request(signed(request_claims(nbf=None)), cache)


async def test_request_object_not_yet_valid(cache: JwksCache) -> None:
    """A request object whose nbf lies beyond the skew is refused."""
    with pytest.raises(InvalidRequestError, match="not valid yet"):
        await check_request(signed(request_claims(nbf=int(NOW) + 120)), cache)


async def test_request_object_alg_must_match_client(cache: JwksCache) -> None:
    """client.request_signing_alg pins the alg of request objects."""
    client = ClientConfig(
        client_id="pos",
        auth=KEY_CLIENT.auth,
        request_signing_alg="PS256",
    )
    with pytest.raises(InvalidRequestError, match="not allowed"):
        await check_request(signed(request_claims()), cache, client=client)


async def test_request_object_hmac_refused(cache: JwksCache) -> None:
    """Request objects must be signed asymmetrically."""
    with pytest.raises(InvalidRequestError, match="not allowed"):
        await check_request(hs256(request_claims(iss="callcenter")), cache, client=SECRET_CLIENT)


# --- login_hint_token ------------------------------------------------------------


async def check_hint(token: str, cache: JwksCache, client: ClientConfig = KEY_CLIENT) -> dict:
    return await verify_login_hint_token(
        token, client=client, keys=cache, allowed_algs=ALGS, now=NOW
    )


SSN_SUB_ID = {"format": "ssn", "ssn": "199001011239", "country": "SE"}


async def test_login_hint_token_valid(cache: JwksCache) -> None:
    """A client-signed login_hint_token yields its sub_id."""
    claims = await check_hint(signed({"sub_id": SSN_SUB_ID, "exp": int(NOW) + 60}), cache)
    assert claims["sub_id"] == SSN_SUB_ID


async def test_login_hint_token_hmac_for_secret_client(cache: JwksCache) -> None:
    """A secret-only client may sign its login_hint_token with HS256."""
    sub_id = {"format": "phone_number", "phone_number": "+46701234567"}
    claims = await check_hint(hs256({"sub_id": sub_id, "exp": int(NOW) + 60}), cache, SECRET_CLIENT)
    assert claims["sub_id"] == sub_id


async def test_login_hint_token_expired(cache: JwksCache) -> None:
    """An expired login_hint_token answers expired_login_hint_token, not expired_token."""
    token = signed({"sub_id": SSN_SUB_ID, "exp": int(NOW) - 600})
    with pytest.raises(ExpiredLoginHintTokenError) as info:
        await check_hint(token, cache)
    assert info.value.to_body()["error"] == "expired_login_hint_token"


async def test_login_hint_token_bad_signature(cache: JwksCache) -> None:
    """A login_hint_token signed by a stranger is invalid_request, even when expired."""
    token = signed({"sub_id": SSN_SUB_ID, "exp": int(NOW) - 600}, OTHER_EC_KEY)
    with pytest.raises(InvalidRequestError, match="signature"):
        await check_hint(token, cache)


async def test_login_hint_token_unknown_format(cache: JwksCache) -> None:
    """A sub_id format the gateway does not know is invalid_request."""
    token = signed({"sub_id": {"format": "opaque", "id": "x"}, "exp": int(NOW) + 60})
    with pytest.raises(InvalidRequestError, match="format"):
        await check_hint(token, cache)


async def test_login_hint_token_needs_exp(cache: JwksCache) -> None:
    """A login_hint_token without exp is refused."""
    with pytest.raises(InvalidRequestError, match="exp"):
        await check_hint(signed({"sub_id": SSN_SUB_ID}), cache)


# --- id_token_hint ---------------------------------------------------------------


@pytest.fixture
def tenant_keys(tmp_path: Path) -> TenantKeys:
    return _keys(tmp_path)


def _keys(directory: Path) -> TenantKeys:
    key = KeyConfig(kid="k1", file=str(directory / "k1.jwk"), generate=True)
    return load_tenant_keys(
        TenantConfig(id="demo", issuer=ISSUER, keys=(key,), subject=SubjectConfig(salt="s" * 16))
    )


def id_token(keys: TenantKeys, *, issued: float, audience: str = "pos") -> str:
    return mint_id_token(
        keys,
        issuer=ISSUER,
        audience=audience,
        sub="S",
        identity=Identity(scheme="se-pnr", subject="1"),
        scopes=("openid",),
        lifetime=300,
        now=issued,
    )


def check_id_hint(token: str, keys: TenantKeys, max_age: float = 86400) -> dict[str, Any]:
    return verify_id_token_hint(
        token, keys=keys, audience_client_id="pos", issuer=ISSUER, now=NOW, max_age=max_age
    )


def test_id_token_hint_valid_even_after_exp(tenant_keys: TenantKeys) -> None:
    """A previously issued (expired) ID token of ours is a valid hint."""
    claims = check_id_hint(id_token(tenant_keys, issued=NOW - 3600), tenant_keys)
    assert claims["sub"] == "S"
    assert claims["exp"] < NOW


def test_id_token_hint_forged(tenant_keys: TenantKeys, tmp_path: Path) -> None:
    """An ID token signed by another key under our kid is refused."""
    forger = _keys(tmp_path / "forger")
    with pytest.raises(InvalidRequestError, match="not an ID token of this issuer"):
        check_id_hint(id_token(forger, issued=NOW), tenant_keys)


def test_id_token_hint_for_other_client(tenant_keys: TenantKeys) -> None:
    """An ID token issued to another client is refused."""
    with pytest.raises(InvalidRequestError, match="this client"):
        check_id_hint(id_token(tenant_keys, issued=NOW, audience="other"), tenant_keys)


def test_id_token_hint_too_old(tenant_keys: TenantKeys) -> None:
    """An ID token older than max_age is refused."""
    with pytest.raises(InvalidRequestError, match="too old"):
        check_id_hint(id_token(tenant_keys, issued=NOW - 1000), tenant_keys, max_age=600)


async def test_assertion_jti_cache_is_per_tenant_and_client(cache: JwksCache) -> None:
    """A jti used by client "pos" of one tenant does not block "pos" of another tenant."""
    remember = RecordingStore()
    token = signed(assertion_claims())

    async def use(tenant_id: str) -> None:
        await verify_client_assertion(
            token,
            client=KEY_CLIENT,
            audiences={ISSUER, TOKEN_URL},
            allowed_algs=ALGS,
            keys=cache,
            values=Values(remember),
            now=NOW,
            tenant_id=tenant_id,
        )

    await use("acme")
    await use("beta")
    with pytest.raises(InvalidClientError, match="used before"):
        await use("acme")
    assert {ns for ns, _ in remember.seen} == {
        "client_assertion:acme:pos",
        "client_assertion:beta:pos",
    }
