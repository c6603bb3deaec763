"""Client authentication: Basic, post, client_secret_jwt and private_key_jwt."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from structlog.testing import capture_logs

from ciba_gateway.config.model import (
    ClientAuth,
    ClientConfig,
    KeyConfig,
    SubjectConfig,
    TenantConfig,
)
from ciba_gateway.errors import InvalidClientError, InvalidRequestError
from ciba_gateway.protocol.client_auth import CLIENT_ASSERTION_TYPE, authenticate_client
from ciba_gateway.protocol.jose import JwksCache
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.values import Values

NOW = 1_700_000_000.0
ISSUER = "https://gw.example/demo"
TOKEN_URL = ISSUER + "/token"
JWKS_URI = "https://pos.example/jwks"
BASIC_SECRET = "s3cr:t+%/ é-and-more"  # characters RFC 6749 2.3.1 form-encodes
POST_SECRET = "post-secret-0123456789"
JWT_SECRET = "jwt-secret-0123456789abcdef"
POS_KEY = ECKey.generate_key("P-256", parameters={"kid": "pos-1"})

TENANT = TenantConfig(
    id="demo",
    issuer=ISSUER,
    keys=(KeyConfig(kid="k1", file="unused.jwk"),),
    subject=SubjectConfig(salt="0123456789abcdef"),
    clients=(
        ClientConfig(
            client_id="call.center",
            auth=ClientAuth(method="client_secret_basic", secret=BASIC_SECRET),
        ),
        ClientConfig(
            client_id="branch",
            auth=ClientAuth(method="client_secret_post", secret=POST_SECRET),
        ),
        ClientConfig(
            client_id="speaker",
            auth=ClientAuth(method="client_secret_jwt", secret=JWT_SECRET),
        ),
        ClientConfig(
            client_id="pos",
            auth=ClientAuth(method="private_key_jwt", jwks_uri=JWKS_URI),
        ),
    ),
)
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{ISSUER}"'}


class Fetches:
    """The pos client's jwks_uri, counting requests."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URI
        self.count += 1
        return httpx.Response(200, json={"keys": [POS_KEY.as_dict()]})


@pytest.fixture
def fetches() -> Fetches:
    return Fetches()


@pytest.fixture
async def jwks(fetches: Fetches) -> AsyncIterator[JwksCache]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fetches)) as http:
        yield JwksCache(http, clock=lambda: NOW)


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def assertion(client_id: str, key: Any, alg: str, jti: str = "j1") -> str:
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(NOW) + 60,
        "jti": jti,
    }
    header = {"alg": alg, **({"kid": key.kid} if key.kid else {})}
    return jwt.encode(header, claims, key, algorithms=[alg])


