"""Transaction approval with BankID: what ``/sign`` is sent and what its signature must hold.

A request with typed authorization_details becomes a sign order. ``userVisibleData``
is the gateway's one approval text in ``simpleMarkdownV1`` (``connector.details``);
``userNonVisibleData`` is the details' digest (``sha-256:...``), so BankID's
signature binds the same value the ID token carries. Longer text than BankID takes
(40 000 characters of base64) is refused, never cut.

When the order completes, ``verify`` checks what the signature says was signed: the
``bankIdSignedData`` of the XML-DSig document must hold exactly the
``usrVisibleData`` and ``usrNonVisibleData`` we sent. It then checks the
``ocspResponse`` as far as its format allows without BankID's trust chain: a DER
OCSP response with status ``successful``, about the certificate in the signature's
``KeyInfo`` (same serial number), ``good``, and signed by a responder certificate
it carries. Not verified: the XML-DSig signature value (that needs XML
canonicalisation) and the chain of the signer and responder certificates to
BankID's root. Signature and OCSP response are kept as the evidence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from xml.etree import ElementTree

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from ciba_gateway.connector import Evidence, InvalidAuthorizationDetails, StartRequest, details
from ciba_gateway_bankid.wire import CompletionData

__all__ = ["CHECKS", "SIGN_VISIBLE_LIMIT", "SignPlan", "plan", "verify"]

SIGN_VISIBLE_LIMIT = 40_000
"""``userVisibleData`` of /sign and /phone/sign: at most this many base64 characters."""
_NS = "{http://www.bankid.com/signature/v1.0.0/types}"
_DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
CHECKS = (
    "usrVisibleData",
    "usrNonVisibleData",
    "ocsp successful",
    "ocsp about the signer certificate",
    "ocsp good",
    "ocsp responder signature",
)
"""What ``verify`` checked, in order (``Evidence.checks``)."""
_MAX_SIGNATURE = 200_000


class SignPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The sign order's data and what to expect back (kept in the session)."""

    visible: str
    """userVisibleData: base64 of the markdown text."""
    non_visible: str
    """userNonVisibleData: base64 of the details digest."""
    text_sha256: str
    """Hex SHA-256 of the UTF-8 text the person is shown."""
    digest: str


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def plan(request: StartRequest, *, show_client_name: bool) -> SignPlan | None:
    """The sign data for a request with typed details; None when it has none.

    Raises:
        InvalidAuthorizationDetails: the text is longer than BankID shows.
    """
    if not details.typed(request.authorization_details):
        return None
    rendering = details.render(
        request.authorization_details,
        client_name=request.client_name if show_client_name else "",
        binding_message=request.binding_message,
    )
    try:
        markdown = rendering.within(SIGN_VISIBLE_LIMIT, "BankID", markdown=True, base64=True)
    except details.DetailsProblem as exc:
        raise InvalidAuthorizationDetails(str(exc)) from None
    value = details.digest(request.authorization_details)
    return SignPlan(
        visible=_b64(markdown),
        non_visible=_b64(value),
        text_sha256=hashlib.sha256(markdown.encode()).hexdigest(),
        digest=value,
    )


def verify(data: CompletionData, expected: dict[str, Any]) -> Evidence | str:
    """The evidence of a completed sign order, or the reason it does not match the plan."""
    try:
        sign = msgspec.convert(expected, SignPlan)
    except msgspec.ValidationError:
        return "the BankID session lacks its sign plan"
    if not data.signature or not data.ocsp_response:
        return "BankID completed the signing without signature or ocspResponse"
    try:
        xml = base64.b64decode(data.signature, validate=True)
    except (binascii.Error, ValueError):
        return "the BankID signature is not base64"
    if len(xml) > _MAX_SIGNATURE or b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        return "the BankID signature is not a plain XML-DSig document"
    try:
        root = ElementTree.fromstring(xml)  # noqa: S314 - no DTD (refused above), size capped
    except ElementTree.ParseError:
        return "the BankID signature is not XML"
    signed = root.find(f".//{_NS}bankIdSignedData")
    if signed is None:
        return "the BankID signature has no bankIdSignedData"
    visible = (signed.findtext(f"{_NS}usrVisibleData") or "").strip()
    non_visible = (signed.findtext(f"{_NS}usrNonVisibleData") or "").strip()
    if visible != sign.visible:
        return "the BankID signature does not hold the text we sent (usrVisibleData)"
    if non_visible != sign.non_visible:
        return "the BankID signature does not hold the digest we sent (usrNonVisibleData)"
    problem = _ocsp_problem(root, data.ocsp_response)
    if problem is not None:
        return problem
    return Evidence(
        kind="bankid-signature",
        text_sha256=sign.text_sha256,
        details_digest=sign.digest,
        checks=CHECKS,
        proof={"signature": data.signature, "ocspResponse": data.ocsp_response},
    )


def _ocsp_problem(root: ElementTree.Element, ocsp_b64: str) -> str | None:
    """Why the OCSP response does not vouch for the signer's certificate (None: it does)."""
    der = (root.findtext(f".//{_DSIG}X509Certificate") or "").strip()
    try:
        signer = x509.load_der_x509_certificate(base64.b64decode(der, validate=True))
    except (binascii.Error, ValueError):
        return "the BankID signature carries no readable signer certificate"
    try:
        response = ocsp.load_der_ocsp_response(base64.b64decode(ocsp_b64, validate=True))
    except (binascii.Error, ValueError):
        return "the BankID ocspResponse is not a DER OCSP response"
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return "the BankID ocspResponse is not successful"
    if response.serial_number != signer.serial_number:
        return "the BankID ocspResponse is about another certificate"
    if response.certificate_status is not ocsp.OCSPCertStatus.GOOD:
        return "the BankID ocspResponse does not report the certificate as good"
    if not any(_signed_by(response, cert) for cert in response.certificates):
        return "the BankID ocspResponse is not signed by a responder certificate it carries"
    return None


def _signed_by(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    key = cert.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True
