"""protocol.certificates: where a client certificate comes from and how it is matched (RFC 8705)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import KeySet
from structlog.testing import capture_logs

from ciba_gateway.config.model import ClientAuth
from ciba_gateway.connector.testing import issue_self_signed_certificate, issue_test_pki
from ciba_gateway.errors import InvalidClientError, InvalidRequestError
from ciba_gateway.protocol.certificates import (
    ClientCertificate,
    TrustedProxies,
    key_in_key_set,
    load_trust_anchors,
    matches_subject,
    presented_certificate,
    verify_chain,
)
from ciba_gateway.tokens.keys import generate_private_jwk
from tests.mtls_kit import certificate


def _der(bundle: str) -> bytes:
    return certificate(bundle).public_bytes(serialization.Encoding.DER)


def _header(der: bytes) -> str:
    return ":" + base64.b64encode(der).decode() + ":"


def _with_sans(*names: x509.GeneralName) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "san test")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .sign(key, hashes.SHA256())
    )


TRUSTED = TrustedProxies(["127.0.0.2", "10.1.0.0/16"])


class TestPresented:
    def test_header_from_a_trusted_proxy_is_the_certificate(self, tmp_path: Path) -> None:
        """A Client-Cert byte sequence from a listed proxy yields that DER certificate."""
        pki = issue_test_pki(tmp_path)
        der = _der(pki.client)
        cert = presented_certificate(
            header=_header(der), chain_header=None, peer="10.1.2.3", trusted=TRUSTED, tls=None
        )
        assert cert is not None and cert.der == der
        assert cert.certificate.subject.rfc4514_string() == "CN=Test RP"

    def test_header_from_an_untrusted_peer_is_refused_and_logged(self, tmp_path: Path) -> None:
        """Anyone can type a header: from a peer not listed it is invalid_request, logged."""
        der = _der(issue_test_pki(tmp_path).client)
        with capture_logs() as logs, pytest.raises(InvalidRequestError, match="trusted proxies"):
            presented_certificate(
                header=_header(der), chain_header=None, peer="127.0.0.1", trusted=TRUSTED, tls=None
            )
        assert [e["event"] for e in logs] == ["client_cert_from_untrusted_peer"]
        assert logs[0]["peer"] == "127.0.0.1"

    def test_no_proxies_configured_trusts_nobody(self, tmp_path: Path) -> None:
        """With an empty trusted_proxies list the header is refused from loopback too."""
        der = _der(issue_test_pki(tmp_path).client)
        with pytest.raises(InvalidRequestError):
            presented_certificate(
                header=_header(der),
                chain_header=None,
                peer="127.0.0.1",
                trusted=TrustedProxies([]),
                tls=None,
            )

    @pytest.mark.parametrize("value", ["MIIB", "?1", ":not base64!:", '"text"'])
    def test_a_header_that_is_no_byte_sequence_is_invalid_request(self, value: str) -> None:
        """RFC 9440 2.2: the value must be a Structured Field byte sequence."""
        with pytest.raises(InvalidRequestError, match="byte sequence"):
            presented_certificate(
                header=value, chain_header=None, peer="127.0.0.2", trusted=TRUSTED, tls=None
            )

    def test_a_byte_sequence_that_is_no_certificate_fails_client_auth(self) -> None:
        """Bytes that do not parse as X.509 surface as invalid_client when used."""
        cert = presented_certificate(
            header=":AAEC:", chain_header=None, peer="127.0.0.2", trusted=TRUSTED, tls=None
        )
        assert cert is not None
        with pytest.raises(InvalidClientError):
            _ = cert.certificate

    def test_chain_header_is_read_as_a_list(self, tmp_path: Path) -> None:
        """Client-Cert-Chain carries further certificates as a list of byte sequences."""
        pki = issue_test_pki(tmp_path)
        ca_der = x509.load_pem_x509_certificate(Path(pki.ca).read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        cert = presented_certificate(
            header=_header(_der(pki.client)),
            chain_header=_header(ca_der),
            peer="127.0.0.2",
            trusted=TRUSTED,
            tls=None,
        )
        assert cert is not None and cert.chain == (ca_der,)

    def test_asgi_tls_extension_gives_the_certificate(self, tmp_path: Path) -> None:
        """A server terminating TLS itself exposes client_cert_chain (PEM) in the scope."""
        pki = issue_test_pki(tmp_path)
        pem = certificate(pki.client).public_bytes(serialization.Encoding.PEM).decode()
        cert = presented_certificate(
            header=None,
            chain_header=None,
            peer="192.0.2.1",
            trusted=TRUSTED,
            tls={"client_cert_chain": [pem]},
        )
        assert cert is not None and cert.der == _der(pki.client)

    def test_nothing_presented_is_none(self) -> None:
        """No header and no TLS extension: no certificate (and no error)."""
        assert (
            presented_certificate(
                header=None, chain_header=None, peer="1.2.3.4", trusted=TRUSTED, tls={}
            )
            is None
        )

    def test_thumbprint_is_x5t_s256(self) -> None:
        """x5t#S256 is base64url(SHA-256(DER)) without padding (RFC 8705 3.1)."""
        der = b"\x30\x03\x02\x01\x01"
        expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        assert ClientCertificate(der).thumbprint == expected


