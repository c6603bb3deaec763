"""Shared test helpers of the BankID connector and simulator tests: constants, personas,
requests, and the simulator's fixtures (both conftest.py files import them).

On the path of every test through ``pythonpath`` in the root pyproject.toml.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from ciba_gateway_bankid.personnummer import check_digit
from ciba_gateway_bankid_sim.app import create_simulator
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from litestar import Litestar

from ciba_gateway.connector import LoginHint, StartRequest
from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport

BASE_URL = "http://bankid.sim/rp/v6.0"


def pnr(first_eleven: str) -> str:
    """A valid 12-digit personal number from its first eleven digits."""
    return first_eleven + str(check_digit(first_eleven[2:]))


KARL = "199001011239"  # approves at once
TOLVAN = "191212121212"  # waits for the phone page
ANNA = pnr("19850505101")  # deny
BERTIL = pnr("19720315234")  # userCancel
CECILIA = pnr("19950722345")  # certificateErr
DAVID = pnr("19680808456")  # startFailed
EVA = pnr("20010203567")  # expiredTransaction
FREJ = pnr("19880101678")  # userDeclinedCall
GUNNAR = pnr("19790412789")  # approves after 10 s, walking two hints
HELGA = pnr("19911230890")  # notSupportedByUserApp
NOBODY = pnr("20000101000")  # no persona: a person without BankID

PERSONAS: list[dict[str, Any]] = [
    {"personal_number": KARL, "given_name": "Karl", "surname": "Karlsson", "outcome": "approve"},
    {"personal_number": TOLVAN, "given_name": "Tolvan", "surname": "Tolvansson"},
    {"personal_number": ANNA, "outcome": "deny"},
    {"personal_number": BERTIL, "outcome": "userCancel"},
    {"personal_number": CECILIA, "outcome": "certificateErr"},
    {"personal_number": DAVID, "outcome": "startFailed"},
    {"personal_number": EVA, "outcome": "expiredTransaction"},
    {"personal_number": FREJ, "outcome": "userDeclinedCall"},
    {
        "personal_number": GUNNAR,
        "outcome": "approve",
        "delay": 10,
        "hints": ["outstandingTransaction", "userSign"],
    },
    {"personal_number": HELGA, "outcome": "notSupportedByUserApp"},
]


def start_request(
    personal_number: str = KARL,
    *,
    binding_message: str | None = "A1B2",
    client_name: str = "Demo Bank",
    authorization_details: tuple[dict[str, Any], ...] = (),
    country: str | None = "SE",
    end_user_ip: str = "198.51.100.4",
) -> StartRequest:
    """A StartRequest as the gateway would build it."""
    return StartRequest(
        ref="req-1",
        tenant_id="t1",
        client_id="c1",
        client_name=client_name,
        login_hint=LoginHint(kind="ssn", value=personal_number, country=country),
        scope=("openid",),
        binding_message=binding_message,
        authorization_details=authorization_details,
        end_user_ip=end_user_ip,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_simulator(clock: FakeClock, sleeps: FakeSleep) -> Callable[..., Litestar]:
    def factory(**settings: Any) -> Litestar:
        return create_simulator(settings, clock=clock, sleep=sleeps)

    return factory


@pytest.fixture
def app(make_simulator: Callable[..., Litestar]) -> Litestar:
    return make_simulator(personas=PERSONAS)


@pytest.fixture
def sim(app: Litestar) -> BankIDSimulator:
    return app.state.bankid  # type: ignore[no-any-return]


@pytest.fixture
async def http(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = SimulatorTransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankid.sim") as client:
        yield client
