"""Verification of the ``details`` JWS of an APPROVED result (UPSTREAMS.md 2.4).

``details`` is a compact JWS with header ``{"x5t": ..., "alg": "RS256"}`` signed by
Freja's JWS signing certificate. The connector trusts only the certificates of its
config, each found by ``x5t`` (base64url SHA-1 of the DER certificate) or, as an
alternative, by a configured ``kid``. Checks, in order:

1. three base64url parts, a JSON header whose ``alg`` is exactly ``RS256`` (``none``,
   ``HS*`` and everything else are refused before any key is touched);
2. a trusted certificate for the header's ``x5t`` (or ``kid``), valid at ``now``;
3. the RSASSA-PKCS1-v1_5/SHA-256 signature (joserfc);
4. the payload: ``authRef`` (``signRef`` for a signature) is ours, ``status`` is
   APPROVED, ``userInfoType`` and ``userInfo`` are what we sent,
   ``minRegistrationLevel`` is at least the one we required, ``timestamp`` (epoch ms)
   is recent and not in the future;
5. a signature: ``signatureType`` is SIMPLE and the payload of
   ``signatureData.userSignature`` (a compact JWS) is exactly the text we sent.

Each refusal is a ``DetailsError`` whose ``check`` names the failed step; it never
carries personal data, so it is safe to log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from ciba_gateway.connector import MAX_UPSTREAM_JSON_BYTES, decode_json
from ciba_gateway_freja.wire import (
    RequestedAttributes,
    decode_ssn_user_info,
    level_rank,
)

__all__ = [
    "DetailsError",
    "Expected",
    "TrustStore",
    "TrustedCert",
    "VerifiedApproval",
    "load_certificates",
    "verify_details",
    "x5t_of",
]

_MIN_RSA_BITS = 2048


class DetailsError(Exception):
    """The ``details`` JWS or its payload failed a check; ``check`` names which."""

    def __init__(self, check: str, description: str) -> None:
        super().__init__(f"{check}: {description}")
        self.check = check
        self.description = description


def x5t_of(cert: x509.Certificate) -> str:
    """The JWS ``x5t`` of a certificate: base64url (unpadded) SHA-1 of its DER form."""
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha1(der, usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def load_certificates(source: str) -> list[x509.Certificate]:
    """The certificates of an inline PEM (``-----BEGIN``...) or of a PEM file at path ``source``.

    Raises:
        ValueError: no certificate could be read (the message names the path, not the PEM).
    """
    if "-----BEGIN" in source:
        data, origin = source.encode(), "inline PEM"
    else:
        origin = source
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ValueError(f"cannot read certificate file {source}: {exc.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"no PEM certificate in {origin}") from None
    return certs


class TrustedCert:
    """A pinned signing certificate with its ``x5t``, optional ``kid`` and verification key."""

    def __init__(self, cert: x509.Certificate, kid: str | None = None) -> None:
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise ValueError("a Freja signing certificate must hold an RSA key")
        if public.key_size < _MIN_RSA_BITS:
            raise ValueError(f"a Freja signing key must have at least {_MIN_RSA_BITS} bits")
        self.cert = cert
        self.kid = kid
        self.x5t = x5t_of(cert)
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key = RSAKey.import_key(pem)

    def valid_at(self, now: float) -> bool:
        """True when ``now`` (epoch seconds) lies inside the certificate's validity."""
        return (
            self.cert.not_valid_before_utc.timestamp()
            <= now
            <= self.cert.not_valid_after_utc.timestamp()
        )


class TrustStore:
    """The certificates a connector trusts for ``details``, by ``x5t`` and by ``kid``."""

    def __init__(self, certs: Iterable[TrustedCert]) -> None:
        self.certs = tuple(certs)
        if not self.certs:
            raise ValueError("at least one trusted certificate is needed")
        self._by_x5t = {c.x5t: c for c in self.certs}
        self._by_kid = {c.kid: c for c in self.certs if c.kid is not None}

    @classmethod
    def load(cls, sources: Iterable[tuple[str, str | None]]) -> TrustStore:
        """Load ``(pem or path, kid)`` pairs; a bundle file contributes every certificate."""
        trusted = []
        for source, kid in sources:
            for cert in load_certificates(source):
                trusted.append(TrustedCert(cert, kid))
        return cls(trusted)

    def find(self, header: Mapping[str, Any]) -> TrustedCert:
        """The certificate the header names: by ``x5t`` when present, else by ``kid``."""
        x5t = header.get("x5t")
        if x5t is not None:
            if isinstance(x5t, str) and x5t in self._by_x5t:
                return self._by_x5t[x5t]
            raise DetailsError("unknown_key", "the x5t of the details JWS is not trusted")
        kid = header.get("kid")
        if isinstance(kid, str) and kid in self._by_kid:
            return self._by_kid[kid]
        raise DetailsError("unknown_key", "the details JWS names no trusted x5t or kid")


class Expected(msgspec.Struct, frozen=True, kw_only=True):
    """What the payload must match: our request as sent."""

    auth_ref: str
    user_info_type: str
    user_info: str
    """Exactly as sent (for SSN, the base64 of ``{"country","ssn"}``)."""
    min_registration_level: str
    ref_name: str = "authRef"
    """``signRef`` for a signature result."""
    signed_text_sha256: str | None = None
    """A signature: hex SHA-256 of the UTF-8 text the user had to sign."""


