"""The connector against hand-written cassettes of the documented BankID v6.0 wire format.

The cassettes (tests/cassettes/) hold the JSON bodies of UPSTREAMS.md section 1, not
recordings; they pin the connector to the real API independently of our simulator.
They are replayed only (``record_mode="none"``) and matched on method, host, path,
JSON body and an exact ``Content-Type: application/json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import vcr
from bankid_support import KARL, start_request
from ciba_gateway_bankid.connector import BankIDConnector, Config

from ciba_gateway.connector import Approved, ConnectorDeps, Denied, Pending, UserBusy
from ciba_gateway.connector.testing import FakeSleep

HOST = "https://appapi2.test.bankid.com/rp/v6.0"
ORDER_REF = "131daac9-16c6-4618-beb0-365768f37288"


def exact_json_content_type(live: Any, recorded: Any) -> None:
    """The live request's Content-Type is exactly the recorded one (BankID 415s on a charset)."""
    assert live.headers.get("Content-Type") == recorded.headers.get("Content-Type")


@pytest.fixture
def cassettes() -> vcr.VCR:
    replayer = vcr.VCR(
        cassette_library_dir=str(Path(__file__).parent / "cassettes"),
        record_mode="none",
        match_on=["method", "scheme", "host", "path", "body", "content_type"],
        ignore_localhost=True,
    )
    replayer.register_matcher("content_type", exact_json_content_type)
    return replayer


@pytest.fixture
async def connector(deps: ConnectorDeps, sleeps: FakeSleep) -> AsyncIterator[BankIDConnector]:
    config = msgspec.convert(
        {"base_url": HOST, "end_user_ip": "203.0.113.7", "pin_code": True}, Config
    )
    bankid = BankIDConnector(config, deps, sleep=sleeps)
    yield bankid
    await bankid.aclose()


def login() -> Any:
    """The StartRequest whose /auth body the cassettes hold."""
    return start_request(KARL, client_name="Exempelbanken", binding_message="Logga in med kod 4711")


async def test_auth_collect_pending_then_complete(
    cassettes: vcr.VCR, connector: BankIDConnector
) -> None:
    """The documented auth, pending collect and complete collect yield Pending then Approved."""
    with cassettes.use_cassette("auth_collect_complete.yaml") as cassette:
        started = await connector.start(login())
        pending = await connector.poll(started.session)
        done = await connector.poll(started.session)

    assert cassette.all_played
    assert started.session == {"orderRef": ORDER_REF, "personalNumber": KARL}
    assert pending == Pending(hint="outstandingTransaction", poll_after=2.0)
    assert isinstance(done, Approved)
    assert done.identity.subject == KARL
    assert done.identity.claims == {
        "name": "Karl Karlsson",
        "given_name": "Karl",
        "family_name": "Karlsson",
        "birthdate": "1990-01-01",
    }


async def test_failed_collect_user_cancel(cassettes: vcr.VCR, connector: BankIDConnector) -> None:
    """A documented failed/userCancel collect maps to Denied."""
    with cassettes.use_cassette("collect_user_cancel.yaml") as cassette:
        started = await connector.start(login())
        result = await connector.poll(started.session)

    assert cassette.all_played
    assert isinstance(result, Denied) and "userCancel" in result.reason


async def test_already_in_progress_error_body(
    cassettes: vcr.VCR, connector: BankIDConnector
) -> None:
    """The documented 400 alreadyInProgress error body raises UserBusy."""
    with cassettes.use_cassette("auth_already_in_progress.yaml") as cassette:
        with pytest.raises(UserBusy):
            await connector.start(login())

    assert cassette.all_played


async def test_maintenance_in_any_case_is_retried(
    cassettes: vcr.VCR, connector: BankIDConnector, sleeps: FakeSleep
) -> None:
    """503 errorCode "Maintenance" (odd casing) is matched case-insensitively and retried."""
    with cassettes.use_cassette("auth_maintenance_then_ok.yaml") as cassette:
        started = await connector.start(login())

    assert cassette.all_played
    assert started.session == {"orderRef": ORDER_REF, "personalNumber": KARL}
    assert len(sleeps.calls) == 1


async def test_phone_auth_body_matches_documented_example(
    cassettes: vcr.VCR, deps: ConnectorDeps, sleeps: FakeSleep
) -> None:
    """The /phone/auth body equals the documented example; cancel sends the orderRef."""
    config = msgspec.convert({"base_url": HOST, "show_client_name": False}, Config)
    connector = BankIDConnector(config, deps, sleep=sleeps)
    details = ({"type": "phoneAuth", "callInitiator": "RP"},)
    request = start_request(
        KARL, binding_message="Du pratar med Exempelbanken", authorization_details=details
    )
    try:
        with cassettes.use_cassette("phone_auth_cancel.yaml") as cassette:
            started = await connector.start(request)
            await connector.cancel(started.session)
    finally:
        await connector.aclose()

    assert cassette.all_played
    assert started.session["orderRef"] == "0b5e2a52-8c6f-4f53-a6b3-2a1d7c9e4f10"
