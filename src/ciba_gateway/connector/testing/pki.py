"""A throwaway PKI for mTLS tests: a CA, a server and a client certificate.

Not for production use: keys are unencrypted files, certificates last two days.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TestPki:
    """PEM file paths: the CA certificate, and server / client certificate+key bundles."""

    __test__ = False  # a helper, not a pytest test class

    ca: str
    server: str
    client: str


def _issue(
    subject: str,
    not_before: dt.datetime,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[1].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return key, builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def _bundle(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> str:
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def issue_test_pki(directory: Path, *, name: str = "Test") -> TestPki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, under ``directory``."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca = _issue(f"{name} Root CA", start, ca=True)
    server = _issue("upstream.test", start, ca, ip="127.0.0.1")
    client = _issue(f"{name} RP", start, ca)
    (directory / "ca.pem").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    return TestPki(
        ca=str(directory / "ca.pem"),
        server=_bundle(directory / "server.pem", *server),
        client=_bundle(directory / "client.pem", *client),
    )


def issue_self_signed_certificate(directory: Path, *, name: str = "Self-signed RP") -> str:
    """A self-signed client certificate + key bundle (``self_signed_tls_client_auth``)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    key, cert = _issue(name, start)
    return _bundle(directory / "self-signed.pem", key, cert)
