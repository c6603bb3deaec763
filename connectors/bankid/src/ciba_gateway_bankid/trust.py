"""The roots a BankID signature must chain to (``signature_ca_file``) and the chain checks.

cryptography's X.509 path validation (``PolicyBuilder`` over a ``Store`` of the
configured roots) builds each chain. The profile is BankID's, not the web's: a CA
needs ``basicConstraints`` with ``cA`` (and ``keyCertSign`` when it has a key usage);
the signer is no CA and, when it has a key usage, may sign (``digitalSignature`` or
``nonRepudiation``); a delegated OCSP responder carries ``id-kp-OCSPSigning``. No
extended key usage or subject alternative name is asked of the signer: BankID's
person certificates have neither.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

__all__ = ["Roots", "Untrusted"]

_MAX_DEPTH = 4
"""Intermediate CAs allowed between a root and a certificate (BankID uses two)."""


class Untrusted(Exception):
    """A certificate does not chain to a configured root (the message says which one)."""


def _may_issue(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("a CA certificate's key usage lacks keyCertSign")


def _not_a_ca(
    _policy: Policy, _cert: x509.Certificate, constraints: x509.BasicConstraints | None
) -> None:
    if constraints is not None and constraints.ca:
        raise ValueError("a CA certificate cannot be the signer or the responder")


def _may_sign(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise ValueError("the key usage allows neither digitalSignature nor nonRepudiation")


def _answers_ocsp(_policy: Policy, _cert: x509.Certificate, usage: x509.ExtendedKeyUsage) -> None:
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
        raise ValueError("the responder certificate lacks id-kp-OCSPSigning")


def _ca_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _may_issue)
    )


def _signer_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.permit_all()
        .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, _not_a_ca)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _may_sign)
    )


def _responder_policy() -> ExtensionPolicy:
    return _signer_policy().require_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _answers_ocsp
    )


class Roots:
    """The trusted roots of one connector; builds chains for signers and OCSP responders."""

    def __init__(self, certificates: Sequence[x509.Certificate]) -> None:
        if not certificates:
            raise ValueError("at least one root certificate is needed")
        self._store = Store(list(certificates))

    @classmethod
    def load(cls, path: str) -> Roots:
        """The PEM certificates in the file at ``path`` (one or more roots).

        Raises:
            ValueError: the file cannot be read or holds no PEM certificate.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read signature_ca_file {path}: {exc.strerror}") from None
        try:
            return cls(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise ValueError(f"no PEM certificate in signature_ca_file {path}") from None

    def signer(
        self, leaf: x509.Certificate, others: Sequence[x509.Certificate], at: dt.datetime
    ) -> list[x509.Certificate]:
        """The chain of a signer certificate, leaf first, root last.

        Raises:
            Untrusted: no valid path from ``leaf`` through ``others`` to a root at ``at``.
        """
        return self._chain(leaf, others, at, _signer_policy(), "signer")

    def responder(
        self, leaf: x509.Certificate, others: Sequence[x509.Certificate], at: dt.datetime
    ) -> list[x509.Certificate]:
        """The chain of a delegated OCSP responder certificate, leaf first.

        Raises:
            Untrusted: not a valid OCSP responder chaining to a root at ``at``.
        """
        return self._chain(leaf, others, at, _responder_policy(), "OCSP responder")

    def _chain(
        self,
        leaf: x509.Certificate,
        others: Sequence[x509.Certificate],
        at: dt.datetime,
        policy: ExtensionPolicy,
        role: str,
    ) -> list[x509.Certificate]:
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(_MAX_DEPTH)
            .extension_policies(ca_policy=_ca_policy(), ee_policy=policy)
            .build_client_verifier()
        )
        try:
            return verifier.verify(leaf, list(others)).chain
        except (VerificationError, UnsupportedAlgorithm, ValueError):
            # The library's message names the certificate's subject (a person): not kept.
            raise Untrusted(
                f"the BankID {role} certificate has no valid path to a signature_ca_file root"
            ) from None
