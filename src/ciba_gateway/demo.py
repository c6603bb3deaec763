"""The demo's configuration, shipped in the package, its state directory and its banner.

``ciba-gateway demo`` runs ``demo.yaml`` (next to this module) unless ``--config``
names another file. The YAML reads two variables the demo sets: ``DEMO_PORT`` and
``DEMO_STATE_DIR``, the directory that holds the SQLite database, the generated
signing keys and the Freja simulator's certificate (``./var`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from ciba_gateway.config.model import GatewayConfig

__all__ = ["DEFAULT_STATE_DIR", "banner", "config_path", "environment"]

DEFAULT_STATE_DIR = "var"


def config_path() -> Path:
    """The demo configuration inside the installed package."""
    return Path(str(resources.files("ciba_gateway").joinpath("demo.yaml")))


def environment(port: int, state_dir: Path, base: Mapping[str, str] | None = None) -> dict:
    """The variables the demo YAML is read with: ``base`` (the process's) plus port and state."""
    return {
        **(os.environ if base is None else base),
        "DEMO_PORT": str(port),
        "DEMO_STATE_DIR": str(state_dir),
    }


def banner(config: GatewayConfig, port: int, state_dir: Path) -> str:
    """What the demo prints: issuer, credentials, state, a copy-paste flow, phone pages."""
    tenant = config.tenants[0]
    client = next(c for c in tenant.clients if c.auth.method == "client_secret_basic")
    issuer = tenant.issuer.rstrip("/")
    secret = client.auth.secret
    phones = [f"http://127.0.0.1:{port}{s.mount}/phone" for s in config.simulators]
    lines = [
        "",
        "ciba-gateway demo",
        "=================",
        f"issuer:         {issuer}",
        f"discovery:      {issuer}/.well-known/openid-configuration",
        f"client_id:      {client.client_id}",
        f"client_secret:  {secret}",
        f"state:          {state_dir} (database, signing keys; delete it to start afresh)",
        "phone pages:    " + ("\n                ".join(phones) or "(none)"),
        "",
        "1. Start an authentication (persona 199001011239 approves by itself after a few",
        "   seconds; use 191212121212 and approve it on the BankID phone page instead):",
        "",
        f"   curl -s -u {client.client_id}:{secret} \\",
        "     -d 'scope=openid profile ssn' -d 'login_hint=ssn:199001011239' \\",
        "     -d 'acr_values=urn:grn:authn:se:bankid' -d 'binding_message=Call 4711' \\",
        f"     {issuer}/bc-authorize",
        "",
        "2. Poll the token endpoint with the auth_req_id it returned (every 5 s):",
        "",
        f"   curl -s -u {client.client_id}:{secret} \\",
        "     -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=AUTH_REQ_ID \\",
        f"     {issuer}/token",
        "",
        "3. Read the claims with the access token:",
        "",
        f"   curl -s -H 'Authorization: Bearer ACCESS_TOKEN' {issuer}/userinfo",
        "",
        "Other schemes, same two calls:",
        "  Freja eID:  -d 'acr_values=urn:grn:authn:se:frejaid:plus': persona 199001011239",
        "              approves by itself; -d 'acr_values=urn:grn:authn:se:frejaid' with",
        "              191212121212 (level EXTENDED) waits on the Freja phone page",
        "  SMS link:   -d 'scope=openid phone' --data-urlencode 'login_hint=tel:+46701234567'",
        "              (so the + arrives); the text and its one-time link are printed",
        "              below; open the link to approve",
        "",
    ]
    return "\n".join(lines)
