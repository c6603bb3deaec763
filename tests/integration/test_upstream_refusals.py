"""How connector refusals at start reach the client, and login_hint_token end to end."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import (
    BaseConnector,
    ConnectorDeps,
    InvalidAuthorizationDetails,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UpstreamRejected,
    UpstreamUnavailable,
    UserBusy,
    UserNotFound,
    load_registry,
)
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.tokens.keys import generate_private_jwk

SECRET = "refusals-secret-0123456789abcdef"


class RefusingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which error each phone number's start raises."""

    refusals: dict[str, str] = msgspec.field(default_factory=dict)


class RefusingConnector(BaseConnector):
    """Raises the connector error its config names for a number; otherwise pending forever."""

    Config = RefusingConfig
    login_hint_kinds = frozenset({"tel"})
    authorization_details_types = frozenset({"callback"})
    errors = {
        "busy": UserBusy,
        "unknown": UserNotFound,
        "rejected": UpstreamRejected,
        "down": UpstreamUnavailable,
        "details": InvalidAuthorizationDetails,
    }

    def __init__(self, config: RefusingConfig, deps: ConnectorDeps) -> None:
        self.config = config

    async def start(self, request: StartRequest) -> Started:
        kind = self.config.refusals.get(request.login_hint.value)
        if kind is not None:
            raise self.errors[kind](f"refused: {kind}")
        return Started(session={"n": request.login_hint.value}, poll_after=0.0)

    async def poll(self, session: dict[str, Any]) -> PollResult:
        if session["n"] == "+46700000009":
            raise UpstreamRejected("the upstream forgot the order")
        return Pending(poll_after=60)


def yaml(tmp: Path, public_jwk: dict[str, Any]) -> str:
    jwks = msgspec.json.encode({"keys": [public_jwk]}).decode()
    return f"""
store: {{url: "memory://"}}
tenants:
  - id: t
    issuer: http://testserver.local/t
    keys: [{{kid: t-1, alg: ES256, file: {tmp}/t-1.jwk, generate: true}}]
    subject: {{salt: "t-subject-salt-0123456789"}}
    connectors:
      refusing:
        type: refusing
        refusals: {{"+46700000001": busy, "+46700000002": unknown, "+46700000003": rejected,
                    "+46700000004": down, "+46700000005": details}}
    routes: [{{login_hint: tel, connector: refusing}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
      - client_id: keyed
        auth: {{method: private_key_jwt, jwks: {jwks}}}
"""


@pytest.fixture
async def client(tmp_path: Path, clock: FakeClock) -> Any:
    private = generate_private_jwk("ES256", "keyed-1")
    public = {k: v for k, v in private.items() if k != "d"}
    registry = load_registry().with_connector("refusing", RefusingConnector)
    config = parse_config(yaml(tmp_path, public), registry=registry)
    app = create_app(config, registry=registry, clock=clock, run_driver=False)
    async with AsyncTestClient(app, base_url="http://testserver.local") as c:
        c.private_jwk = private  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize(
    ("number", "status", "error"),
    [
        ("+46700000001", 400, "invalid_request"),
        ("+46700000002", 400, "unknown_user_id"),
        ("+46700000003", 403, "access_denied"),
        ("+46700000004", 503, "temporarily_unavailable"),
        ("+46700000005", 400, "invalid_authorization_details"),
    ],
)
async def test_start_refusals_map_to_ciba_errors(
    client: Any, number: str, status: int, error: str
) -> None:
    """Each ConnectorError raised by start becomes its documented CIBA error; nothing is stored."""
    response = await client.post(
        "/t/bc-authorize",
        auth=("rp", SECRET),
        data={"scope": "openid", "login_hint": f"tel:{number}"},
    )
    assert response.status_code == status
    assert response.json() == {
        "error": error,
        "error_description": f"refused: {error_kind(number)}",
    }
    assert await client.app.state.gateway.engine.store.count_pending() == 0


def error_kind(number: str) -> str:
    return {"1": "busy", "2": "unknown", "3": "rejected", "4": "down", "5": "details"}[number[-1]]


async def test_rejection_while_polling_fails_the_request(client: Any) -> None:
    """UpstreamRejected from poll ends the request as transaction_failed, not retried forever."""
    started = await client.post(
        "/t/bc-authorize",
        auth=("rp", SECRET),
        data={"scope": "openid", "login_hint": "tel:+46700000009"},
    )
    await client.app.state.driver.run_once()
    await client.app.state.driver.drain()
    token = await client.post(
        "/t/token",
        auth=("rp", SECRET),
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": started.json()["auth_req_id"],
        },
    )
    assert token.json() == {
        "error": "transaction_failed",
        "error_description": "the upstream forgot the order",
    }


def hint_token(private: dict[str, Any], number: str, exp_delta: int) -> str:
    now = int(time.time())
    claims = {
        "iss": "keyed",
        "iat": now,
        "exp": now + exp_delta,
        "sub_id": {"format": "phone_number", "phone_number": number},
    }
    return jwt.encode({"alg": "ES256", "kid": "keyed-1"}, claims, ECKey.import_key(private))


def assertion(private: dict[str, Any]) -> str:
    now = int(time.time())
    claims = {
        "iss": "keyed",
        "sub": "keyed",
        "aud": "http://testserver.local/t",
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES256", "kid": "keyed-1"}, claims, ECKey.import_key(private))


async def test_login_hint_token_names_the_user(client: Any) -> None:
    """A signed login_hint_token with a phone sub_id starts a flow; an expired one is refused."""
    private = client.private_jwk
    base = {
        "scope": "openid",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    ok = await client.post(
        "/t/bc-authorize",
        data={
            **base,
            "client_assertion": assertion(private),
            "login_hint_token": hint_token(private, "+46700000008", 300),
        },
    )
    assert ok.status_code == 200, ok.text
    stored = await client.app.state.gateway.engine.get(ok.json()["auth_req_id"])
    assert (stored.login_hint.kind, stored.login_hint.value) == ("tel", "+46700000008")
    expired = await client.post(
        "/t/bc-authorize",
        data={
            **base,
            "client_assertion": assertion(private),
            "login_hint_token": hint_token(private, "+46700000008", -600),
        },
    )
    assert expired.status_code == 400
    assert expired.json()["error"] == "expired_login_hint_token"
