"""The connector in poll mode against a real third-party CIBA provider (panva's oidc-provider).

Each test starts the provider (node), sends a real backchannel request, decides
on the person's behalf through the provider's admin hook and polls its token
endpoint. Tampering happens on the wire, in a transport between the connector
and the provider: the provider itself signs only honest tokens.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import ConnectorFactory, start_request
from gateways import free_port
from joserfc import jwt
from joserfc.jwk import import_key
from joserfc.jws import extract_compact
from op_support import KARI, KARI_EMAIL, LIAR, OLA, TestOp

from ciba_gateway.connector import (
    Approved,
    Denied,
    Expired,
    Failed,
    InvalidHint,
    Pending,
    PollResult,
    UpstreamRejected,
    UpstreamUnavailable,
    UserNotFound,
)
from ciba_gateway.tokens.keys import generate_private_jwk

Rewrite = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


class Wire(httpx.AsyncBaseTransport):
    """Real HTTP to the provider; counts requests by path and may rewrite the ID token."""

    def __init__(self, op: TestOp) -> None:
        self.op = op
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: Counter[str] = Counter()
        self.rewrite: Rewrite | None = None
        self.signer: dict[str, Any] | None = None
        """The private JWK that signs rewritten tokens (default: the provider's own)."""
        self.userinfo_sub: str | None = None
        """A ``sub`` written into userinfo answers."""
        self.metadata_patch: dict[str, Any] = {}
        """Members written into the discovery answer."""
        self.faults: dict[str, list[int]] = {}
        """Path -> statuses answered instead of the provider, one per request."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        if self.faults.get(request.url.path):
            status = self.faults[request.url.path].pop(0)
            return httpx.Response(status, json={"error": "server_error"} if status >= 500 else {})
        response = await self.inner.handle_async_request(request)
        if self.metadata_patch and request.url.path == "/.well-known/openid-configuration":
            body = json.loads(await response.aread())
            return httpx.Response(200, json={**body, **self.metadata_patch})
        if self.userinfo_sub is not None and request.url.path == "/me":
            body = json.loads(await response.aread())
            return httpx.Response(response.status_code, json={**body, "sub": self.userinfo_sub})
        if self.rewrite is None or request.url.path != "/token" or response.status_code != 200:
            return response
        body = json.loads(await response.aread())
        token = extract_compact(body["id_token"].encode())
        header, claims = self.rewrite(dict(token.protected), json.loads(token.payload))
        key = import_key(self.signer or self.op.keys[0])
        body["id_token"] = jwt.encode(header, claims, key, algorithms=[header["alg"]])
        return httpx.Response(200, json=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def settle(connector: Any, session: dict[str, Any], limit: float = 20) -> PollResult:
    """Poll like the driver does until the outcome is not Pending."""
    deadline = time.monotonic() + limit
    while True:
        result = await connector.poll(session)
        if not isinstance(result, Pending):
            return result
        if time.monotonic() > deadline:
            raise AssertionError("still pending")
        session = result.session or session
        await asyncio.sleep(result.poll_after)


async def approved_flow(connector: Any, op: TestOp, value: str = OLA) -> PollResult:
    started = await connector.start(start_request(value))
    waiting = await op.wait_pending()
    await op.decide(waiting["auth_req_id"], "approve")
    return await settle(connector, started.session)


@pytest.mark.parametrize("client_id", ["gw-basic", "gw-post", "gw-jwt"])
async def test_approval_maps_the_verified_id_token(
    make_connector: ConnectorFactory, op: TestOp, client_id: str
) -> None:
    """With each client authentication the approved person becomes the mapped Identity."""
    connector = make_connector(client_id, acr_values=["urn:test:op:high"])
    started = await connector.start(start_request(OLA, binding_message="Order 4711"))

    waiting = await op.wait_pending()
    assert waiting["client_id"] == client_id
    assert waiting["login_hint"] == OLA
    assert waiting["binding_message"] == "Order 4711"
    assert waiting["acr_values"] == "urn:test:op:high"
    assert waiting["scope"] == "openid profile nnin"
    assert 110 <= int(waiting["requested_expiry"]) <= 120
    assert started.poll_after == 0.5
    assert isinstance(await connector.poll(started.session), Pending)

    await op.decide(waiting["auth_req_id"], "approve")
    result = await settle(connector, started.session)

    assert isinstance(result, Approved), result
    identity = result.identity
    assert (identity.scheme, identity.subject) == ("no-nnin", "op-sub-ola")
    assert (identity.national_id, identity.country) == (OLA, "NO")
    assert identity.claims == {
        "name": "Ola Nordmann",
        "given_name": "Ola",
        "family_name": "Nordmann",
        "birthdate": "1985-06-24",
    }
    assert identity.acr == "urn:test:op:high"
    assert identity.amr == ("pwd", "otp")
    assert abs(identity.auth_time - time.time()) < 30


async def test_passthrough_can_be_switched_off(
    make_connector: ConnectorFactory, op: TestOp
) -> None:
    """binding_message and requested_expiry are not sent when the config says so."""
    connector = make_connector(binding_message=False, requested_expiry=False)
    await connector.start(start_request(KARI, binding_message="Order 4711"))

    waiting = await op.wait_pending()
    assert waiting.get("binding_message") is None
    assert waiting.get("requested_expiry") is None


async def test_login_hint_templates(make_connector: ConnectorFactory, op: TestOp) -> None:
    """Only the configured kinds are served, each through its template."""
    connector = make_connector(login_hint={"ssn": "{value}", "email": "{value}"})
    with pytest.raises(InvalidHint, match="tel"):
        await connector.start(start_request("+4791234567", kind="tel"))

    started = await connector.start(start_request(KARI_EMAIL, kind="email"))
    waiting = await op.wait_pending()
    assert waiting["login_hint"] == KARI_EMAIL
    await op.decide(waiting["auth_req_id"], "approve")
    result = await settle(connector, started.session)
    assert isinstance(result, Approved)
    assert result.identity.national_id == KARI


async def test_denial_is_denied(make_connector: ConnectorFactory, op: TestOp) -> None:
    """The person's refusal upstream (access_denied) is Denied."""
    connector = make_connector()
    started = await connector.start(start_request(OLA))
    await op.decide((await op.wait_pending())["auth_req_id"], "deny")

    assert isinstance(await settle(connector, started.session), Denied)


async def test_upstream_expiry_is_expired(make_connector: ConnectorFactory, op: TestOp) -> None:
    """requested_expiry follows the gateway's lifetime; past it the provider says expired_token."""
    connector = make_connector()
    started = await connector.start(start_request(OLA, expires_at=time.time() + 1.5))
    assert (await op.wait_pending())["requested_expiry"] == "2"
    await asyncio.sleep(2.2)

    result = await connector.poll(started.session)

    assert isinstance(result, Expired)
    assert "expired_token" in result.reason


async def test_unknown_user_is_user_not_found(make_connector: ConnectorFactory) -> None:
    """A hint the provider cannot resolve (unknown_user_id) raises UserNotFound at start."""
    connector = make_connector()
    with pytest.raises(UserNotFound):
        await connector.start(start_request("13097248022"))


async def test_refused_binding_message_is_invalid_hint(make_connector: ConnectorFactory) -> None:
    """The provider's invalid_binding_message becomes an invalid_request for the client."""
    connector = make_connector()
    with pytest.raises(InvalidHint, match="binding_message"):
        await connector.start(start_request(OLA, binding_message="<script>"))


async def test_someone_else_is_refused(make_connector: ConnectorFactory, op: TestOp) -> None:
    """An approval for another national id than the hint named fails."""
    result = await approved_flow(make_connector(), op, LIAR)

    assert isinstance(result, Failed)
    assert "another national id" in result.reason


def _without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in claims.items() if key != name}