class TestChain:
    def test_a_certificate_of_the_ca_verifies(self, tmp_path: Path) -> None:
        """The throwaway PKI's client certificate chains to its CA."""
        pki = issue_test_pki(tmp_path)
        verify_chain(ClientCertificate(_der(pki.client)), load_trust_anchors(pki.ca))

    def test_a_certificate_of_another_ca_is_not_trusted(self, tmp_path: Path) -> None:
        """Same subject, other CA: invalid_client."""
        ours = issue_test_pki(tmp_path)
        (tmp_path / "other").mkdir()
        theirs = issue_test_pki(tmp_path / "other")
        with pytest.raises(InvalidClientError, match="not trusted"):
            verify_chain(ClientCertificate(_der(theirs.client)), load_trust_anchors(ours.ca))

    def test_a_self_signed_certificate_is_not_trusted(self, tmp_path: Path) -> None:
        """A self-signed leaf does not chain to the tenant's CA."""
        pki = issue_test_pki(tmp_path)
        own = issue_self_signed_certificate(tmp_path)
        with pytest.raises(InvalidClientError):
            verify_chain(ClientCertificate(_der(own)), load_trust_anchors(pki.ca))

    def test_trust_anchor_file_problems_are_config_errors(self, tmp_path: Path) -> None:
        """A missing or empty CA file is reported with its config path."""
        from ciba_gateway.errors import ConfigError

        with pytest.raises(ConfigError) as missing:
            load_trust_anchors(str(tmp_path / "nope.pem"))
        assert missing.value.problems[0].path == "mtls.ca_file"
        (tmp_path / "empty.pem").write_text("hello")
        with pytest.raises(ConfigError, match="no PEM certificate"):
            load_trust_anchors(str(tmp_path / "empty.pem"))


def _auth(**subject: str) -> ClientAuth:
    return ClientAuth(method="tls_client_auth", **subject)


class TestSubject:
    def test_subject_dn_matches_as_a_name(self, tmp_path: Path) -> None:
        """The registered RFC 4514 DN must equal the certificate's subject."""
        cert = certificate(issue_test_pki(tmp_path).client)
        assert matches_subject(_auth(tls_client_auth_subject_dn="CN=Test RP"), cert)
        assert not matches_subject(_auth(tls_client_auth_subject_dn="CN=Other RP"), cert)
        assert not matches_subject(_auth(tls_client_auth_subject_dn="not a dn"), cert)

    @pytest.mark.parametrize(
        ("field", "good", "bad"),
        [
            ("tls_client_auth_san_dns", "RP.Example.com", "other.example.com"),
            ("tls_client_auth_san_uri", "https://rp.example.com/id", "https://rp.example.com/"),
            ("tls_client_auth_san_email", "ops@rp.example.com", "x@rp.example.com"),
            ("tls_client_auth_san_ip", "192.0.2.7", "192.0.2.8"),
        ],
    )
    def test_san_entries_match(self, field: str, good: str, bad: str) -> None:
        """Each SAN kind of RFC 8705 2.1.2 matches its own entry type only."""
        cert = _with_sans(
            x509.DNSName("rp.example.com"),
            x509.UniformResourceIdentifier("https://rp.example.com/id"),
            x509.RFC822Name("ops@rp.example.com"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
        )
        assert matches_subject(_auth(**{field: good}), cert)
        assert not matches_subject(_auth(**{field: bad}), cert)

    def test_a_certificate_without_sans_matches_no_san(self, tmp_path: Path) -> None:
        """No SubjectAlternativeName extension: a SAN registration never matches."""
        cert = certificate(issue_test_pki(tmp_path).client)
        assert not matches_subject(_auth(tls_client_auth_san_dns="test rp"), cert)


class TestSelfSigned:
    def test_the_certificate_key_must_be_in_the_key_set(self, tmp_path: Path) -> None:
        """RFC 8705 2.2: the certificate's public key is one of the client's JWKS keys."""
        bundle = issue_self_signed_certificate(tmp_path)
        key = serialization.load_pem_private_key(Path(bundle).read_bytes(), None)
        from joserfc.jwk import ECKey

        registered = ECKey.import_key(key).as_dict(private=False)
        other = {k: v for k, v in generate_private_jwk("ES256", "x").items() if k != "d"}
        cert = certificate(bundle)
        assert key_in_key_set(cert, KeySet.import_key_set({"keys": [other, registered]}))
        assert not key_in_key_set(cert, KeySet.import_key_set({"keys": [other]}))


class TestTrustedProxies:
    def test_membership_by_address_and_network(self) -> None:
        """Single addresses and CIDR networks; names and garbage are never trusted."""
        assert "127.0.0.2" in TRUSTED
        assert "10.1.255.1" in TRUSTED
        assert "10.2.0.1" not in TRUSTED
        assert "testclient" not in TRUSTED
        assert None not in TRUSTED
