"""The connector on its own: link secrets in the state, cancel, races, directory, config errors."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_smslink.connector import SmsLinkConnector
from smslink_support import (
    KNOWN,
    Gateway,
    csrf_of,
    gateway_yaml,
    get,
    outbox,
    post,
    sha256_hex,
    sms_connector,
    start_request,
    token_of,
)

from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import (
    Approved,
    Denied,
    InvalidHint,
    LoginHint,
    Pending,
    UpstreamRejected,
    UpstreamUnavailable,
    UserNotFound,
    load_registry,
)
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.errors import ConfigError


async def test_link_has_256_bits_and_only_its_hash_is_stored(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """The token carries >= 128 bits (256), and no stored key, value or session holds it."""
    connector = make_connector()

    started = await connector.start(start_request(gateway))
    token = token_of(outbox(connector).messages[0].link)

    assert len(base64.urlsafe_b64decode(token + "=")) * 8 == 256
    assert started.poll_after is None
    assert started.session == {"link": sha256_hex(token)}
    assert f"link:{sha256_hex(token)}" in gateway.state.data
    for key, (value, _) in gateway.state.data.items():
        assert token not in key
        assert not isinstance(value, bytes) or token.encode() not in value
    assert KNOWN not in "".join(gateway.state.data)


async def test_tokens_differ_per_request(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """Every request gets a fresh random token."""
    connector = make_connector(rate_limit={"per_number": None, "per_client": None})

    for i in range(5):
        await connector.start(start_request(gateway, ref=f"r{i}"))

    tokens = {token_of(m.link) for m in outbox(connector).messages}
    assert len(tokens) == 5


async def test_link_expires_with_the_request(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector], clock: FakeClock
) -> None:
    """The stored link lives exactly as long as the CIBA request."""
    connector = make_connector()
    request = start_request(gateway)

    started = await connector.start(request)

    _, expires_at = gateway.state.data[f"link:{started.session['link']}"]
    assert expires_at == request.expires_at


async def test_cancel_invalidates_the_link(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """After cancel the page shows the not-valid page and nothing can be decided."""
    connector = make_connector()
    started = await connector.start(start_request(gateway))
    token = token_of(outbox(connector).messages[0].link)
    csrf = csrf_of((await connector.show(get(token))).body)  # type: ignore[arg-type]

    await connector.cancel(started.session)

    assert (await connector.show(get(token))).status == 404
    assert (await connector.decide(post(token, csrf, "approve"))).status == 404
    assert gateway.resolved == []


async def test_concurrent_posts_decide_once(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """Two simultaneous answers: exactly one resolves, the other sees "already used"."""
    connector = make_connector()
    await connector.start(start_request(gateway))
    token = token_of(outbox(connector).messages[0].link)
    csrf = csrf_of((await connector.show(get(token))).body)  # type: ignore[arg-type]

    answers = await asyncio.gather(
        connector.decide(post(token, csrf, "approve")),
        connector.decide(post(token, csrf, "decline")),
    )

    assert sorted(a.status for a in answers) == [200, 410]
    assert len(gateway.resolved) == 1


async def test_outcomes_carry_the_identity(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector], clock: FakeClock
) -> None:
    """Approve resolves with the tel identity; decline with Denied."""
    connector = make_connector()
    await connector.start(start_request(gateway, ref="a"))
    await connector.start(start_request(gateway, ref="b"))
    first, second = (token_of(m.link) for m in outbox(connector).messages)

    for token, choice in ((first, "approve"), (second, "decline")):
        csrf = csrf_of((await connector.show(get(token))).body)  # type: ignore[arg-type]
        await connector.decide(post(token, csrf, choice))

    (ref_a, approved), (ref_b, denied) = gateway.resolved
    assert ref_a == "a" and isinstance(approved, Approved)
    identity = approved.identity
    assert (identity.scheme, identity.subject) == ("tel", KNOWN)
    assert identity.claims == {"phone_number": KNOWN, "phone_number_verified": True}
    assert identity.amr == ("sms",) and identity.acr == "urn:ciba-gateway:acr:sms-link"
    assert identity.auth_time == int(clock())
    assert ref_b == "b" and isinstance(denied, Denied)


async def test_csrf_token_is_bound_to_its_link(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """The form token of one link does not work for another."""
    connector = make_connector()
    await connector.start(start_request(gateway, ref="a"))
    await connector.start(start_request(gateway, ref="b"))
    first, second = (token_of(m.link) for m in outbox(connector).messages)
    csrf_first = csrf_of((await connector.show(get(first))).body)  # type: ignore[arg-type]

    answer = await connector.decide(post(second, csrf_first, "approve"))

    assert answer.status == 403
    assert gateway.resolved == []


async def test_failed_send_leaves_no_link(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """A refused send raises UpstreamRejected and removes the link it had stored."""
    transport = httpx.MockTransport(lambda request: httpx.Response(400, json={"code": 21211}))
    connector = make_connector(transport=transport, sender={"type": "http", "url": "https://sms"})

    with pytest.raises(UpstreamRejected):
        await connector.start(start_request(gateway))

    assert not any(key.startswith("link:") for key in gateway.state.data)


async def test_a_sender_bug_is_unavailable_and_leaves_no_link(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """A sender plugin raising something else than a ConnectorError: UpstreamUnavailable."""
    connector = make_connector()

    async def broken(message: object) -> object:
        raise RuntimeError("plugin bug")

    connector.sender.send = broken  # type: ignore[method-assign]

    with pytest.raises(UpstreamUnavailable, match="could not be sent") as raised:
        await connector.start(start_request(gateway))

    assert isinstance(raised.value.__cause__, RuntimeError)
    assert not any(key.startswith("link:") for key in gateway.state.data)


async def test_poll_only_says_pending(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """The driver need not poll; if it does, it hears "pending, come back much later"."""
    connector = make_connector()

    result = await connector.poll({"link": "x"})

    assert isinstance(result, Pending) and result.poll_after >= 600


async def test_non_tel_hint_is_invalid(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """A hint that is not a phone number is refused as InvalidHint."""
    connector = make_connector()
    request = msgspec.structs.replace(
        start_request(gateway), login_hint=LoginHint(kind="email", value="a@example.com")
    )

    with pytest.raises(InvalidHint):
        await connector.start(request)


async def test_http_directory_get_variant(
    gateway: Gateway, make_connector: Callable[..., SmsLinkConnector]
) -> None:
    """GET sends the number as a query parameter; 404 is an unknown user."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404)

    directory = {"type": "http", "url": "https://dir.example/known", "method": "GET"}
    connector = make_connector(transport=httpx.MockTransport(handler), directory=directory)

    with pytest.raises(UserNotFound):
        await connector.start(start_request(gateway))

    assert seen[0].method == "GET" and seen[0].url.params["number"] == KNOWN
    assert outbox(connector).messages == []


