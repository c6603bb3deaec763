"""Transaction approval with BankID: what ``/sign`` is sent and what its signature must hold.

A request with typed authorization_details becomes a sign order. ``userVisibleData``
is the gateway's one approval text in ``simpleMarkdownV1`` (``connector.details``);
``userNonVisibleData`` is the details' digest (``sha-256:...``), so BankID's
signature binds the same value the ID token carries. Longer text than BankID takes
(40 000 characters of base64) is refused, never cut.

When the order completes, ``verify`` proves what was signed, in this order:

1. the signer certificate of the XML-DSig ``KeyInfo`` chains to a root of the
   connector's ``signature_ca_file`` (``trust.Roots``; the other ``KeyInfo``
   certificates are the intermediates);
2. signxml verifies the ``SignatureValue`` over ``SignedInfo`` with that
   certificate's key, and the digest of every signed reference;
3. exactly one ``bankIdSignedData`` is inside what those references cover, and it
   is read from signxml's verified copy, never from the document: a signature over
   something else next to a swapped ``bankIdSignedData`` is refused;
4. that ``bankIdSignedData`` holds exactly the ``usrVisibleData`` and
   ``usrNonVisibleData`` sent;
5. the ``ocspResponse`` is a DER OCSP response, ``successful``, about the signer
   certificate (serial number and issuer hashes), ``good``, and signed by the
   signer's CA itself or by a delegated responder (``id-kp-OCSPSigning``) that the
   same CA issued and that chains to a configured root.

Certificates are checked at the connector's clock. Signature and OCSP response are
kept as the evidence. Not checked: OCSP freshness (``thisUpdate``/``nextUpdate``;
BankID fetches the response at signing time) and BankID's certificate policies.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from lxml import etree
from signxml import (
    InvalidCertificate,
    InvalidDigest,
    SignatureConfiguration,
    SignatureMethod,
    XMLVerifier,
)
from signxml import InvalidSignature as InvalidSignatureValue
from signxml.exceptions import SignXMLException

from ciba_gateway.connector import Evidence, InvalidAuthorizationDetails, StartRequest, details
from ciba_gateway_bankid.trust import Roots, Untrusted
from ciba_gateway_bankid.wire import CompletionData

__all__ = ["CHECKS", "SIGN_VISIBLE_LIMIT", "SignPlan", "plan", "verify"]

SIGN_VISIBLE_LIMIT = 40_000
"""``userVisibleData`` of /sign and /phone/sign: at most this many base64 characters."""
_NS = "{http://www.bankid.com/signature/v1.0.0/types}"
_DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
CHECKS = (
    "signer certificate chain",
    "signature value",
    "references cover bankIdSignedData",
    "usrVisibleData",
    "usrNonVisibleData",
    "ocsp successful",
    "ocsp about the signer certificate",
    "ocsp good",
    "ocsp responder",
)
"""What ``verify`` checked, in order (``Evidence.checks``)."""
_MAX_SIGNATURE = 200_000
_MAX_CERTIFICATES = 8
_SIGNATURE_METHODS = frozenset(
    m
    for m in SignatureMethod
    if m.name.startswith(("RSA_", "ECDSA_", "SHA")) and "SHA1" not in m.name
)
"""Asymmetric XML-DSig algorithms only: no HMAC (a shared secret proves nothing here), no SHA-1."""


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


def verify(
    data: CompletionData, expected: dict[str, Any], roots: Roots | None, at: dt.datetime
) -> Evidence | str:
    """The evidence of a completed sign order, or the reason it is refused.

    ``roots`` are the connector's ``signature_ca_file`` roots (None: nothing can be
    proven, every signature is refused); ``at`` is when certificates must be valid.
    """
    try:
        sign = msgspec.convert(expected, SignPlan)
    except msgspec.ValidationError:
        return "the BankID session lacks its sign plan"
    if roots is None:
        return "the BankID connector has no signature_ca_file to verify the signature with"
    if not data.signature or not data.ocsp_response:
        return "BankID completed the signing without signature or ocspResponse"
    try:
        xml = base64.b64decode(data.signature, validate=True)
    except (binascii.Error, ValueError):
        return "the BankID signature is not base64"
    if len(xml) > _MAX_SIGNATURE or b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        return "the BankID signature is not a plain XML-DSig document"
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(xml, parser=parser)  # one parser per call: lxml's are not shared
    except etree.XMLSyntaxError:
        return "the BankID signature is not XML"
    if root.tag != f"{_DSIG}Signature":
        return "the BankID signature is not a plain XML-DSig document"
    certificates = _key_info_certificates(root)
    if isinstance(certificates, str):
        return certificates
    leaf, others = certificates
    try:
        chain = roots.signer(leaf, others, at)
    except Untrusted as exc:
        return str(exc)
    if len(chain) < 2:
        return "the BankID signer certificate is itself a signature_ca_file root"
    signed = _verified_signed_data(xml, leaf, at)
    if isinstance(signed, str):
        return signed
    visible = (signed.findtext(f"{_NS}usrVisibleData") or "").strip()
    non_visible = (signed.findtext(f"{_NS}usrNonVisibleData") or "").strip()
    if visible != sign.visible:
        return "the BankID signature does not hold the text we sent (usrVisibleData)"
    if non_visible != sign.non_visible:
        return "the BankID signature does not hold the digest we sent (usrNonVisibleData)"
    try:
        problem = _ocsp_problem(data.ocsp_response, chain, others, roots, at)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # odd algorithms, several answers
        problem = "the BankID ocspResponse cannot be checked"
    if problem is not None:
        return problem
    return Evidence(
        kind="bankid-signature",
        text_sha256=sign.text_sha256,
        details_digest=sign.digest,
        checks=CHECKS,
        proof={"signature": data.signature, "ocspResponse": data.ocsp_response},
    )


def _key_info_certificates(
    root: etree._Element,
) -> tuple[x509.Certificate, list[x509.Certificate]] | str:
    """The signer certificate (the one that is no CA) and the others of ``KeyInfo``."""
    texts = root.findall(f"{_DSIG}KeyInfo/{_DSIG}X509Data/{_DSIG}X509Certificate")
    if not texts or len(texts) > _MAX_CERTIFICATES:
        return "the BankID signature carries no readable signer certificate"
    try:
        certs = [
            x509.load_der_x509_certificate(
                base64.b64decode("".join((t.text or "").split()), validate=True)
            )
            for t in texts
        ]
    except (binascii.Error, ValueError):
        return "the BankID signature carries no readable signer certificate"
    try:
        leaves = [c for c in certs if not _is_ca(c)]
    except ValueError:  # a malformed extension: parsed lazily
        return "the BankID signature carries no readable signer certificate"
    if len(leaves) != 1:
        return "the BankID signature's KeyInfo does not name exactly one signer certificate"
    return leaves[0], [c for c in certs if c is not leaves[0]]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _verified_signed_data(
    xml: bytes, signer: x509.Certificate, at: dt.datetime
) -> etree._Element | str:
    """The one ``bankIdSignedData`` the verified references cover (signxml's copy)."""
    config = SignatureConfiguration(
        location="./",
        expect_references=True,
        signature_methods=_SIGNATURE_METHODS,
        verification_time=at,
    )
    try:
        results = XMLVerifier().verify(xml, x509_cert=signer, expect_config=config)
    except InvalidDigest:
        return "the BankID signature's signed references do not match their digests"
    except InvalidCertificate:
        return "the BankID signer certificate is not valid at the time of signing"
    except InvalidSignatureValue:
        return "the BankID SignatureValue does not verify with the signer certificate"
    except (
        SignXMLException,
        InvalidSignature,
        UnsupportedAlgorithm,
        etree.LxmlError,
        ValueError,
        TypeError,
        KeyError,
    ):
        return "the BankID signature is not a usable XML-DSig document"
    found: list[etree._Element] = []
    for result in results if isinstance(results, list) else [results]:
        element = result.signed_xml
        if element is None:
            continue
        if element.tag == f"{_NS}bankIdSignedData":
            found.append(element)
        else:
            found.extend(element.iter(f"{_NS}bankIdSignedData"))
    if len(found) != 1:
        return "the BankID signature's signed references do not cover one bankIdSignedData"
    return found[0]


def _ocsp_problem(
    ocsp_b64: str,
    chain: Sequence[x509.Certificate],
    others: Sequence[x509.Certificate],
    roots: Roots,
    at: dt.datetime,
) -> str | None:
    """Why the OCSP response does not vouch for the signer's certificate (None: it does)."""
    signer, issuer = chain[0], chain[1]
    try:
        response = ocsp.load_der_ocsp_response(base64.b64decode(ocsp_b64, validate=True))
    except (binascii.Error, ValueError):
        return "the BankID ocspResponse is not a DER OCSP response"
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return "the BankID ocspResponse is not successful"
    try:
        if response.serial_number != signer.serial_number or not _same_issuer(response, chain):
            return "the BankID ocspResponse is about another certificate"
        if response.certificate_status is not ocsp.OCSPCertStatus.GOOD:
            return "the BankID ocspResponse does not report the certificate as good"
    except ValueError:
        return "the BankID ocspResponse is not about exactly one certificate"
    if _signed_by(response, issuer):
        return None  # the signer's CA answered itself
    carried = list(response.certificates)
    for cert in carried:
        if not _signed_by(response, cert):
            continue
        try:
            responder = roots.responder(cert, [*carried, *others], at)
        except Untrusted as exc:
            return str(exc)
        if responder[1] != issuer:
            return "the BankID OCSP responder was not issued by the signer's CA"
        return None
    return "the BankID ocspResponse is not signed by a responder certificate it carries"


def _same_issuer(response: ocsp.OCSPResponse, chain: Sequence[x509.Certificate]) -> bool:
    """The response's CertID names the signer's issuer (name and key hashes)."""
    try:
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(chain[0], chain[1], response.hash_algorithm)
            .build()
        )
    except (ValueError, TypeError):
        return False
    return (
        request.issuer_name_hash == response.issuer_name_hash
        and request.issuer_key_hash == response.issuer_key_hash
    )


def _signed_by(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    try:
        key = cert.public_key()
        algorithm = response.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm):
        return False
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