def jwt_form(token: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": token, **extra}


async def auth(
    jwks: JwksCache,
    *,
    authorization: str | None = None,
    form: dict[str, str] | None = None,
    values: Values | None = None,
) -> ClientConfig:
    return await authenticate_client(
        TENANT,
        authorization=authorization,
        form=form or {},
        audiences={ISSUER, TOKEN_URL},
        jwks=jwks,
        values=values or Values(MemoryStore()),
        now=NOW,
    )


async def test_basic_ok(jwks: JwksCache) -> None:
    """Correct Basic credentials authenticate the client."""
    client = await auth(jwks, authorization=basic("call.center", BASIC_SECRET))
    assert client.client_id == "call.center"


async def test_basic_credentials_are_form_decoded(jwks: JwksCache) -> None:
    """Basic id and secret are url-decoded (RFC 6749 2.3.1), so '+' is a space."""
    raw_secret_header = "Basic " + base64.b64encode(f"call.center:{BASIC_SECRET}".encode()).decode()
    with pytest.raises(InvalidClientError):
        await auth(jwks, authorization=raw_secret_header)
    encoded = basic("call.center", BASIC_SECRET)
    assert "%" in base64.b64decode(encoded[6:]).decode()
    assert (await auth(jwks, authorization=encoded)).client_id == "call.center"


async def test_basic_scheme_is_case_insensitive(jwks: JwksCache) -> None:
    """The auth scheme name matches regardless of case."""
    header = "bAsIc " + basic("call.center", BASIC_SECRET)[6:]
    assert (await auth(jwks, authorization=header)).client_id == "call.center"


async def test_basic_wrong_secret_is_401_with_challenge(jwks: JwksCache) -> None:
    """A wrong Basic secret gives invalid_client, 401 and WWW-Authenticate."""
    with pytest.raises(InvalidClientError) as info:
        await auth(jwks, authorization=basic("call.center", BASIC_SECRET + "x"))
    assert info.value.status_code == 401
    assert info.value.error == "invalid_client"
    assert info.value.headers == CHALLENGE


async def test_basic_malformed_is_401_with_challenge(jwks: JwksCache) -> None:
    """Undecodable Basic credentials give invalid_client with the challenge."""
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(InvalidClientError, match="malformed") as info:
            await auth(jwks, authorization=header)
        assert info.value.headers == CHALLENGE


async def test_basic_client_id_in_form_must_match(jwks: JwksCache) -> None:
    """A form client_id that contradicts the Basic credentials is refused."""
    with pytest.raises(InvalidClientError, match="does not match"):
        await auth(
            jwks,
            authorization=basic("call.center", BASIC_SECRET),
            form={"client_id": "branch"},
        )


async def test_post_ok(jwks: JwksCache) -> None:
    """client_id and client_secret in the form authenticate a post client."""
    client = await auth(jwks, form={"client_id": "branch", "client_secret": POST_SECRET})
    assert client.client_id == "branch"


async def test_post_wrong_secret_is_challenged(jwks: JwksCache) -> None:
    """A failed post authentication is 401 with the challenge too (RFC 9110 15.5.2)."""
    with pytest.raises(InvalidClientError, match=r"^client authentication failed$") as info:
        await auth(jwks, form={"client_id": "branch", "client_secret": "nope"})
    assert info.value.headers == CHALLENGE


async def test_registry_failures_answer_alike(jwks: JwksCache) -> None:
    """Unknown client, wrong secret and wrong method give one description and one challenge."""
    attempts = [
        {"form": {"client_id": "ghost", "client_secret": POST_SECRET}},
        {"form": {"client_id": "branch", "client_secret": POST_SECRET + "x"}},
        {"form": {"client_id": "call.center", "client_secret": BASIC_SECRET}},
        {"authorization": basic("ghost", "whatever-secret-123")},
        {"authorization": basic("call.center", "wrong-secret-0123456")},
        {"authorization": basic("branch", POST_SECRET)},
    ]
    answers = set()
    for attempt in attempts:
        with pytest.raises(InvalidClientError) as info:
            await auth(jwks, **attempt)
        answers.add((info.value.description, tuple(info.value.headers.items())))
    assert answers == {("client authentication failed", tuple(CHALLENGE.items()))}


async def test_method_mismatch(jwks: JwksCache) -> None:
    """A Basic client cannot use client_secret_post, even with the right secret."""
    with capture_logs() as logs:
        with pytest.raises(InvalidClientError, match="authentication failed"):
            await auth(jwks, form={"client_id": "call.center", "client_secret": BASIC_SECRET})
        with pytest.raises(InvalidClientError, match="authentication failed"):
            await auth(jwks, authorization=basic("branch", POST_SECRET))
    reasons = [e["reason"] for e in logs if e["event"] == "client_auth_failed"]
    assert reasons == [
        "client_secret_post is not the client's registered method",
        "client_secret_basic is not the client's registered method",
    ]


async def test_unknown_client(jwks: JwksCache) -> None:
    """An unknown client_id is invalid_client."""
    with pytest.raises(InvalidClientError, match="authentication failed") as info:
        await auth(jwks, authorization=basic("ghost", "whatever-secret-123"))
    assert info.value.headers == CHALLENGE


async def test_no_credentials(jwks: JwksCache) -> None:
    """A request without client authentication is challenged."""
    with pytest.raises(InvalidClientError, match="required") as info:
        await auth(jwks, form={"client_id": "branch"})
    assert info.value.headers == CHALLENGE


async def test_bearer_header_is_not_client_auth(jwks: JwksCache) -> None:
    """A non-Basic Authorization header does not count as a method."""
    client = await auth(
        jwks,
        authorization="Bearer abc",
        form={"client_id": "branch", "client_secret": POST_SECRET},
    )
    assert client.client_id == "branch"


async def test_two_methods_are_invalid_request(jwks: JwksCache) -> None:
    """Using Basic and client_secret_post together is a malformed request."""
    with pytest.raises(InvalidRequestError, match="exactly one"):
        await auth(
            jwks,
            authorization=basic("call.center", BASIC_SECRET),
            form={"client_id": "branch", "client_secret": POST_SECRET},
        )


async def test_client_secret_jwt_ok(jwks: JwksCache) -> None:
    """An HS256 assertion authenticates a client_secret_jwt client without client_id."""
    token = assertion("speaker", OctKey.import_key(JWT_SECRET), "HS256")
    assert (await auth(jwks, form=jwt_form(token))).client_id == "speaker"


async def test_private_key_jwt_via_jwks_uri_is_cached(jwks: JwksCache, fetches: Fetches) -> None:
    """The client's jwks_uri is fetched once for several authentications."""
    values = Values(MemoryStore())
    for jti in ("a", "b", "c"):
        token = assertion("pos", POS_KEY, "ES256", jti=jti)
        client = await auth(jwks, form=jwt_form(token, client_id="pos"), values=values)
        assert client.client_id == "pos"
    assert fetches.count == 1
    with capture_logs() as logs, pytest.raises(InvalidClientError, match="authentication failed"):
        await auth(jwks, form=jwt_form(assertion("pos", POS_KEY, "ES256", jti="a")), values=values)
    assert "used before" in logs[-1]["reason"]


async def test_jwt_client_id_must_match_assertion(jwks: JwksCache) -> None:
    """A form client_id that differs from the assertion's sub is refused."""
    token = assertion("pos", POS_KEY, "ES256")
    with pytest.raises(InvalidClientError, match="does not match"):
        await auth(jwks, form=jwt_form(token, client_id="speaker"))


async def test_jwt_method_mismatch(jwks: JwksCache) -> None:
    """An HMAC assertion for a private_key_jwt client is a method mismatch."""
    token = assertion("pos", OctKey.import_key(JWT_SECRET), "HS256")
    with capture_logs() as logs, pytest.raises(InvalidClientError, match="authentication failed"):
        await auth(jwks, form=jwt_form(token))
    assert logs[-1]["reason"].startswith("client_secret_jwt is not")


async def test_jwt_wrong_assertion_type(jwks: JwksCache) -> None:
    """Only the RFC 7523 jwt-bearer assertion type is accepted."""
    token = assertion("pos", POS_KEY, "ES256")
    form = {"client_assertion_type": "urn:example:saml", "client_assertion": token}
    with pytest.raises(InvalidClientError, match="client_assertion_type"):
        await auth(jwks, form=form)


async def test_jwt_unknown_client(jwks: JwksCache) -> None:
    """An assertion for an unknown client is invalid_client."""
    token = assertion("ghost", POS_KEY, "ES256")
    with pytest.raises(InvalidClientError, match="authentication failed") as info:
        await auth(jwks, form=jwt_form(token))
    assert info.value.headers == CHALLENGE


async def test_verified_basic_credentials_are_remembered_and_still_checked(
    jwks: JwksCache,
) -> None:
    """A verified Basic header is looked up next time; a failure is never remembered."""
    verified: dict[str, ClientConfig] = {}
    good = basic("call.center", BASIC_SECRET)
    wrong = basic("call.center", BASIC_SECRET + "x")

    async def call(header: str, form: dict[str, str] | None = None) -> ClientConfig:
        return await authenticate_client(
            TENANT,
            authorization=header,
            form=form or {},
            audiences={ISSUER, TOKEN_URL},
            jwks=jwks,
            values=Values(MemoryStore()),
            now=NOW,
            verified_basic=verified,
        )

    with pytest.raises(InvalidClientError):
        await call(wrong)
    assert verified == {}
    assert (await call(good)).client_id == "call.center"
    assert list(verified) == [good[6:]]
    assert (await call(good)).client_id == "call.center"
    with pytest.raises(InvalidClientError, match="does not match"):
        await call(good, {"client_id": "branch"})
    with pytest.raises(InvalidRequestError, match="exactly one"):
        await call(good, {"client_id": "call.center", "client_secret": BASIC_SECRET})
    with pytest.raises(InvalidClientError):
        await call(wrong)
