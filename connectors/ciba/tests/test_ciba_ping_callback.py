"""The ping callback route itself: bearer check, single use, body check, one redemption.

The provider (oidc-provider) cannot reach this test's connector, so each test
takes the ``client_notification_token`` the provider received from its admin
hook and delivers the ping as the provider would.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import msgspec
from ciba_gateway_ciba.connector import CibaConnector
from conftest import ConnectorFactory, Resolutions, start_request
from op_support import OLA, TestOp

from ciba_gateway.connector import Approved, CallbackRequest, Denied, Pending


def ping(token: str, auth_req_id: str) -> CallbackRequest:
    return CallbackRequest(
        method="POST",
        path_params={},
        query={},
        form={},
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        body=json.dumps({"auth_req_id": auth_req_id}).encode(),
    )


async def test_ping_redeems_once_and_settles(
    make_connector: ConnectorFactory, op: TestOp, resolutions: Resolutions
) -> None:
    """A genuine ping settles the request once; the same ping again is 401 and settles nothing."""
    connector = make_connector("gw-ping", delivery_mode="ping")
    assert [route.path for route in connector.routes()] == ["/ping"]
    started = await connector.start(start_request(OLA, ref="ref-ping"))
    assert started.poll_after is None
    assert isinstance(await connector.poll(started.session), Pending)
    waiting = await op.wait_pending()
    token = waiting["client_notification_token"]
    assert len(token) >= 43
    assert token not in json.dumps(started.session)
    await op.decide(waiting["auth_req_id"], "approve", expect=500)  # its own ping failed

    first = await connector.ping(ping(token, waiting["auth_req_id"]))
    replay = await connector.ping(ping(token, waiting["auth_req_id"]))

    assert first.status == 204
    assert replay.status == 401
    assert msgspec.json.decode(replay.body)["error"] == "invalid_token"
    [(ref, outcome)] = resolutions.settled
    assert ref == "ref-ping"
    assert isinstance(outcome, Approved)
    assert outcome.identity.national_id == OLA


async def test_ping_with_another_auth_req_id_keeps_the_token(
    make_connector: ConnectorFactory, op: TestOp, resolutions: Resolutions
) -> None:
    """A body naming another request is 400; the token stays usable for the real ping."""
    connector = make_connector("gw-ping", delivery_mode="ping")
    await connector.start(start_request(OLA))
    waiting = await op.wait_pending()
    token = waiting["client_notification_token"]
    await op.decide(waiting["auth_req_id"], "deny", expect=500)

    wrong = await connector.ping(ping(token, "some-other-request"))
    right = await connector.ping(ping(token, waiting["auth_req_id"]))

    assert (wrong.status, right.status) == (400, 204)
    [(_, outcome)] = resolutions.settled
    assert isinstance(outcome, Denied)


async def test_early_ping_keeps_the_token(
    make_connector: ConnectorFactory, op: TestOp, resolutions: Resolutions
) -> None:
    """A ping before the decision (authorization_pending) settles nothing and keeps the token."""
    connector = make_connector("gw-ping", delivery_mode="ping")
    await connector.start(start_request(OLA))
    waiting = await op.wait_pending()
    token = waiting["client_notification_token"]

    early = await connector.ping(ping(token, waiting["auth_req_id"]))
    assert early.status == 204
    assert resolutions.settled == []

    await op.decide(waiting["auth_req_id"], "approve", expect=500)
    assert (await connector.ping(ping(token, waiting["auth_req_id"]))).status == 204
    assert isinstance(resolutions.settled[0][1], Approved)


async def test_cancel_forgets_the_token(
    make_connector: ConnectorFactory, op: TestOp, resolutions: Resolutions
) -> None:
    """After cancel (the gateway's request expired) the upstream's late ping is refused."""
    connector = make_connector("gw-ping", delivery_mode="ping")
    started = await connector.start(start_request(OLA))
    waiting = await op.wait_pending()
    await op.decide(waiting["auth_req_id"], "approve", expect=500)

    await connector.cancel(started.session)
    late = await connector.ping(ping(waiting["client_notification_token"], waiting["auth_req_id"]))

    assert late.status == 401
    assert resolutions.settled == []


class PingBeforeAnswer(httpx.AsyncBaseTransport):
    """Real HTTP; the person approves and the ping arrives before start has its answer."""

    def __init__(self, op: TestOp) -> None:
        self.op = op
        self.inner = httpx.AsyncHTTPTransport()
        self.connector: CibaConnector | None = None
        self.ping_status: int | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/backchannel" or self.connector is None:
            return response
        answer = json.loads(await response.aread())
        token = parse_qs(request.content.decode())["client_notification_token"][0]
        await self.op.decide(answer["auth_req_id"], "approve", expect=500)
        notified = await self.connector.ping(ping(token, answer["auth_req_id"]))
        self.ping_status = notified.status
        return httpx.Response(response.status_code, json=answer)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_ping_before_the_start_answer_settles(
    make_connector: ConnectorFactory, op: TestOp, resolutions: Resolutions
) -> None:
    """The token is stored before the request goes out, so even the fastest ping counts once."""
    wire = PingBeforeAnswer(op)
    connector = make_connector("gw-ping", delivery_mode="ping", transport=wire)
    wire.connector = connector

    started = await connector.start(start_request(OLA, ref="ref-fast"))

    assert wire.ping_status == 204
    [(ref, outcome)] = resolutions.settled
    assert (ref, type(outcome)) == ("ref-fast", Approved)
    assert await connector.deps.state.get(started.session["ping"]) is None