def _wrong_key(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, claims


def _other_aud(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "aud": "someone-else"}


def _other_auth_req_id(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "urn:openid:params:jwt:claim:auth_req_id": "another-request"}


def _bad_at_hash(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}


def _expired(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "exp": int(time.time()) - 120}


def _other_iss(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "iss": "https://evil.example"}


def _two_audiences(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "aud": [claims["aud"], "someone-else"]}


def _foreign_azp(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "azp": "someone-else"}


def _future_iat(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return header, {**claims, "iat": int(time.time()) + 600}


def _hmac(header: dict[str, Any], claims: dict[str, Any]) -> Any:
    return {**header, "alg": "HS256"}, claims


@pytest.mark.parametrize(
    ("rewrite", "reason"),
    [
        (_wrong_key, "signature"),
        (_hmac, "alg"),
        (_two_audiences, "azp"),
        (_foreign_azp, "azp"),
        (_future_iat, "iat"),
        (_other_aud, "aud"),
        (_other_iss, "iss"),
        (_expired, "exp"),
        (_other_auth_req_id, "auth_req_id"),
        (_bad_at_hash, "at_hash"),
    ],
    ids=[
        "wrong-key",
        "hmac",
        "two-aud-no-azp",
        "foreign-azp",
        "future-iat",
        "wrong-aud",
        "wrong-iss",
        "expired",
        "other-auth_req_id",
        "at_hash",
    ],
)
async def test_tampered_id_token_is_refused(
    make_connector: ConnectorFactory, op: TestOp, rewrite: Rewrite, reason: str
) -> None:
    """A token the provider's key did not sign, or whose claims do not fit, issues nothing."""
    wire = Wire(op)
    connector = make_connector(transport=wire)
    if rewrite is _wrong_key:
        # Same kid, another key: what a forger without the provider's key can do.
        wire.signer = generate_private_jwk("RS256", op.keys[0]["kid"])
    if rewrite is _hmac:
        # HS256 over a secret the forger picks: refused before any key is tried.
        wire.signer = {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
    wire.rewrite = rewrite

    result = await approved_flow(connector, op)

    assert isinstance(result, Failed), result
    assert reason in result.reason


async def test_key_rotation_upstream_is_followed(
    make_connector: ConnectorFactory, op: TestOp
) -> None:
    """After the provider rotates its key, one JWKS re-fetch verifies the new kid."""
    wire = Wire(op)
    connector = make_connector(transport=wire)
    assert isinstance(await approved_flow(connector, op), Approved)
    assert wire.paths["/jwks"] == 1

    new_key = await op.rotate()
    second = await approved_flow(connector, op, KARI)

    assert isinstance(second, Approved), second
    assert second.identity.national_id == KARI
    assert wire.paths["/jwks"] == 2
    assert wire.paths["/.well-known/openid-configuration"] == 1
    assert new_key["kid"] == "op-rs-2"


async def test_upstream_faults_are_retried_not_fatal(
    make_connector: ConnectorFactory, op: TestOp
) -> None:
    """5xx at start is temporarily unavailable; 5xx or 404 at the token endpoint is retried
    later, with discovery read again first (the endpoint may have moved)."""
    wire = Wire(op)
    connector = make_connector(transport=wire)
    wire.faults["/backchannel"] = [503]
    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(OLA))
    wire.faults["/backchannel"] = [500]
    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(OLA))

    started = await connector.start(start_request(OLA))
    await op.decide((await op.wait_pending())["auth_req_id"], "approve")
    wire.faults["/token"] = [503, 502, 404]
    with pytest.raises(UpstreamUnavailable):
        await connector.poll(started.session)  # 503, not retried: it may have been redeemed
    with pytest.raises(UpstreamUnavailable):
        await connector.poll(started.session)
    with pytest.raises(UpstreamUnavailable):
        await connector.poll(started.session)  # 404: the endpoint may have moved
    discovery_reads = wire.paths["/.well-known/openid-configuration"]

    result = await connector.poll(started.session)

    assert isinstance(result, Approved), result
    assert wire.paths["/.well-known/openid-configuration"] == discovery_reads + 1
    assert wire.paths["/token"] == 4


async def test_unreachable_upstream_is_unavailable(make_connector: ConnectorFactory) -> None:
    """Nobody listening at the issuer: start says temporarily unavailable, after the retries."""
    connector = make_connector(issuer=f"http://127.0.0.1:{free_port()}", http={"retries": 2})
    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(OLA))


