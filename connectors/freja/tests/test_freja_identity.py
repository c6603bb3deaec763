"""The connector contract's identity check, run against the Freja simulator."""

from __future__ import annotations

import pytest
from ciba_gateway_freja.connector import FrejaConnector, _same_person
from ciba_gateway_freja.details import Expected
from ciba_gateway_freja.wire import encode_ssn_user_info
from ciba_gateway_freja_sim.settings import FaultControl
from ciba_gateway_freja_sim.simulator import FrejaSimulator
from freja_support import ANNA, KARL, start_request

from ciba_gateway.connector import Identity, PollResult
from ciba_gateway.connector.testing import FakeClock, IdentityContract, Settle


class TestIdentity(IdentityContract):
    """Karl is asked; with ``other_user`` Freja signs a result for another person."""

    pii = (KARL, "197001019876", "Karlsson")

    @pytest.fixture
    def settle(self, connector: FrejaConnector, sim: FrejaSimulator, clock: FakeClock) -> Settle:
        async def run(*, impostor: bool) -> PollResult:
            if impostor:
                sim.set_fault(FaultControl(kind="other_user"))
            started = await connector.start(start_request(KARL))
            clock.advance(6)
            return await connector.poll(started.session)

        return run


class TestEmailIdentity(IdentityContract):
    """Anna is asked by e-mail; the impostor's signed userInfo is another address."""

    pii = (ANNA, "mallory@example.com", "198505051014")

    @pytest.fixture
    def settle(self, connector: FrejaConnector, sim: FrejaSimulator, clock: FakeClock) -> Settle:
        async def run(*, impostor: bool) -> PollResult:
            if impostor:
                sim.set_fault(FaultControl(kind="other_user"))
            started = await connector.start(start_request(ANNA, kind="email"))
            return await connector.poll(started.session)

        return run


def test_signed_ssn_attribute_of_another_person_is_not_the_same_person() -> None:
    """An SSN request whose identity carries another national id (signed SSN attribute) fails."""
    expected = Expected(
        auth_ref="r",
        user_info_type="SSN",
        user_info=encode_ssn_user_info("SE", KARL),
        min_registration_level="EXTENDED",
    )

    def identity(ssn: str, country: str = "SE") -> Identity:
        return Identity(scheme="se-pnr", subject=ssn, national_id=ssn, country=country)

    assert _same_person(expected, identity(KARL))
    assert not _same_person(expected, identity("197001019876"))
    assert not _same_person(expected, identity(KARL, country="NO"))
