"""bc-authorize with the SMS connector: who is served, rate limits, the text, what is stored."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ciba_gateway_smslink.connector import SmsLinkConnector
from smslink_support import (
    CLIENT_NAME,
    KNOWN,
    NORWAY,
    STATE_NS,
    UNKNOWN,
    Harness,
    sha256_hex,
    token_of,
)

from ciba_gateway.connector import ConnectorDeps, load_registry

HarnessFactory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


async def test_unknown_number_is_unknown_user_id(harness: Harness) -> None:
    """A number the allow-list directory does not know gets unknown_user_id and no text."""
    response = await harness.bc_authorize(UNKNOWN)

    assert response.status_code == 400
    assert response.json()["error"] == "unknown_user_id"
    assert harness.outbox == []


async def test_number_outside_allowed_prefixes_is_invalid_request(
    make_harness: HarnessFactory,
) -> None:
    """A number of a country the tenant does not serve is an invalid_request."""
    async with make_harness(allowed_prefixes=["+46"], directory=None) as harness:
        response = await harness.bc_authorize(NORWAY)

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        assert "country" in response.json()["error_description"]
        assert harness.outbox == []


async def test_without_directory_every_allowed_number_is_served(
    make_harness: HarnessFactory,
) -> None:
    """Without a directory, any number with an allowed prefix gets a link."""
    async with make_harness(directory=None) as harness:
        response = await harness.bc_authorize(UNKNOWN)

        assert response.status_code == 200
        assert harness.outbox[-1].to == UNKNOWN


async def test_text_follows_the_template(make_harness: HarnessFactory) -> None:
    """The text is the tenant's template filled with client name, binding message and link."""
    template = "{client_name}: {binding_message} -> {link}"
    async with make_harness(message_template=template) as harness:
        await harness.start(binding_message="Code 4711")
        await harness.start(NORWAY, binding_message=None)

        with_message, without_message = harness.outbox
        assert with_message.text == f"{CLIENT_NAME}: Code 4711 -> {with_message.link}"
        assert without_message.text == f"{CLIENT_NAME}: sign in -> {without_message.link}"
        assert with_message.to == KNOWN
        assert with_message.link.startswith("http://testserver.local/acme/sms/l/")


async def test_default_template(harness: Harness) -> None:
    """The default text names the client, the binding message and the link."""
    await harness.start(binding_message="Order 17")

    message = harness.outbox[-1]
    assert message.text == f"{CLIENT_NAME} asks you to confirm: Order 17. Open {message.link}"


async def test_store_keeps_only_the_hash_of_the_link(harness: Harness) -> None:
    """The request's session and the connector state hold SHA-256(token), never the token."""
    auth_req_id, link = await harness.start()
    token = token_of(link)
    digest = sha256_hex(token)

    stored = await harness.app.state.gateway.engine.get(auth_req_id)
    record = await harness.store.get_value(STATE_NS, f"link:{digest}")

    assert stored.session == {"link": digest}
    assert record is not None
    assert token not in record.decode()
    assert await harness.store.get_value(STATE_NS, f"link:{token}") is None
    assert token not in json.dumps(stored.session)


async def test_per_number_rate_limit(harness: Harness) -> None:
    """The fourth text to one number within the window is refused; other numbers still work."""
    for _ in range(3):
        assert (await harness.bc_authorize(KNOWN)).status_code == 200

    refused = await harness.bc_authorize(KNOWN)
    other = await harness.bc_authorize(NORWAY)

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert "too many" in refused.json()["error_description"]
    assert other.status_code == 200
    assert len(harness.outbox) == 4


async def test_per_number_limit_resets_after_the_window(harness: Harness) -> None:
    """Once the window has passed, the number may get texts again."""
    for _ in range(3):
        await harness.bc_authorize(KNOWN)
    assert (await harness.bc_authorize(KNOWN)).status_code == 400

    harness.clock.advance(601)

    assert (await harness.bc_authorize(KNOWN)).status_code == 200


async def test_per_client_rate_limit(make_harness: HarnessFactory) -> None:
    """A client over its limit gets temporarily_unavailable; another client is unaffected."""
    limits = {"per_number": None, "per_client": 2, "window": 600}
    async with make_harness(rate_limit=limits, directory=None) as harness:
        for number in ("+46700000001", "+46700000002"):
            assert (await harness.bc_authorize(number)).status_code == 200

        refused = await harness.bc_authorize("+46700000003")
        other_client = await harness.bc_authorize(
            "+46700000003", client_id="branch", scope="openid phone"
        )

        assert refused.status_code == 503
        assert refused.json()["error"] == "temporarily_unavailable"
        assert "too many" in refused.json()["error_description"]
        assert other_client.status_code == 200
        assert len(harness.outbox) == 3


async def test_failed_send_is_temporarily_unavailable(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    """When the sender fails, bc-authorize answers temporarily_unavailable and stores nothing."""
    missing = tmp_path / "no-such-dir" / "outbox.jsonl"
    async with make_harness(sender={"type": "outbox", "path": str(missing)}) as harness:
        response = await harness.bc_authorize()

        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert await harness.store.count_pending() == 0


def _directory(request: httpx.Request) -> httpx.Response:
    """The tenant's directory service: knows one number and its name."""
    number = json.loads(request.content)["number"]
    if request.headers.get("authorization") != "Bearer dir-token":
        return httpx.Response(401)
    if number == KNOWN:
        return httpx.Response(200, json={"name": "Karl Karlsson"})
    return httpx.Response(404)


class _DirectoryWired(SmsLinkConnector):
    """The real connector with its HTTP directory behind a MockTransport."""

    def __init__(self, config: Any, deps: ConnectorDeps) -> None:
        super().__init__(config, deps, transport=httpx.MockTransport(_directory))


@pytest.fixture
async def http_directory(make_harness: HarnessFactory) -> Any:
    registry = load_registry().with_connector("smslink", _DirectoryWired)
    directory = {
        "type": "http",
        "url": "https://directory.example/lookup",
        "headers": {"Authorization": "Bearer dir-token"},
    }
    async with make_harness(registry=registry, directory=directory) as harness:
        yield harness


async def test_http_directory_unknown_is_unknown_user_id(http_directory: Harness) -> None:
    """The HTTP directory's 404 becomes unknown_user_id at bc-authorize."""
    response = await http_directory.bc_authorize(NORWAY)

    assert response.status_code == 400
    assert response.json()["error"] == "unknown_user_id"
    assert http_directory.outbox == []


async def test_http_directory_known_number_and_name(http_directory: Harness) -> None:
    """The HTTP directory's 200 lets the text go out and its name reaches the ID token."""
    auth_req_id, link = await http_directory.start(KNOWN)

    await http_directory.submit(link, "approve")
    tokens = await http_directory.token(auth_req_id)

    claims = await http_directory.claims(tokens.json()["id_token"])
    assert claims["name"] == "Karl Karlsson"
