"""Transaction approval with BankID: typed details become /sign or /phone/sign orders.

The simulator records exactly what it received; the tests compare it with the
gateway's one renderer and check the evidence the completed order yields.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bankid_support import KARL, TOLVAN, start_request
from ciba_gateway_bankid.connector import BankIDConnector
from ciba_gateway_bankid.signature import CHECKS, verify
from ciba_gateway_bankid.trust import Roots
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from cryptography.x509 import ocsp
from msgspec.structs import replace

from ciba_gateway.connector import Approved, Failed, InvalidAuthorizationDetails
from ciba_gateway.connector.details import digest, render, validate

PAYMENT = validate(
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "SEK", "amount": "1500"},
        "creditorName": "Kiosk *Nord* #1",
        "creditorAccount": {"iban": "SE4550000000058398257466"},
        "remittanceInformationUnstructured": "Invoice 4711",
    }
)
PHONE_RP = {"type": "phoneAuth", "callInitiator": "RP"}


def order_of(sim: BankIDSimulator, order_ref: str) -> dict[str, Any]:
    return next(o for o in sim.stats()["orders"] if o["orderRef"] == order_ref)


async def test_payment_is_a_phone_sign_order_with_the_rendered_text(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """phoneAuth + payment: /phone/sign, userVisibleData = the markdown, digest not shown."""
    details = (PHONE_RP, PAYMENT)
    started = await connector.start(start_request(TOLVAN, authorization_details=details))

    order = order_of(sim, started.session["orderRef"])
    expected = render(details, client_name="Demo Bank", binding_message="A1B2")
    assert order["kind"] == "phone/sign"
    assert order["text"] == expected.markdown
    assert order["textFormat"] == "simpleMarkdownV1"
    assert order["nonVisibleData"] == digest(details)
    assert "Amount: 1 500.00 SEK" in expected.text
    assert sim.calls["phone/sign"] == 1 and sim.calls["phone/auth"] == 0


async def test_without_call_initiator_it_is_a_sign_order(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """No phoneAuth and no configured initiator: /sign with requirement.personalNumber."""
    started = await connector.start(start_request(TOLVAN, authorization_details=(PAYMENT,)))

    order = order_of(sim, started.session["orderRef"])
    assert (order["kind"], order["personalNumber"]) == ("sign", TOLVAN)
    assert order["nonVisibleData"] == digest([PAYMENT])


async def test_approved_signing_carries_verified_evidence(
    connector: BankIDConnector, sim: BankIDSimulator
) -> None:
    """The person signs on the phone: Approved with the signature and OCSP as evidence."""
    details = (PHONE_RP, PAYMENT)
    started = await connector.start(start_request(TOLVAN, authorization_details=details))
    assert sim.decide(TOLVAN, started.session["orderRef"], approve=True)

    result = await connector.poll(started.session)

    assert isinstance(result, Approved)
    evidence = result.identity.evidence
    assert evidence is not None
    assert evidence.kind == "bankid-signature"
    assert evidence.details_digest == digest(details)
    assert evidence.checks == CHECKS
    signed = base64.b64decode(evidence.proof["signature"]).decode()
    assert f"<usrNonVisibleData>{base64.b64encode(digest(details).encode()).decode()}" in signed
    assert evidence.proof["ocspResponse"]
    assert evidence.proof["signature"] not in repr(evidence)


@pytest.mark.parametrize("field", ["non_visible", "visible"])
async def test_a_signature_of_something_else_is_refused(
    connector: BankIDConnector, sim: BankIDSimulator, field: str
) -> None:
    """If the signed data is not what this request sent, the order fails: no tokens."""
    started = await connector.start(start_request(TOLVAN, authorization_details=(PAYMENT,)))
    other = await connector.start(
        start_request(
            KARL,
            authorization_details=({**PAYMENT, "creditorName": "Someone Else"},),
        )
    )
    assert sim.decide(TOLVAN, started.session["orderRef"], approve=True)
    session = {**started.session}
    session["sign"] = {**session["sign"], field: other.session["sign"][field]}

    result = await connector.poll(session)

    assert isinstance(result, Failed)
    assert "does not hold" in result.reason


async def test_text_past_bankids_limit_is_refused_before_calling(
    make_connector: Callable[..., BankIDConnector], sim: BankIDSimulator
) -> None:
    """Five long approvals in four-byte characters pass validation but not BankID's limit."""
    clef = "\U0001d11e"
    approval = validate(
        {
            "type": "approval",
            "title": clef * 80,
            "text": clef * 500,
            "fields": [{"label": clef * 40, "value": clef * 140}] * 8,
        }
    )
    connector = make_connector()
    with pytest.raises(InvalidAuthorizationDetails, match="too long for BankID"):
        await connector.start(start_request(TOLVAN, authorization_details=(approval,) * 5))
    assert sim.calls["sign"] == 0


def _tamper_signed_part(b64: str) -> str:
    """The OCSP response with the last byte of its signed part changed (inside the nonce)."""
    raw = bytearray(base64.b64decode(b64))
    tbs = ocsp.load_der_ocsp_response(bytes(raw)).tbs_response_bytes
    raw[raw.index(tbs) + len(tbs) - 1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("swap", "problem"),
    [
        ("other_person", "about another certificate"),
        ("tampered", "not signed by a responder certificate"),
        ("garbage", "not a DER OCSP response"),
    ],
)
async def test_ocsp_response_must_vouch_for_the_signer(
    connector: BankIDConnector, sim: BankIDSimulator, root_file: Path, swap: str, problem: str
) -> None:
    """The OCSP response must be good, about the signature's certificate, responder-signed."""
    mine = await connector.start(start_request(TOLVAN, authorization_details=(PAYMENT,)))
    theirs = await connector.start(start_request(KARL, authorization_details=(PAYMENT,)))
    assert sim.decide(TOLVAN, mine.session["orderRef"], approve=True)
    completion = sim.completion(mine.session["orderRef"])
    other = sim.completion(theirs.session["orderRef"])  # Karl's persona approves by itself
    assert completion is not None and other is not None and other.ocsp_response
    roots = Roots.load(str(root_file))
    at = dt.datetime.now(dt.UTC)
    assert not isinstance(verify(completion, mine.session["sign"], roots, at), str)  # control

    ocsp = {
        "other_person": other.ocsp_response,
        "tampered": _tamper_signed_part(completion.ocsp_response or ""),
        "garbage": base64.b64encode(b"not ocsp").decode(),
    }[swap]
    result = verify(replace(completion, ocsp_response=ocsp), mine.session["sign"], roots, at)

    assert isinstance(result, str)
    assert problem in result
