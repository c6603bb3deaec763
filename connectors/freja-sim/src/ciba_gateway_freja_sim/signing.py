"""The simulator's JWS signing key and certificate: generated, loaded, or kept in a directory.

Freja signs ``details`` with RS256 and names its certificate by ``x5t``; the simulator
does the same with a self-signed certificate, so a connector configured to trust that
certificate verifies the simulator exactly as it verifies Freja.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import RSAKey

__all__ = ["SigningMaterial", "b64url", "generate", "load", "load_or_create", "unsigned_token"]

_KEY_FILE = "key.pem"
_CERT_FILE = "cert.pem"
_VALIDITY = dt.timedelta(days=3650)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SigningMaterial:
    """An RSA private key with its certificate; signs compact JWS with ``{x5t, alg}``."""

    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ValueError("the simulator's signing key does not match its certificate")
        self.key = key
        self.cert = cert
        der = cert.public_bytes(serialization.Encoding.DER)
        # JWS x5t: the certificate's SHA-1, worked out here, not by the connector under test.
        self.x5t = b64url(hashlib.sha1(der, usedforsecurity=False).digest())
        self._jwk = RSAKey.import_key(self.key_pem())

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        """The certificate as PEM (what a connector's ``trusted_certs`` points at)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, payload: bytes, header: dict[str, Any] | None = None) -> str:
        """A compact RS256 JWS over ``payload`` with header ``{"x5t": ..., "alg": "RS256"}``."""
        protected = header if header is not None else {"x5t": self.x5t, "alg": "RS256"}
        return jws.serialize_compact(protected, payload, self._jwk, algorithms=["RS256"])


def generate(now: float, common_name: str = "Freja eID SIMULATOR JWS Signing") -> SigningMaterial:
    """A fresh 2048-bit RSA key and a self-signed certificate valid from a day before ``now``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ciba-gateway simulator"),
        ]
    )
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return SigningMaterial(key, cert)


def load(key_file: str | Path, cert_file: str | Path) -> SigningMaterial:
    """Read a PEM private key (unencrypted) and its PEM certificate."""
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_file}: the simulator signs with RS256 and needs an RSA key")
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    return SigningMaterial(key, cert)


def load_or_create(key_dir: str | Path, now: float) -> SigningMaterial:
    """``key.pem`` + ``cert.pem`` from ``key_dir``, written there on first use."""
    directory = Path(key_dir)
    key_file, cert_file = directory / _KEY_FILE, directory / _CERT_FILE
    if key_file.exists() and cert_file.exists():
        return load(key_file, cert_file)
    if key_file.exists() or cert_file.exists():
        raise ValueError(f"{directory}: found only one of {_KEY_FILE} and {_CERT_FILE}")
    material = generate(now)
    directory.mkdir(parents=True, exist_ok=True)
    # Write under temporary names, then link: a concurrent first start (another worker)
    # either wins the key name or loses it and loads the winner's pair.
    tmp_key = directory / f".{_KEY_FILE}.{os.getpid()}"
    tmp_cert = directory / f".{_CERT_FILE}.{os.getpid()}"
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(material.key_pem())
    tmp_cert.write_bytes(material.cert_pem())
    try:
        os.link(tmp_cert, cert_file)
        os.link(tmp_key, key_file)
    except FileExistsError:
        return load(key_file, cert_file)
    finally:
        tmp_key.unlink(missing_ok=True)
        tmp_cert.unlink(missing_ok=True)
    return material


def unsigned_token(header: dict[str, Any], payload: bytes, signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (the simulator's forgeries: alg none, HS256)."""
    encoded = b64url(json.dumps(header, separators=(",", ":")).encode())
    return f"{encoded}.{b64url(payload)}.{b64url(signature)}"
