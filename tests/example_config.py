"""The annotated example configuration, the secrets it needs and the files it names."""

from __future__ import annotations

import shutil
from pathlib import Path

from ciba_gateway.connector.testing import issue_test_pki
from ciba_gateway.tokens.keys import write_private_jwk

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "gateway.example.yaml"
EXAMPLE_SECRETS = {
    "ACME_CALLCENTER_SECRET": "example-callcenter-secret-0123456789",
    "ACME_SUBJECT_SALT": "example-subject-salt-0123456789abcdef",
}
"""The example has no default secrets: these stand in for the operator's."""
ETC = "/etc/ciba-gateway/"


def example_with_its_files(directory: Path) -> Path:
    """A copy of the example whose /etc/ciba-gateway/ files exist under ``directory``.

    The signing key and the ciba connector's client key are generated as the comments
    say; the BankID RP certificate, its key, the CA and the signature roots come from the
    connector test kit's throwaway PKI.
    """
    etc = directory / "etc"
    write_private_jwk(etc / "keys" / "acme-2026-1.jwk", "ES256", "acme-2026-1")
    write_private_jwk(etc / "nobankid" / "client.jwk", "ES256", "nobankid-1")
    (etc / "bankid").mkdir(parents=True)
    pki = issue_test_pki(etc / "bankid")
    for name, source in (
        ("rp-cert.pem", pki.client),
        ("rp-key.pem", pki.client),
        ("test-root-ca.pem", pki.ca),
        ("signature-roots.pem", pki.ca),
    ):
        shutil.copy(source, etc / "bankid" / name)
    copy = directory / "gateway.yaml"
    copy.write_text(EXAMPLE.read_text().replace(ETC, f"{etc}/"))
    return copy