async def test_userinfo_fills_claims_with_the_same_sub(
    make_connector: ConnectorFactory, op: TestOp
) -> None:
    """With userinfo on, a claim the ID token lacks comes from the provider's userinfo."""
    wire = Wire(op)
    # The ID token arrives without family_name (re-signed with the provider's own key).
    wire.rewrite = lambda header, claims: (header, _without(claims, "family_name"))
    connector = make_connector(transport=wire, userinfo=True)

    result = await approved_flow(connector, op)

    assert isinstance(result, Approved), result
    assert wire.paths["/me"] == 1
    assert result.identity.claims["family_name"] == "Nordmann"


async def test_userinfo_of_another_sub_fails(make_connector: ConnectorFactory, op: TestOp) -> None:
    """A userinfo answer about another subject is not used: the request fails."""
    wire = Wire(op)
    wire.userinfo_sub = "someone-else"
    connector = make_connector(transport=wire, userinfo=True)

    result = await approved_flow(connector, op)

    assert isinstance(result, Failed)
    assert "userinfo sub" in result.reason


@pytest.mark.parametrize(
    ("patch", "config", "reason"),
    [
        (
            {"backchannel_token_delivery_modes_supported": ["poll"]},
            {"delivery_mode": "ping"},
            "ping",
        ),
        ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, {}, "client_secret_basic"),
    ],
    ids=["delivery-mode", "auth-method"],
)
async def test_unsupported_settings_are_refused_before_sending(
    make_connector: ConnectorFactory,
    op: TestOp,
    patch: dict[str, Any],
    config: dict[str, Any],
    reason: str,
) -> None:
    """A delivery mode or client auth method discovery does not list is refused unsent."""
    wire = Wire(op)
    wire.metadata_patch = patch
    connector = make_connector(transport=wire, **config)

    with pytest.raises(UpstreamRejected, match=reason):
        await connector.start(start_request(OLA))
    assert wire.paths["/backchannel"] == 0
