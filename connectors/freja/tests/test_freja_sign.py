"""Transaction approval with Freja eID: typed details become an initSignature of the text.

The simulator records the decoded request it received; the tests compare its text
with the gateway's one renderer and check the verified evidence of an approval.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from ciba_gateway_freja.connector import FrejaConnector
from ciba_gateway_freja_sim.settings import FaultControl
from ciba_gateway_freja_sim.simulator import FrejaSimulator
from freja_support import NOW, TOLVAN, start_request

from ciba_gateway.connector import Approved, Expired, Failed, InvalidAuthorizationDetails
from ciba_gateway.connector.details import digest, render, validate

APPROVAL = validate(
    {
        "type": "approval",
        "title": "Agent wants to pay an invoice",
        "text": "Pay invoice 4711 from Kontorsmaterial AB?",
        "fields": [{"label": "Amount", "value": "2 340 SEK"}, {"label": "Due", "value": "1 May"}],
    }
)
DETAILS = (APPROVAL,)


def received(sim: FrejaSimulator, operation: str) -> list[dict[str, Any]]:
    return [r["request"] for r in sim.received if r["operation"] == operation]


async def test_details_start_a_signature_of_the_rendered_text(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """initSignature carries the renderer's plain text as SIMPLE_UTF8_TEXT, nothing else."""
    await connector.start(
        start_request(TOLVAN, authorization_details=DETAILS, binding_message="K7")
    )

    [sent] = received(sim, "initSignature")
    expected = render(DETAILS, client_name="Demo Bank", binding_message="K7").text
    assert sent["dataToSignType"] == "SIMPLE_UTF8_TEXT"
    assert sent["signatureType"] == "SIMPLE"
    assert base64.b64decode(sent["dataToSign"]["text"]).decode() == expected
    assert sim.stats()["auths"][0]["text"] == expected
    assert sim.calls["initAuthentication"] == 0
    assert "expiry" not in sent  # the request expires sooner than Freja's 2-minute minimum


async def test_request_expiry_is_sent_when_freja_accepts_it(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """A request that lives 5 minutes asks Freja for the same expiry (epoch ms)."""
    request = start_request(TOLVAN, authorization_details=DETAILS, expires_at=NOW + 300)
    await connector.start(request)
    [sent] = received(sim, "initSignature")
    assert sent["expiry"] == int((NOW + 300) * 1000)


async def test_approved_signature_carries_verified_evidence(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """Approve on the phone: the signed result and userSignature become the evidence."""
    started = await connector.start(start_request(TOLVAN, authorization_details=DETAILS))
    assert sim.decide(started.session["authRef"], approve=True)

    result = await connector.poll(started.session)

    assert isinstance(result, Approved), result
    evidence = result.identity.evidence
    assert evidence is not None
    assert evidence.kind == "freja-signature"
    assert evidence.details_digest == digest(DETAILS)
    assert set(evidence.proof) == {"details", "userSignature"}
    assert "signed text" in evidence.checks
    assert sim.calls["getOneSignResult"] == 1 and sim.calls["getOneResult"] == 0


@pytest.mark.parametrize(
    ("kind", "check"),
    [("tamper_payload", "signature"), ("other_auth_ref", "auth_ref"), ("wrong_key", "signature")],
)
async def test_forged_signature_results_fail(
    connector: FrejaConnector, sim: FrejaSimulator, kind: str, check: str
) -> None:
    """The JWS faults of the simulator apply to signatures too: no tokens from them."""
    started = await connector.start(start_request(TOLVAN, authorization_details=DETAILS))
    sim.set_fault(FaultControl(kind=kind, endpoints=("getOneSignResult",)))  # type: ignore[arg-type]
    assert sim.decide(started.session["authRef"], approve=True)

    result = await connector.poll(started.session)

    assert isinstance(result, Failed)
    assert f"({check})" in result.reason


async def test_a_signature_of_another_text_fails(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """If userSignature signs something else than this request's text, the request fails."""
    started = await connector.start(start_request(TOLVAN, authorization_details=DETAILS))
    assert sim.decide(started.session["authRef"], approve=True)
    session = {**started.session, "sign": {**started.session["sign"], "text_sha256": "0" * 64}}

    result = await connector.poll(session)

    assert isinstance(result, Failed)
    assert "(signed_text)" in result.reason


async def test_text_past_the_limit_is_refused_before_calling(
    make_connector: Callable[..., FrejaConnector], sim: FrejaSimulator
) -> None:
    """sign_text_limit refuses (invalid_authorization_details), it never cuts the text."""
    connector = make_connector(sign_text_limit=64)
    with pytest.raises(InvalidAuthorizationDetails, match="too long for Freja eID"):
        await connector.start(start_request(TOLVAN, authorization_details=DETAILS))
    assert sim.calls["initSignature"] == 0


async def test_cancel_uses_the_signature_api(
    connector: FrejaConnector, sim: FrejaSimulator
) -> None:
    """Cancelling a signature calls /sign/1.0/cancel; the signature ends RP_CANCELED."""
    started = await connector.start(start_request(TOLVAN, authorization_details=DETAILS))
    await connector.cancel(started.session)

    assert sim.calls["cancelSignature"] == 1 and sim.calls["cancel"] == 0
    assert isinstance(await connector.poll(started.session), Expired)
