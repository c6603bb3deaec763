"""Shared pieces of the mutual-TLS tests: certificate headers and the mTLS tenant."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ciba_gateway.connector.testing import TestPki

PROXY = "127.0.0.2"
"""The trusted proxy's address in these tests (nginx binds its upstream side to it)."""


def certificate(bundle: str) -> x509.Certificate:
    """The certificate of a PEM certificate+key bundle of the test PKI."""
    return x509.load_pem_x509_certificates(
        Path(bundle).read_bytes().split(b"-----BEGIN PRIVATE")[0]
    )[0]


def client_cert_header(bundle: str) -> str:
    """The RFC 9440 Client-Cert value (``:base64 DER:``) of a bundle's certificate."""
    der = certificate(bundle).public_bytes(serialization.Encoding.DER)
    return ":" + base64.b64encode(der).decode() + ":"


def bank_tenant(tmp: Path, pki: TestPki, issuer: str, *, mtls: str = "", clients: str = "") -> str:
    """YAML of tenant ``bank`` (PS256) with ``bank-rp``: tls_client_auth, bound tokens, refresh."""
    return f"""
  - id: bank
    issuer: {issuer}/bank
    keys: [{{kid: bank-1, alg: PS256, file: {tmp}/bank-1.jwk, generate: true}}]
    subject: {{salt: "bank-subject-salt-0123456789"}}
    lifetimes: {{poll_interval: 1}}
    mtls: {{ca_file: {pki.ca}{mtls}}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: bank-rp
        auth: {{method: tls_client_auth, tls_client_auth_subject_dn: "CN=Test RP"}}
        tls_client_certificate_bound_access_tokens: true
        grant_types: [urn:openid:params:grant-type:ciba, refresh_token]
        scopes: [openid, profile]
{clients}"""
