"""The annotated example configuration and the secrets it needs from the environment."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "gateway.example.yaml"
EXAMPLE_SECRETS = {
    "ACME_CALLCENTER_SECRET": "example-callcenter-secret-0123456789",
    "ACME_SUBJECT_SALT": "example-subject-salt-0123456789abcdef",
}
"""The example has no default secrets: these stand in for the operator's."""