@pytest.mark.parametrize(("status", "calls"), [(503, 3), (500, 1), (401, 1)])
async def test_http_directory_failures_are_unavailable(
    gateway: Gateway,
    make_connector: Callable[..., SmsLinkConnector],
    status: int,
    calls: int,
) -> None:
    """Directory outages (503 retried, other answers not) become UpstreamUnavailable."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert json.loads(request.content) == {"number": KNOWN}
        return httpx.Response(status)

    directory = {"type": "http", "url": "https://dir.example/known"}
    connector = make_connector(transport=httpx.MockTransport(handler), directory=directory)

    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(gateway))

    assert len(seen) == calls


@pytest.mark.parametrize(
    ("override", "path", "message"),
    [
        ({"message_template": "Open {link.__class__}"}, "sms", "may use only"),
        ({"message_template": "Hello {client_name}"}, "sms", "must contain {link}"),
        ({"message_template": "Open {link} {"}, "sms.message_template", "Single '{'"),
        ({"sender": {"type": "pigeon"}}, "sms", "unknown sender type 'pigeon'"),
        ({"sender": {"type": "http"}}, "sms.sender", "missing required key 'url'"),
        (
            {"sender": {"type": "http", "url": "https://sms", "auth": {"type": "basic"}}},
            "sms.sender.auth",
            "missing required key 'username'",
        ),
        ({"allowed_prefixes": ["46"]}, "sms", "not an E.164 prefix"),
        ({"directory": {"type": "allow_list", "numbers": ["0701234567"]}}, "sms", "not E.164"),
        ({"directory": {"type": "ldap"}}, "sms.directory", ""),
        ({"rate_limit": {"per_number": 0}}, "sms.rate_limit.per_number", ""),
    ],
)
def test_config_errors_name_the_connector(
    tmp_path: Path, override: dict[str, Any], path: str, message: str
) -> None:
    """check-config reports bad connector settings at the connector's YAML path."""
    text = gateway_yaml(
        tmp_path, issuer="https://gw.example/acme", connector=sms_connector(tmp_path, **override)
    )

    with pytest.raises(ConfigError) as caught:
        parse_config(text, registry=load_registry())

    (problem,) = caught.value.problems
    assert problem.path.startswith(f"tenants[0].connectors.{path}")
    assert message in problem.message