class VerifiedApproval(msgspec.Struct, frozen=True, kw_only=True):
    """The facts taken from a verified payload."""

    auth_ref: str
    min_registration_level: str
    timestamp_ms: int
    attributes: RequestedAttributes
    user_signature: str | None = None
    """A signature: ``signatureData.userSignature`` (its payload is the signed text)."""


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise DetailsError("malformed", "details is not a compact JWS")
    try:
        header = decode_json(_b64url(parts[0]))
    except (binascii.Error, ValueError):
        raise DetailsError("malformed", "the details JWS header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise DetailsError("malformed", "the details JWS header is not a JSON object")
    return header


def _same_user(user_info_type: str, sent: str, signed: Any) -> bool:
    if user_info_type == "SSN":
        try:
            ours = dict(zip(("country", "ssn"), decode_ssn_user_info(sent), strict=True))
        except ValueError:
            return False
        if isinstance(signed, str):
            # One Freja client sees a JSON string here, another an object: accept both.
            try:
                signed = decode_json(signed)
            except ValueError:
                return False
        return isinstance(signed, dict) and signed == ours
    if not isinstance(signed, str):
        return False
    if user_info_type == "EMAIL":
        return signed.casefold() == sent.casefold()
    return signed == sent


def verify_details(
    token: str,
    trust: TrustStore,
    expected: Expected,
    *,
    now: float,
    max_age: float,
    clock_skew: float,
) -> VerifiedApproval:
    """Verify ``details`` (module docstring) and return the verified facts.

    Raises:
        DetailsError: any check failed.
    """
    header = _header(token)
    if header.get("alg") != "RS256":
        raise DetailsError("alg", "the details JWS must be signed with RS256")
    if "crit" in header:
        raise DetailsError("malformed", "the details JWS has critical header parameters")
    trusted = trust.find(header)
    if not trusted.valid_at(now):
        raise DetailsError("cert_validity", "the signing certificate is not valid now")
    try:
        signed = jws.deserialize_compact(token, trusted.key, algorithms=["RS256"])
    except (JoseError, ValueError):
        raise DetailsError("signature", "the details JWS signature does not verify") from None
    try:
        payload = decode_json(signed.payload, max_bytes=MAX_UPSTREAM_JSON_BYTES)
    except ValueError:
        raise DetailsError("malformed", "the details payload is not JSON") from None
    if not isinstance(payload, dict):
        raise DetailsError("malformed", "the details payload is not a JSON object")
    return _check_payload(payload, expected, now=now, max_age=max_age, clock_skew=clock_skew)


def _check_payload(
    payload: dict[str, Any], expected: Expected, *, now: float, max_age: float, clock_skew: float
) -> VerifiedApproval:
    if payload.get(expected.ref_name) != expected.auth_ref:
        raise DetailsError("auth_ref", "the signed result is for another authentication")
    if payload.get("status") != "APPROVED":
        raise DetailsError("status", "the signed result is not APPROVED")
    if payload.get("userInfoType") != expected.user_info_type or not _same_user(
        expected.user_info_type, expected.user_info, payload.get("userInfo")
    ):
        raise DetailsError("user_info", "the signed result is for another user")
    # Freja's documented default when the request omits the level is BASIC.
    level = payload.get("minRegistrationLevel", "BASIC")
    if level_rank(level) < level_rank(expected.min_registration_level):
        raise DetailsError("level", "the signed registration level is below the one required")
    timestamp = payload.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise DetailsError("timestamp", "the signed result has no timestamp")
    if timestamp < (now - max_age) * 1000:
        raise DetailsError("timestamp", "the signed result is too old")
    if timestamp > (now + clock_skew) * 1000:
        raise DetailsError("timestamp", "the signed result is from the future")
    try:
        attributes = msgspec.convert(payload.get("requestedAttributes") or {}, RequestedAttributes)
    except msgspec.ValidationError:
        raise DetailsError("attributes", "the signed requestedAttributes are malformed") from None
    user_signature = None
    if expected.signed_text_sha256 is not None:
        user_signature = _signed_text(payload, expected.signed_text_sha256)
    return VerifiedApproval(
        auth_ref=expected.auth_ref,
        min_registration_level=str(level),
        timestamp_ms=timestamp,
        attributes=attributes,
        user_signature=user_signature,
    )


def _signed_text(payload: dict[str, Any], text_sha256: str) -> str:
    """The userSignature of a SIMPLE signature, checked to sign exactly our text."""
    data = payload.get("signatureData")
    if payload.get("signatureType") != "SIMPLE" or not isinstance(data, dict):
        raise DetailsError("signature_data", "the signed result has no SIMPLE signatureData")
    user_signature = data.get("userSignature")
    parts = user_signature.split(".") if isinstance(user_signature, str) else []
    if len(parts) != 3:
        raise DetailsError("signature_data", "userSignature is not a compact JWS")
    try:
        signed = _b64url(parts[1])
    except (binascii.Error, ValueError):
        raise DetailsError("signature_data", "userSignature's payload is not base64url") from None
    if hashlib.sha256(signed).hexdigest() != text_sha256:
        raise DetailsError("signed_text", "the user signed another text than the one we sent")
    return str(user_signature)
