"""The connector contract suite, run against panva's oidc-provider as the upstream."""

from __future__ import annotations

import httpx
import pytest
from conftest import ConnectorFactory, start_request
from op_support import KARI, KARI_EMAIL, LIAR, OLA, TestOp
from test_ciba_oidc_provider import settle

from ciba_gateway.connector import (
    InvalidHint,
    LoginHint,
    PollResult,
    Started,
    StartRequest,
    UserNotFound,
)
from ciba_gateway.connector.testing import (
    ConnectorContract,
    FakeClock,
    RecordingTransport,
    Subject,
    UpstreamContract,
)

UNKNOWN = "13097248022"
DECISIONS = {"approved": "approve", "denied": "deny"}


class CibaSubject(Subject):
    """The person decides through the provider's admin hook; polling runs in real time."""

    hints = {
        "ssn": LoginHint(kind="ssn", value=OLA, country="NO"),
        "email": LoginHint(kind="email", value=KARI_EMAIL),
    }

    def __init__(self, connector: object, op: TestOp, upstream: RecordingTransport) -> None:
        super().__init__(connector, FakeClock(), upstream=upstream)
        self.op = op

    def request(self, case: str) -> StartRequest:
        if case == "tel":
            return start_request("+4791234567", kind="tel")
        return start_request({"unknown": UNKNOWN, "pending": KARI}.get(case, OLA))

    async def settle(self, case: str, started: Started) -> PollResult:
        await self.op.decide(started.session["auth_req_id"], DECISIONS[case])
        return await settle(self.connector, started.session)


class TestContract(ConnectorContract, UpstreamContract):
    outcomes = ("approved", "denied")
    refusals = {"unknown": UserNotFound, "tel": InvalidHint}
    pii = (OLA, KARI, KARI_EMAIL, LIAR, UNKNOWN)

    @pytest.fixture
    def subject(self, make_connector: ConnectorFactory, op: TestOp) -> CibaSubject:
        upstream = RecordingTransport(httpx.AsyncHTTPTransport())
        hints = {"ssn": "{value}", "email": "{value}"}
        scope = ["openid", "profile", "email", "nnin"]
        connector = make_connector(transport=upstream, login_hint=hints, scope=scope)
        return CibaSubject(connector, op, upstream)
