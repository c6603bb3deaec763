"""The connector contract suite, run against the BankID simulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bankid_support import BERTIL, CECILIA, EVA, KARL, PERSONAS, TOLVAN, start_request
from ciba_gateway_bankid.connector import BankIDConnector
from litestar import Litestar

from ciba_gateway.connector import (
    InvalidAuthorizationDetails,
    InvalidHint,
    LoginHint,
    StartRequest,
)
from ciba_gateway.connector.testing import (
    EXAMPLE_DETAILS,
    ConnectorContract,
    FakeClock,
    RecordingTransport,
    SimulatorTransport,
    Subject,
    UpstreamContract,
)

CASES = {
    "approved": KARL,
    "denied": BERTIL,
    "failed": CECILIA,
    "expired": EVA,
    "pending": TOLVAN,
}


class BankIDSubject(Subject):
    hints = {"ssn": LoginHint(kind="ssn", value=KARL, country="SE")}
    details = {
        "phoneAuth": {"type": "phoneAuth", "callInitiator": "RP"},
        **EXAMPLE_DETAILS,
    }

    def request(self, case: str) -> StartRequest:
        if case == "foreign":
            return start_request("15108695088", country="NO")
        if case == "phone_without_initiator":
            return start_request(KARL, authorization_details=({"type": "phoneAuth"},))
        return start_request(CASES[case])


class TestContract(ConnectorContract, UpstreamContract):
    outcomes = ("approved", "denied", "failed", "expired")
    # BankID starts an order for any valid personal number: a person without
    # BankID surfaces as startFailed later, so no start refuses an unknown user.
    refusals = {"foreign": InvalidHint, "phone_without_initiator": InvalidAuthorizationDetails}
    pii = tuple(p["personal_number"] for p in PERSONAS)

    @pytest.fixture
    def subject(
        self, app: Litestar, clock: FakeClock, make_connector: Callable[..., BankIDConnector]
    ) -> BankIDSubject:
        upstream = RecordingTransport(SimulatorTransport(app))
        return BankIDSubject(make_connector(transport=upstream), clock, upstream=upstream)
