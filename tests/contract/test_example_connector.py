"""The connector contract suite run on the example connector (the README's worked example)."""

from __future__ import annotations

import msgspec
import pytest
from ciba_gateway_example.connector import ExampleConfig, ExampleConnector

from ciba_gateway.connector import LoginHint, StartRequest, UserNotFound
from ciba_gateway.connector.testing import (
    ConnectorContract,
    FakeClock,
    IdentityContract,
    Settle,
    Subject,
    make_deps,
)

PEOPLE = [
    {"hint": "ssn:199001011239", "name": "Karl", "polls": 2},
    {"hint": "email:anna@example.com", "name": "Anna"},
    {"hint": "tel:+46701234567", "name": "Per"},
    {"hint": "ssn:198505051014", "name": "Nils", "outcome": "deny"},
    {"hint": "ssn:191212121212", "name": "Tolvan", "outcome": "pending"},
    {"hint": "ssn:197001019876", "name": "Mallory", "approves_as": "ssn:199001011239"},
]
CASES = {
    "approved": "ssn:199001011239",
    "denied": "ssn:198505051014",
    "pending": "ssn:191212121212",
    "unknown": "ssn:200001010008",
    "impostor": "ssn:197001019876",
}


def _hint(text: str) -> LoginHint:
    kind, _, value = text.partition(":")
    return LoginHint(kind=kind, value=value, country="SE" if kind == "ssn" else None)


class ExampleSubject(Subject):
    hints = {
        "ssn": _hint(CASES["approved"]),
        "email": _hint("email:anna@example.com"),
        "tel": _hint("tel:+46701234567"),
    }
    details = {
        kind: {"type": kind, "instructedAmount": {"currency": "SEK", "amount": "10.00"}}
        for kind in ExampleConnector.authorization_details_types
    }

    def request(self, case: str) -> StartRequest:
        return StartRequest(
            ref=f"ref-{case}",
            tenant_id="t1",
            client_id="c1",
            client_name="Demo Bank",
            login_hint=_hint(CASES[case]),
            scope=("openid",),
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def subject(clock: FakeClock) -> ExampleSubject:
    config = msgspec.convert({"people": PEOPLE, "poll_after": 1.0}, ExampleConfig)
    return ExampleSubject(ExampleConnector(config, make_deps(clock=clock)), clock)


class TestContract(ConnectorContract):
    outcomes = ("approved", "denied")
    refusals = {"unknown": UserNotFound}
    pii = tuple(person["hint"].partition(":")[2] for person in PEOPLE)


class TestIdentity(IdentityContract):
    pii = ("199001011239", "197001019876")

    @pytest.fixture
    def settle(self, subject: ExampleSubject) -> Settle:
        async def run(*, impostor: bool) -> object:
            return await subject.run("impostor" if impostor else "approved")

        return run
