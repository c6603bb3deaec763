"""Shared test helpers of the Freja connector and simulator tests: constants, personas,
requests, and the simulator's fixtures (both conftest.py files import them).

On the path of every test through ``pythonpath`` in the root pyproject.toml.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ciba_gateway_freja_sim.app import create_simulator
from ciba_gateway_freja_sim.simulator import FrejaSimulator
from litestar import Litestar

from ciba_gateway.connector import LoginHint, StartRequest
from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport

KEYS = Path(__file__).parent / "keys"
KEY_FILE = str(KEYS / "test-signing-key.pem")
CERT_FILE = str(KEYS / "test-signing-cert.pem")
BASE_URL = "http://freja.sim"
NOW = 1_760_000_000.0  # 2025-10-09, inside the test certificate's validity

KARL = "199001011239"  # PLUS, approves 6 s after the start
TOLVAN = "191212121212"  # EXTENDED, waits for the phone page
NILS = "198112289874"  # declines (CANCELED) after 3 s
RUT = "197502021234"  # Freja rejects (REJECTED) after 3 s
DORIS = "196003031234"  # has turned our service off (1005)
OLLE = "198803031235"  # EXTENDED, waits
NORA = "15108695088"  # Norwegian, approves at once
NOBODY = "200001010008"  # no persona (1012)
ANNA = "anna@example.com"  # EMAIL persona with an SSN attribute, approves at once
PER = "+46701112233"  # PHONE persona, BASIC, approves at once

PERSONAS: list[dict[str, Any]] = [
    {
        "user_info": KARL,
        "outcome": "approve",
        "delay": 6,
        "registration_level": "PLUS",
        "attributes": {
            "name": "Karl",
            "surname": "Karlsson",
            "email": "karl@example.com",
            "phone": "+46701234567",
            "date_of_birth": "1990-01-01",
        },
    },
    {
        "user_info": TOLVAN,
        "attributes": {"name": "Tolvan", "surname": "Tolvansson", "date_of_birth": "1912-12-12"},
    },
    {"user_info": NILS, "outcome": "cancel", "delay": 3},
    {"user_info": RUT, "outcome": "reject", "delay": 3},
    {"user_info": DORIS, "outcome": "approve", "service_disabled": True},
    {"user_info": OLLE, "attributes": {"name": "Olle"}},
    {
        "user_info": NORA,
        "country": "NO",
        "outcome": "approve",
        "attributes": {"name": "Nora", "surname": "Nordmann", "date_of_birth": "1986-10-15"},
    },
    {
        "user_info_type": "EMAIL",
        "user_info": ANNA,
        "outcome": "approve",
        "attributes": {
            "name": "Anna",
            "surname": "Andersson",
            "ssn": "198505051014",
            "date_of_birth": "1985-05-05",
        },
    },
    {
        "user_info_type": "PHONE",
        "user_info": PER,
        "outcome": "approve",
        "registration_level": "BASIC",
        "attributes": {"email": "per@example.com", "relying_party_user_id": "rp-user-per"},
    },
]


def start_request(
    value: str = KARL,
    *,
    kind: str = "ssn",
    country: str | None = "SE",
    acr_values: tuple[str, ...] = (),
    authorization_details: tuple[dict[str, Any], ...] = (),
    binding_message: str | None = None,
    expires_at: float = 0.0,
) -> StartRequest:
    """A StartRequest as the gateway would build it."""
    return StartRequest(
        ref="req-1",
        tenant_id="t1",
        client_id="c1",
        client_name="Demo Bank",
        login_hint=LoginHint(kind=kind, value=value, country=country if kind == "ssn" else None),
        scope=("openid",),
        acr_values=acr_values,
        authorization_details=authorization_details,
        binding_message=binding_message,
        expires_at=expires_at,
    )


def b64json(value: Any) -> str:
    """Standard base64 of compact JSON, as Freja's bodies and SSN userInfo use it."""
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def unb64json(value: str) -> Any:
    """The JSON inside standard base64."""
    return json.loads(base64.b64decode(value))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_simulator(clock: FakeClock, sleeps: FakeSleep) -> Callable[..., Litestar]:
    def factory(**settings: Any) -> Litestar:
        defaults = {
            "personas": PERSONAS,
            "signing_key_file": KEY_FILE,
            "signing_cert_file": CERT_FILE,
        }
        return create_simulator({**defaults, **settings}, clock=clock, sleep=sleeps)

    return factory


@pytest.fixture
def app(make_simulator: Callable[..., Litestar]) -> Litestar:
    return make_simulator()


@pytest.fixture
def sim(app: Litestar) -> FrejaSimulator:
    return app.state.freja  # type: ignore[no-any-return]


@pytest.fixture
async def http(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=SimulatorTransport(app), base_url=BASE_URL) as client:
        yield client
