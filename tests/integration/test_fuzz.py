"""Hypothesis fuzzing of every endpoint: no input produces a 5xx; every refusal is OAuth JSON.

The app is the real one (memory store, the example and SMS link connectors)
behind Litestar's test client. Requests mix well-formed pieces (valid client
credentials, known parameter names, the SMS link route) with hostile ones
(deeply nested JSON in JWS segments and authorization_details, random bytes,
wrong content types, odd paths). The budget is bounded by ``max_examples``
(about 20 s in all on the 2-core CI machine).

The SMS approval page answers a person, not a client: its own HTML refusals
(an unknown or used link) are pages, so HTML answers of that route are exempt
from the JSON rule; everything the gateway itself refuses there is JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry

SECRET = "fuzz-basic-secret-0123456789"
POST_SECRET = "fuzz-post-secret-0123456789"
JWT_SECRET = "fuzz-jwt-secret-0123456789ab"
BUDGET = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def fuzz_config(tmp: Path) -> str:
    tenant = {
        "id": "acme",
        "issuer": "http://testserver.local/acme",
        "keys": [{"kid": "k1", "alg": "ES256", "file": f"{tmp}/k1.jwk", "generate": True}],
        "subject": {"salt": "fuzz-subject-salt-0123456789"},
        "connectors": {
            "example": {
                "type": "example",
                "people": [{"hint": "ssn:199001011239", "name": "Karl", "user_code": "1"}],
            },
            "sms": {"type": "smslink", "sender": {"type": "outbox"}},
        },
        "routes": [
            {"login_hint": "tel:*", "connector": "sms"},
            {"login_hint": "ssn", "connector": "example"},
        ],
        "clients": [
            {
                "client_id": "basic",
                "auth": {"method": "client_secret_basic", "secret": SECRET},
                "scopes": ["openid", "profile", "phone"],
            },
            {
                "client_id": "post",
                "auth": {"method": "client_secret_post", "secret": POST_SECRET},
                "scopes": ["openid"],
                "delivery_mode": "ping",
                "notification_endpoint": "https://rp.example/cb",
            },
            {
                "client_id": "jwt",
                "auth": {"method": "client_secret_jwt", "secret": JWT_SECRET},
                "scopes": ["openid"],
            },
        ],
    }
    return yaml.safe_dump({"store": {"url": "memory://"}, "tenants": [tenant]})


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = parse_config(fuzz_config(tmp), registry=load_registry())
    app = create_app(config, run_driver=False)
    with TestClient(app=app, base_url="http://testserver.local") as test_client:
        yield test_client


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
deep_json = st.integers(min_value=30, max_value=5000).map(lambda n: "[" * n + "]" * n)
json_text = st.one_of(json_values.map(json.dumps), deep_json, st.text(max_size=40))
jws_like = st.tuples(json_text, json_text, st.binary(max_size=16)).map(
    lambda p: f"{b64(p[0].encode())}.{b64(p[1].encode())}.{b64(p[2])}"
)
header_like = st.tuples(
    st.fixed_dictionaries({"alg": st.sampled_from(["HS256", "ES256", "none", "RS256"])}),
    json_values,
).map(lambda p: b64(json.dumps({**p[0], "x": p[1]}).encode()) + "." + b64(b"{}") + ".c2ln")
values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "openid",
            "openid profile",
            "ssn:199001011239",
            "tel:+46701234567",
            "urn:openid:params:grant-type:ciba",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "basic",
            "post",
            "jwt",
            POST_SECRET,
        ]
    ),
    json_text,
    jws_like,
    header_like,
)
names = st.one_of(
    st.sampled_from(
        [
            "scope",
            "login_hint",
            "login_hint_token",
            "id_token_hint",
            "binding_message",
            "user_code",
            "requested_expiry",
            "acr_values",
            "authorization_details",
            "request",
            "request_uri",
            "client_notification_token",
            "client_id",
            "client_secret",
            "client_assertion",
            "client_assertion_type",
            "grant_type",
            "auth_req_id",
            "csrf",
            "decision",
        ]
    ),
    st.text(max_size=10),
)
forms = st.dictionaries(names, values, max_size=8)
authorizations = st.one_of(
    st.none(),
    st.just("Basic " + base64.b64encode(f"basic:{SECRET}".encode()).decode()),
    st.text(max_size=40).map(lambda t: "Basic " + base64.b64encode(t.encode()).decode()),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(
        lambda t: "Bearer " + t
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)
content_types = st.one_of(
    st.just("application/x-www-form-urlencoded"),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded; charset=latin-1",
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
        ]
    ),
    st.none(),
)
bodies = st.one_of(forms.map(lambda f: urlencode(f).encode()), st.binary(max_size=300))
path_segments = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="/?#"),
    min_size=1,
    max_size=12,
).map(lambda s: quote(s, safe="!$&'()*+,;=:@.~-"))
known_paths = st.sampled_from(
    [
        "/acme/token",
        "/acme/bc-authorize",
        "/acme/userinfo",
        "/acme/introspect",
        "/acme/revoke",
        "/acme/.well-known/openid-configuration",
        "/acme/jwks",
        "/acme/sms/l/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/acme/sms/l/x",
        "/acme/sms/nothing",
        "/acme/example/x",
        "/nobody/token",
        "/acme/./token",
        "/acme/../token",
        "/healthz",
        "/readyz",
        "/metrics",
    ]
)
paths = st.one_of(
    known_paths,
    st.lists(path_segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.tuples(st.just("/acme"), path_segments).map("/".join),
)


def assert_oauth_answer(response: Any, path: str) -> None:
    """No 5xx; a refusal is an OAuth JSON error (HTML pages of the SMS route excepted)."""
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    if response.status_code < 400:
        return
    media_type = response.headers.get("content-type", "")
    if "/sms/l/" in path and media_type.startswith("text/html"):
        return
    assert media_type.startswith("application/json"), (path, response.status_code, media_type)
    if response.request.method == "HEAD":
        return
    body = response.json()
    assert isinstance(body.get("error"), str), (path, body)


@BUDGET
@given(
    path=st.sampled_from(["/acme/token", "/acme/bc-authorize", "/acme/introspect", "/acme/revoke"]),
    body=bodies,
    content_type=content_types,
    authorization=authorizations,
)
def test_form_endpoints(
    client: TestClient[Litestar],
    path: str,
    body: bytes,
    content_type: str | None,
    authorization: str | None,
) -> None:
    """bc-authorize, token, introspect, revoke: fuzzed forms, credentials, content types."""
    headers = {k: v for k, v in (("content-type", content_type), ("authorization", authorization))}
    response = client.post(path, content=body, headers={k: v for k, v in headers.items() if v})
    assert_oauth_answer(response, path)


@BUDGET
@given(method=st.sampled_from(["GET", "POST"]), authorization=authorizations, body=bodies)
def test_userinfo(
    client: TestClient[Litestar], method: str, authorization: str | None, body: bytes
) -> None:
    """userinfo with fuzzed Authorization headers and bodies."""
    headers = {"authorization": authorization} if authorization else {}
    response = client.request(method, "/acme/userinfo", headers=headers, content=body)
    assert_oauth_answer(response, "/acme/userinfo")
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="')


@BUDGET
@given(
    token=path_segments,
    method=st.sampled_from(["GET", "POST"]),
    body=bodies,
    content_type=content_types,
)
def test_connector_routes(
    client: TestClient[Litestar], token: str, method: str, body: bytes, content_type: str | None
) -> None:
    """The SMS link page with fuzzed tokens, forms and content types."""
    path = f"/acme/sms/l/{token}"
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, path, headers=headers, content=body)
    assert_oauth_answer(response, path)


@BUDGET
@given(
    path=paths,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    body=st.binary(max_size=64),
)
def test_any_path(client: TestClient[Litestar], path: str, method: str, body: bytes) -> None:
    """Any method on known and unknown paths."""
    response = client.request(method, path, content=body)
    assert_oauth_answer(response, path)
