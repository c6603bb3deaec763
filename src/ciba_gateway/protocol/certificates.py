"""Client certificates for mutual TLS (RFC 8705) and where a request's certificate comes from.

Source of the certificate (``presented_certificate``):

- the RFC 9440 ``Client-Cert`` header (a Structured Field byte sequence of the
  DER certificate), believed **only** when the TCP peer is one of
  ``server.trusted_proxies``; the header from any other peer is refused with
  ``invalid_request`` and logged (``client_cert_from_untrusted_peer``), since
  anyone can type a header;
- otherwise the ASGI TLS extension's ``client_cert_chain`` (the leaf, PEM), for
  a server that terminates TLS itself and exposes it.

The certificate is parsed only when something needs it (client authentication
or a bound token), so a request of a client that does not use mTLS pays for
one header comparison at most.

``tls_client_auth`` (RFC 8705 2.1): the chain is verified with
``cryptography``'s X.509 verifier against the tenant's ``mtls.ca_file``
(validity period, signatures, CA basic constraints; no web-PKI extension
rules for the leaf, since bank PKIs differ), then the registered subject DN
or SAN must match. ``self_signed_tls_client_auth`` (2.2): the certificate's
public key must be one of the client's JWKS keys; its chain is irrelevant.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import http_sf
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ciba_gateway.errors import ConfigError, ConfigProblem, InvalidClientError, InvalidRequestError

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

    from ciba_gateway.config.model import ClientAuth

__all__ = [
    "ClientCertificate",
    "TrustedProxies",
    "key_in_key_set",
    "load_trust_anchors",
    "matches_subject",
    "presented_certificate",
    "verify_chain",
]

log = structlog.get_logger("ciba_gateway.mtls")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientCertificate:
    """The DER certificate a request presented; parsed on first use."""

    __slots__ = ("_parsed", "chain", "der")

    def __init__(self, der: bytes, chain: Sequence[bytes] = ()) -> None:
        self.der = der
        self.chain = tuple(chain)
        """Intermediate certificates (DER) sent along, leaf first excluded."""
        self._parsed: x509.Certificate | None = None

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate; ``invalid_client`` when it is not X.509 DER."""
        if self._parsed is None:
            try:
                self._parsed = x509.load_der_x509_certificate(self.der)
            except ValueError:
                raise InvalidClientError("the client certificate is not valid X.509") from None
        return self._parsed

    @property
    def thumbprint(self) -> str:
        """``x5t#S256`` (RFC 8705 3.1): base64url SHA-256 of the DER certificate."""
        digest = hashlib.sha256(self.der).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class TrustedProxies:
    """The peers whose ``Client-Cert`` header is believed (``server.trusted_proxies``)."""

    __slots__ = ("_networks",)

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(e, strict=False) for e in entries
        )

    def __contains__(self, peer: str | None) -> bool:
        if peer is None or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def _byte_sequence(value: str, header: str) -> bytes:
    try:
        item, _params = http_sf.parse(value.encode("latin-1"), tltype="item")
    except Exception:
        raise InvalidRequestError(f"{header} is not a structured field byte sequence") from None
    if not isinstance(item, bytes):
        raise InvalidRequestError(f"{header} is not a structured field byte sequence")
    return item


def _chain(value: str | None) -> tuple[bytes, ...]:
    if not value:
        return ()
    try:
        members = http_sf.parse(value.encode("latin-1"), tltype="list")
    except Exception:
        raise InvalidRequestError("Client-Cert-Chain is not a list of byte sequences") from None
    chain = tuple(item for item, _params in members if isinstance(item, bytes))
    if len(chain) != len(members):
        raise InvalidRequestError("Client-Cert-Chain is not a list of byte sequences")
    return chain


