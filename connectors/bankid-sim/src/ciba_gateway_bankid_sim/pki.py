"""The simulator's throwaway PKI: a root, an issuing CA, a signer per person, an OCSP responder.

BankID's ``completionData`` carries an XML-DSig signature (the signer's certificate
in ``KeyInfo``) and a DER OCSP response about that certificate. The simulator makes
both real: at start it creates a root CA, an issuing CA under it and a delegated
OCSP responder (``id-kp-OCSPSigning``) issued by the issuing CA, all EC P-256; each
person gets a signer certificate from the issuing CA on first use. ``signature``
signs the ``bankIdSignedData`` with signxml the way BankID lays it out: a
``Signature`` whose ``Object`` holds ``bankIdSignedData``, referenced by its ``Id``.
``write_root`` puts ``root.pem`` where a connector's ``signature_ca_file`` can name
it. The certificates are valid from 2020-01-01 (tests run with a clock in the past)
to ten years after the start. Nothing here is BankID's own trust chain.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    SignatureReference,
    XMLSigner,
    methods,
)

__all__ = ["Issued", "SimulatedPki", "sign_reference"]

ROOT_FILE = "root.pem"
_VALID_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_DAY = dt.timedelta(days=1)
_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_TYPES = "http://www.bankid.com/signature/v1.0.0/types"
_ORGANIZATION = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ciba-gateway simulator")


class Issued(NamedTuple):
    """A key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _usage(*, sign: bool = False, issue: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=sign and not issue,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=issue,
        crl_sign=issue,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    path_length: int | None = None,
    ocsp_signing: bool = False,
) -> Issued:
    """A certificate for a fresh key; ``path_length`` set makes it a CA, no issuer a root."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca = path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_VALID_FROM)
        .not_valid_after(dt.datetime.now(dt.UTC) + 3650 * _DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_usage(sign=not ca or ocsp_signing, issue=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if ocsp_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
        )
    return Issued(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


def sign_reference(
    holder: etree._Element, element_id: str, signer: Issued, chain: list[x509.Certificate]
) -> etree._Element:
    """A ``Signature`` over the element of ``holder`` whose ``Id`` is ``element_id``.

    ECDSA-SHA256, one ``Reference`` with exclusive C14N, ``chain`` in ``KeyInfo``; the
    caller moves the referenced element into the returned ``Signature``.
    """
    signed: etree._Element = XMLSigner(
        method=methods.detached,
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(
        holder,
        key=signer.key,
        cert=chain,
        reference_uri=[SignatureReference(URI=f"#{element_id}")],
    )
    return signed


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), _ORGANIZATION])


class SimulatedPki:
    """Root -> issuing CA -> signers, and the issuing CA's OCSP responder; made at once."""

    def __init__(self) -> None:
        self.root = _issue(_name("Simulated BankID Root CA"), None, path_length=1)
        self.issuing = _issue(_name("Simulated BankID Customer CA"), self.root, path_length=0)
        self.responder = _issue(
            _name("Simulated BankID OCSP Responder"), self.issuing, ocsp_signing=True
        )
        self._signers: dict[str, Issued] = {}

    def root_pem(self) -> bytes:
        """The root certificate as PEM (what ``signature_ca_file`` holds)."""
        return self.root.cert.public_bytes(serialization.Encoding.PEM)

    def write_root(self, directory: str | Path) -> Path:
        """Write ``root.pem`` into ``directory`` (created if missing), replacing it whole."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / ROOT_FILE
        partial = folder / f".{ROOT_FILE}.{os.getpid()}"
        partial.write_bytes(self.root_pem())
        os.replace(partial, target)  # a reader never sees half a file
        return target

    def signer(self, personal_number: str, name: str) -> Issued:
        """The signer key and certificate of a person (one per personal number)."""
        issued = self._signers.get(personal_number)
        if issued is None:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, personal_number),
                ]
            )
            issued = self._signers[personal_number] = _issue(subject, self.issuing)
        return issued

    def signature(
        self,
        signer: Issued,
        visible: str,
        non_visible: str | None,
        func: str,
    ) -> bytes:
        """The XML-DSig document BankID returns, signed by ``signer`` (chain in ``KeyInfo``)."""
        holder = etree.Element(f"{{{_DSIG}}}Signature", nsmap={"ds": _DSIG})
        obj = etree.SubElement(holder, f"{{{_DSIG}}}Object")
        data = etree.SubElement(
            obj, f"{{{_TYPES}}}bankIdSignedData", nsmap={None: _TYPES}, Id="bidSignedData"
        )
        etree.SubElement(data, f"{{{_TYPES}}}usrVisibleData").text = visible
        if non_visible:
            etree.SubElement(data, f"{{{_TYPES}}}usrNonVisibleData").text = non_visible
        client = etree.SubElement(data, f"{{{_TYPES}}}clientInfo")
        etree.SubElement(client, f"{{{_TYPES}}}funcId").text = func
        signed = sign_reference(holder, "bidSignedData", signer, [signer.cert, self.issuing.cert])
        # Exclusive C14N: the digest does not depend on where the Object ends up.
        signed.append(obj)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

    def ocsp_response(
        self, cert: x509.Certificate, issuer: x509.Certificate | None = None
    ) -> bytes:
        """A DER OCSP response ``good`` for ``cert``, signed by this PKI's responder, with a nonce.

        ``issuer`` is the CA its CertID names (default: this PKI's issuing CA).
        """
        now = dt.datetime.now(dt.UTC)
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=cert,
                issuer=issuer or self.issuing.cert,
                algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now,
                next_update=now + _DAY,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.responder.cert)
            .certificates([self.responder.cert])
            .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
            .sign(self.responder.key, hashes.SHA256())
        )
        return response.public_bytes(serialization.Encoding.DER)
