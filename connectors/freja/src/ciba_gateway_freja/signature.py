"""Transaction approval with Freja eID: the text ``initSignature`` asks the person to sign.

A request with typed authorization_details becomes a ``SIMPLE`` signature of
``SIMPLE_UTF8_TEXT``: the gateway's one approval text (``connector.details``, plain
text: Freja shows no markup), refused rather than cut past ``sign_text_limit``
characters. The verified result's ``signatureData.userSignature`` must carry exactly
that text (``verify_details``); the signed result becomes the evidence.
"""

from __future__ import annotations

import base64
import hashlib

import msgspec

from ciba_gateway.connector import Evidence, InvalidAuthorizationDetails, StartRequest, details
from ciba_gateway_freja.wire import DataToSign

__all__ = ["SignPlan", "evidence", "plan"]


class SignPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the person is asked to sign, and what to expect back (kept in the session)."""

    text_sha256: str
    digest: str


def plan(request: StartRequest, *, limit: int) -> tuple[SignPlan, DataToSign] | None:
    """The sign plan and ``dataToSign`` of a request with typed details; None without.

    Raises:
        InvalidAuthorizationDetails: the text is longer than ``limit`` characters.
    """
    if not details.typed(request.authorization_details):
        return None
    rendering = details.render(
        request.authorization_details,
        client_name=request.client_name,
        binding_message=request.binding_message,
    )
    try:
        text = rendering.within(limit, "Freja eID")
    except details.DetailsProblem as exc:
        raise InvalidAuthorizationDetails(str(exc)) from None
    data = text.encode()
    sign = SignPlan(
        text_sha256=hashlib.sha256(data).hexdigest(),
        digest=details.digest(request.authorization_details),
    )
    return sign, DataToSign(text=base64.b64encode(data).decode("ascii"))


def evidence(sign: SignPlan, result: str, user_signature: str) -> Evidence:
    """The evidence of a verified signature: Freja's signed result and the user's JWS."""
    return Evidence(
        kind="freja-signature",
        text_sha256=sign.text_sha256,
        details_digest=sign.digest,
        checks=("details JWS", "signRef", "user", "level", "timestamp", "signed text"),
        proof={"details": result, "userSignature": user_signature},
    )