def presented_certificate(
    *,
    header: str | None,
    chain_header: str | None,
    peer: str | None,
    trusted: TrustedProxies,
    tls: Mapping[str, Any] | None,
) -> ClientCertificate | None:
    """The client certificate of a request, or None.

    Args:
        header: the ``Client-Cert`` header (RFC 9440 section 2.2), if any.
        chain_header: the ``Client-Cert-Chain`` header, if any.
        peer: the TCP peer's address.
        tls: the ASGI scope's ``extensions["tls"]``, if the server gives one.

    Raises:
        InvalidRequestError: the header came from a peer that is not a trusted
            proxy, or is malformed.
    """
    if header is not None or chain_header is not None:
        if peer not in trusted:
            log.warning("client_cert_from_untrusted_peer", peer=peer)
            raise InvalidRequestError("a Client-Cert header is accepted only from trusted proxies")
        if header is None:
            raise InvalidRequestError("Client-Cert-Chain without Client-Cert")
        return ClientCertificate(_byte_sequence(header, "Client-Cert"), _chain(chain_header))
    if tls:
        pems = tls.get("client_cert_chain") or ()
        if pems:
            ders = []
            for pem in pems:
                cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
                ders.append(cert.public_bytes(serialization.Encoding.DER))
            return ClientCertificate(ders[0], ders[1:])
    return None


def load_trust_anchors(path: str) -> Store:
    """The CA certificates of a PEM file, as a verification store.

    Raises:
        ConfigError: the file cannot be read or holds no certificate.
    """
    where = "mtls.ca_file"
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError([ConfigProblem(where, f"cannot read {path}: {exc.strerror}")]) from None
    except ValueError:
        raise ConfigError([ConfigProblem(where, f"{path} holds no PEM certificate")]) from None
    return Store(certs)


def _is_ca(_policy: Any, _cert: Any, ext: x509.BasicConstraints | None) -> None:
    if ext is None or not ext.ca:
        raise ValueError("an issuer must be a CA")


_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca
)


def verify_chain(presented: ClientCertificate, anchors: Store) -> None:
    """The certificate chains to one of ``anchors`` and is within its validity period.

    Raises:
        InvalidClientError: it does not.
    """
    verifier = (
        PolicyBuilder()
        .store(anchors)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        intermediates = [x509.load_der_x509_certificate(der) for der in presented.chain]
        verifier.verify(presented.certificate, intermediates)
    except (VerificationError, ValueError):
        raise InvalidClientError("the client certificate is not trusted") from None


def matches_subject(auth: ClientAuth, cert: x509.Certificate) -> bool:
    """The certificate carries the subject registered for ``tls_client_auth`` (RFC 8705 2.1.2)."""
    if auth.tls_client_auth_subject_dn is not None:
        try:
            expected = x509.Name.from_rfc4514_string(auth.tls_client_auth_subject_dn)
        except ValueError:
            return False
        return cert.subject == expected
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if auth.tls_client_auth_san_dns is not None:
        wanted = auth.tls_client_auth_san_dns.lower()
        return any(n.lower() == wanted for n in sans.get_values_for_type(x509.DNSName))
    if auth.tls_client_auth_san_uri is not None:
        return auth.tls_client_auth_san_uri in sans.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    if auth.tls_client_auth_san_email is not None:
        wanted = auth.tls_client_auth_san_email.lower()
        return any(n.lower() == wanted for n in sans.get_values_for_type(x509.RFC822Name))
    if auth.tls_client_auth_san_ip is not None:
        try:
            wanted_ip = ipaddress.ip_address(auth.tls_client_auth_san_ip)
        except ValueError:
            return False
        return wanted_ip in sans.get_values_for_type(x509.IPAddress)
    return False


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_in_key_set(cert: x509.Certificate, keys: KeySet) -> bool:
    """The certificate's public key is one of ``keys`` (RFC 8705 2.2)."""
    wanted = _spki(cert.public_key())
    for key in keys.keys:
        public = getattr(key, "public_key", None)
        if public is not None and _spki(public) == wanted:
            return True
    return False
