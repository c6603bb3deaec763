"""The connector contract suite for SMS links, its "upstream" being the outbox sender.

The person decides on the link page (``show`` then ``decide``), and the connector
resolves the request through ``ConnectorDeps.resolve``: ``settle`` acts for the
person and returns what was resolved. The SMS link connector has no upstream
simulator (its sender and directory faults are tested against httpx mock
transports in test_smslink_senders.py and test_smslink_connector.py), so it runs
``ConnectorContract`` only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from ciba_gateway_smslink.connector import SmsLinkConnector
from smslink_support import (
    KNOWN,
    NAMED,
    UNKNOWN,
    Gateway,
    csrf_of,
    get,
    outbox,
    post,
    start_request,
    token_of,
)

from ciba_gateway.connector import (
    InvalidHint,
    LoginHint,
    PollResult,
    Started,
    StartRequest,
    UserNotFound,
)
from ciba_gateway.connector.testing import (
    EXAMPLE_DETAILS,
    ConnectorContract,
    FakeClock,
    Subject,
)

DECISIONS = {"approved": "approve", "denied": "decline"}


class SmsLinkSubject(Subject):
    hints = {"tel": LoginHint(kind="tel", value=KNOWN)}
    details = EXAMPLE_DETAILS

    def __init__(self, connector: SmsLinkConnector, clock: FakeClock, gateway: Gateway) -> None:
        super().__init__(connector, clock)
        self.gateway = gateway
        self.started = 0

    def request(self, case: str) -> StartRequest:
        self.started += 1
        number = {"unknown": UNKNOWN, "foreign": "+4512345678", "pending": NAMED}.get(case, KNOWN)
        request = start_request(self.gateway, f"req-{self.started}", number)
        if case == "email":
            return msgspec.structs.replace(
                request, login_hint=LoginHint(kind="email", value="anna@example.com")
            )
        return request

    async def settle(self, case: str, started: Started) -> PollResult:
        token = token_of(outbox(self.connector).messages[-1].link)
        csrf = csrf_of(str((await self.connector.show(get(token))).body))
        await self.connector.decide(post(token, csrf, DECISIONS[case]))
        return self.gateway.resolved[-1][1]


class TestContract(ConnectorContract):
    outcomes = ("approved", "denied")
    refusals = {"unknown": UserNotFound, "foreign": InvalidHint, "email": InvalidHint}
    pii = (KNOWN, NAMED, UNKNOWN, KNOWN[1:], NAMED[1:], UNKNOWN[1:])

    @pytest.fixture
    async def subject(
        self, gateway: Gateway, clock: FakeClock, make_connector: Callable[..., SmsLinkConnector]
    ) -> AsyncIterator[SmsLinkSubject]:
        rate_limit = {"per_number": 20, "per_client": 50, "window": 600}
        yield SmsLinkSubject(make_connector(rate_limit=rate_limit), clock, gateway)
