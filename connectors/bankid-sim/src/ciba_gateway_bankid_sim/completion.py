"""What a complete BankID order reports: the user, the device, the signature and OCSP.

The signature is BankID's XML-DSig document over ``bankIdSignedData`` (the
``usrVisibleData`` and ``usrNonVisibleData`` exactly as received), signed by the
person's certificate of the simulator's PKI; the OCSP response is that PKI's
responder's, ``good`` for that certificate (``pki.py``).
"""

from __future__ import annotations

import base64
import hashlib

from ciba_gateway_bankid.wire import CompletionData, Device, User

from ciba_gateway_bankid_sim.pki import SimulatedPki
from ciba_gateway_bankid_sim.settings import Kind, Persona

__all__ = ["completion_data"]


def completion_data(
    *,
    kind: Kind,
    personal_number: str | None,
    persona: Persona | None,
    visible_data: str | None,
    non_visible_data: str | None,
    end_user_ip: str | None,
    pki: SimulatedPki,
) -> CompletionData:
    """``completionData`` of an order approved by ``persona`` (or a person with no persona).

    An order without a personal number (an ``auth`` with no requirement) completes
    as 190001019999.
    """
    pnr = personal_number or "190001019999"
    if persona is not None and persona.completes_as is not None:
        pnr = persona.completes_as
    user = User(
        personal_number=pnr,
        name=persona.full_name if persona else "Test Person",
        given_name=persona.given_name if persona else "Test",
        surname=persona.surname if persona else "Person",
    )
    func = "Signing" if kind.endswith("sign") else "Identification"
    signer = pki.signer(pnr, user.name)
    signature = pki.signature(signer, visible_data or "", non_visible_data, func)
    return CompletionData(
        user=user,
        device=Device(
            ip_address=end_user_ip or "192.0.2.10",
            uhi=hashlib.sha256(f"uhi:{pnr}".encode()).hexdigest()[:40],
        ),
        bank_id_issue_date=persona.bankid_issue_date if persona else "2023-05-17",
        signature=base64.b64encode(signature).decode(),
        ocsp_response=base64.b64encode(pki.ocsp_response(signer.cert)).decode(),
    )
