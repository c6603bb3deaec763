"""The connector contract's identity check, run against the BankID simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bankid_support import KARL, TOLVAN, start_request
from ciba_gateway_bankid.connector import BankIDConnector
from litestar import Litestar

from ciba_gateway.connector import Failed, PollResult
from ciba_gateway.connector.testing import IdentityContract, Settle


@pytest.fixture
def app(make_simulator: Callable[..., Litestar]) -> Litestar:
    """Karl approves as himself; Tolvan's app reports Karl's personal number."""
    personas: list[dict[str, Any]] = [
        {"personal_number": KARL, "outcome": "approve"},
        {"personal_number": TOLVAN, "outcome": "approve", "completes_as": KARL},
    ]
    return make_simulator(personas=personas)


class TestIdentity(IdentityContract):
    pii = (KARL, TOLVAN)

    @pytest.fixture
    def settle(self, connector: BankIDConnector) -> Settle:
        async def run(*, impostor: bool) -> PollResult:
            started = await connector.start(start_request(TOLVAN if impostor else KARL))
            return await connector.poll(started.session)

        return run


async def test_session_without_the_personal_number_fails(connector: BankIDConnector) -> None:
    """An order whose session does not name the person asked is not approved."""
    started = await connector.start(start_request(KARL))
    result = await connector.poll({"orderRef": started.session["orderRef"]})
    assert isinstance(result, Failed)
