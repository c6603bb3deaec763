"""Forged completions of a sign order: each changes what the simulator's genuine one proves.

A forgery takes the simulator (for its PKI and the person's signer key) and the
genuine ``CompletionData`` and returns the one the connector then collects. The
``problem`` each must be refused with is part of ``FORGERIES``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from ciba_gateway_bankid.wire import CompletionData
from ciba_gateway_bankid_sim.pki import SimulatedPki, sign_reference
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from lxml import etree
from msgspec.structs import replace

DS = "http://www.w3.org/2000/09/xmldsig#"
TYPES = "http://www.bankid.com/signature/v1.0.0/types"
Forgery = Callable[[BankIDSimulator, CompletionData], CompletionData]


def signature_xml(completion: CompletionData) -> bytes:
    """The XML-DSig document of a completion."""
    return base64.b64decode(completion.signature or "")


def with_signature(completion: CompletionData, xml: bytes) -> CompletionData:
    return replace(completion, signature=base64.b64encode(xml).decode())


def signed_field(completion: CompletionData, name: str) -> str | None:
    """A child of ``bankIdSignedData`` as the document holds it."""
    root = etree.fromstring(signature_xml(completion))
    return root.findtext(f".//{{{TYPES}}}bankIdSignedData/{{{TYPES}}}{name}")


def changed_content(sim: BankIDSimulator, completion: CompletionData) -> CompletionData:
    """One byte of the signed ``bankIdSignedData`` changed (in clientInfo, not in our data)."""
    xml = signature_xml(completion)
    assert xml.count(b"<funcId>Signing<") == 1
    return with_signature(completion, xml.replace(b"<funcId>Signing<", b"<funcId>Signinh<"))


def changed_signature_value(sim: BankIDSimulator, completion: CompletionData) -> CompletionData:
    """One byte of the SignatureValue changed."""
    root = etree.fromstring(signature_xml(completion))
    node = root.find(f"{{{DS}}}SignatureValue")
    assert node is not None and node.text
    raw = bytearray(base64.b64decode(node.text))
    raw[len(raw) // 2] ^= 0x01
    node.text = base64.b64encode(bytes(raw)).decode()
    return with_signature(completion, etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def another_root(sim: BankIDSimulator, completion: CompletionData) -> CompletionData:
    """The same data signed under a root the connector does not trust (its own OCSP too)."""
    other = SimulatedPki()
    assert completion.user is not None
    signer = other.signer(completion.user.personal_number, completion.user.name)
    xml = other.signature(
        signer,
        signed_field(completion, "usrVisibleData") or "",
        signed_field(completion, "usrNonVisibleData"),
        "Signing",
    )
    ocsp = base64.b64encode(other.ocsp_response(signer.cert)).decode()
    return replace(with_signature(completion, xml), ocsp_response=ocsp)


def uncovered_data(sim: BankIDSimulator, completion: CompletionData) -> CompletionData:
    """The person's key signs something else; the genuine bankIdSignedData sits beside it."""
    assert completion.user is not None
    signer = sim.pki.signer(completion.user.personal_number, completion.user.name)
    holder = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
    decoy = etree.SubElement(holder, f"{{{DS}}}Object")
    etree.SubElement(decoy, "{urn:example:decoy}note", Id="decoy").text = "something else"
    forged = sign_reference(holder, "decoy", signer, [signer.cert, sim.pki.issuing.cert])
    forged.append(decoy)
    genuine = etree.fromstring(signature_xml(completion)).find(f"{{{DS}}}Object")
    assert genuine is not None
    forged.append(genuine)
    return with_signature(completion, etree.tostring(forged, encoding="UTF-8"))


def untrusted_responder(sim: BankIDSimulator, completion: CompletionData) -> CompletionData:
    """An OCSP response about the right certificate, signed by another PKI's responder."""
    assert completion.user is not None
    signer = sim.pki.signer(completion.user.personal_number, completion.user.name)
    forged = SimulatedPki().ocsp_response(signer.cert, issuer=sim.pki.issuing.cert)
    return replace(completion, ocsp_response=base64.b64encode(forged).decode())


FORGERIES: dict[str, tuple[Forgery, str]] = {
    "changed_content": (changed_content, "do not match their digests"),
    "changed_signature_value": (changed_signature_value, "SignatureValue does not verify"),
    "another_root": (another_root, "signer certificate has no valid path"),
    "uncovered_data": (uncovered_data, "do not cover one bankIdSignedData"),
    "untrusted_responder": (untrusted_responder, "OCSP responder certificate has no valid path"),
}
"""name -> (forgery, what the refusal's reason says)."""
