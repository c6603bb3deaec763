"""The connector against hand-written cassettes of the documented Freja eID wire format.

The cassettes (tests/cassettes/) hold the examples of UPSTREAMS.md section 2, not
recordings; they pin the connector to the real API independently of our simulator.
They replay only (``record_mode="none"``), match on method, host, path and the exact
body (``initAuthRequest=<base64>``), and every interaction must be played.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import vcr
from ciba_gateway_freja.connector import Config, FrejaConnector
from freja_support import CERT_FILE, start_request

from ciba_gateway.connector import (
    Approved,
    ConnectorDeps,
    Failed,
    Identity,
    Pending,
    UserNotFound,
)
from ciba_gateway.connector.testing import FakeClock, FakeSleep

HOST = "https://services.test.frejaeid.com"
AUTH_REF = "Ab3dE6fGh9jK2mN5pQ8rS1tU4vW7xY0z"
APPROVED_AT = 1745498669.753  # the documented payload's timestamp


@pytest.fixture
def cassettes() -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(Path(__file__).parent / "cassettes"),
        record_mode="none",
        match_on=["method", "scheme", "host", "path", "body"],
        ignore_localhost=True,
    )


@pytest.fixture
async def connector(deps: ConnectorDeps, sleeps: FakeSleep) -> AsyncIterator[FrejaConnector]:
    config = msgspec.convert(
        {
            "base_url": HOST,
            "trusted_certs": [CERT_FILE],
            "attributes_to_return": ["BASIC_USER_INFO", "SSN", "DATE_OF_BIRTH"],
        },
        Config,
    )
    freja = FrejaConnector(config, deps, sleep=sleeps)
    yield freja
    await freja.aclose()


async def test_init_poll_pending_then_approved(
    cassettes: vcr.VCR, connector: FrejaConnector, clock: FakeClock
) -> None:
    """The documented init, a DELIVERED_TO_MOBILE and an APPROVED result yield Approved."""
    clock.now = APPROVED_AT - 5
    with cassettes.use_cassette("init_poll_approved.yaml") as cassette:
        started = await connector.start(start_request("199001011239"))
        pending = await connector.poll(started.session)
        clock.now = APPROVED_AT + 2
        done = await connector.poll(started.session)

    assert cassette.all_played
    assert started.session["authRef"] == AUTH_REF
    assert pending == Pending(hint="DELIVERED_TO_MOBILE", poll_after=3.0)
    assert done == Approved(
        identity=Identity(
            scheme="se-pnr",
            subject="199001011239",
            national_id="199001011239",
            country="SE",
            claims={
                "given_name": "Anna",
                "family_name": "Svensson",
                "name": "Anna Svensson",
                "birthdate": "1990-01-01",
            },
            acr="urn:grn:authn:se:frejaid:extended",
            amr=("freja",),
            auth_time=1745498669,
        )
    )


async def test_unknown_user_error_code(cassettes: vcr.VCR, connector: FrejaConnector) -> None:
    """The documented 1012 error body raises UserNotFound."""
    with cassettes.use_cassette("init_unknown_user.yaml") as cassette:
        with pytest.raises(UserNotFound, match="1012"):
            await connector.start(start_request("191212121212"))

    assert cassette.all_played


async def test_invalid_reference_then_cancel(cassettes: vcr.VCR, connector: FrejaConnector) -> None:
    """Code 1100 on getOneResult is Failed; cancel sends cancelAuthRequest and accepts {}."""
    session = {"authRef": AUTH_REF}
    with cassettes.use_cassette("poll_invalid_reference_then_cancel.yaml") as cassette:
        result = await connector.poll(session)
        await connector.cancel(session)

    assert cassette.all_played
    assert isinstance(result, Failed)
    assert "1100" in result.reason
