"""The connector contract suite, run against the Freja eID simulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ciba_gateway_freja.connector import FrejaConnector
from freja_support import ANNA, DORIS, KARL, NILS, NOBODY, PER, RUT, TOLVAN, start_request
from litestar import Litestar

from ciba_gateway.connector import InvalidHint, LoginHint, StartRequest, UserNotFound
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
    "denied": NILS,
    "rejected": RUT,
    "expired": TOLVAN,
    "pending": TOLVAN,
    "unknown": NOBODY,
    "service_disabled": DORIS,
}


class FrejaSubject(Subject):
    hints = {
        "ssn": LoginHint(kind="ssn", value=KARL, country="SE"),
        "email": LoginHint(kind="email", value=ANNA),
        "tel": LoginHint(kind="tel", value=PER),
    }
    details = EXAMPLE_DETAILS
    max_polls = 100  # an unanswered request expires at Freja after two minutes

    def request(self, case: str) -> StartRequest:
        if case == "not_digits":
            return start_request("19900101-1239")
        return start_request(CASES[case])


class TestContract(ConnectorContract, UpstreamContract):
    # Freja's CANCELED and REJECTED both end Denied; its failures are verification
    # failures (tested in test_freja_connector.py), which no persona scripts.
    outcomes = ("approved", "denied", "expired")
    refusals = {
        "unknown": UserNotFound,
        "service_disabled": UserNotFound,
        "not_digits": InvalidHint,
    }
    pii = (KARL, NILS, RUT, TOLVAN, NOBODY, DORIS, ANNA, PER)

    @pytest.fixture
    def subject(
        self, app: Litestar, clock: FakeClock, make_connector: Callable[..., FrejaConnector]
    ) -> FrejaSubject:
        upstream = RecordingTransport(SimulatorTransport(app))
        # BASIC, so that Per (registered by phone only) can approve his tel hint.
        connector = make_connector(transport=upstream, min_registration_level="BASIC")
        return FrejaSubject(connector, clock, upstream=upstream)
