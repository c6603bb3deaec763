"""The simulator's throwaway PKI: a signer certificate per person and real OCSP responses.

BankID's ``completionData`` carries the XML-DSig signature (with the signer's
certificate in ``KeyInfo``) and a DER OCSP response about that certificate. The
simulator makes both real in form: one EC P-256 CA (also the OCSP responder), a
certificate per personal number, and an OCSP response ``good`` for it, signed by
the responder and carrying its certificate and a nonce. Nothing here is BankID's
trust chain; the connector checks the evidence's consistency, not its anchor.
"""

from __future__ import annotations

import datetime as dt
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

__all__ = ["SimulatedPki"]

_DAY = dt.timedelta(days=1)


class SimulatedPki:
    """A CA that issues signer certificates and answers OCSP for them; made on first use."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "Simulated BankID Customer CA"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ciba-gateway simulator"),
            ]
        )
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 365 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._certs: dict[str, x509.Certificate] = {}

    def certificate(self, personal_number: str, name: str) -> x509.Certificate:
        """The signer certificate of a person (one per personal number)."""
        cert = self._certs.get(personal_number)
        if cert is None:
            now = dt.datetime.now(dt.UTC)
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, personal_number),
                ]
            )
            cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(self.ca.subject)
                .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _DAY)
                .not_valid_after(now + 365 * _DAY)
                .sign(self._key, hashes.SHA256())
            )
            self._certs[personal_number] = cert
        return cert

    def ocsp_response(self, cert: x509.Certificate) -> bytes:
        """A DER OCSP response: ``good`` for ``cert``, signed by the CA, with a nonce."""
        now = dt.datetime.now(dt.UTC)
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=cert,
                issuer=self.ca,
                algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now,
                next_update=now + _DAY,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
            .certificates([self.ca])
            .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return response.public_bytes(serialization.Encoding.DER)
