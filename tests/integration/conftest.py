"""A real gateway app (memory store, example connector) behind Litestar's test client."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.config.model import GatewayConfig
from ciba_gateway.connector import load_registry
from ciba_gateway.flow.driver import Driver
from ciba_gateway.tokens.keys import generate_private_jwk

CIBA = "urn:openid:params:grant-type:ciba"
SECRET = "callcenter-secret-0123456789"
OTHER_SECRET = "branch-secret-0123456789abcdef"


def config_yaml(tmp: Path, client_jwk: dict[str, Any]) -> str:
    """Two tenants; tenant ``acme`` has poll clients with every auth method."""
    public = {k: v for k, v in client_jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
    return f"""
store: {{url: "memory://"}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 120, auth_request_max: 300, poll_interval: 5}}
    connectors:
      example:
        type: example
        acr: urn:example:acr:substantial
        people:
          - {{hint: "ssn:199001011239", name: Karl Karlsson, polls: 1, user_code: "4711"}}
          - {{hint: "ssn:191212121212", name: Tolvan Tolvansson, outcome: deny}}
          - {{hint: "email:pending@example.com", name: Pat Pending, outcome: pending}}
      other:
        type: example
        acr: urn:example:acr:low
        people: [{{hint: "ssn:199001011239", name: Karl Via Other}}]
    routes:
      - {{acr: "urn:example:acr:substantial", connector: example}}
      - {{acr: "urn:example:acr:low", connector: other}}
      - {{login_hint: ssn, connector: example}}
      - {{login_hint: "email:*@example.com", connector: example}}
    clients:
      - client_id: callcenter
        name: Acme Call Centre
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile, ssn, email]
        authorization_details_types: [example_payment, payment_initiation, approval]
      - client_id: branch
        auth: {{method: client_secret_post, secret: "{OTHER_SECRET}"}}
        scopes: [openid, profile]
      - client_id: kiosk
        auth: {{method: client_secret_jwt, secret: "kiosk-secret-0123456789abcdef"}}
        user_code_required: true
        scopes: [openid]
      - client_id: signer
        auth: {{method: private_key_jwt, jwks: {{keys: [{json.dumps(public)}]}}}}
        request_signing_alg: ES256
        scopes: [openid, profile]
  - id: beta
    issuer: http://testserver.local/beta
    keys: [{{kid: beta-1, alg: RS256, file: {tmp}/beta-1.jwk, generate: true}}]
    subject: {{salt: "beta-subject-salt-0123456789"}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Beta, polls: 0}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: beta-rp
        auth: {{method: client_secret_basic, secret: "beta-secret-0123456789abcdef"}}
        scopes: [openid, profile]
"""


@dataclass
class Harness:
    """The app under test plus helpers to call it like a relying party."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    config: GatewayConfig
    client_jwk: dict[str, Any]

    @property
    def driver(self) -> Driver:
        return self.app.state.driver

    async def drive(self, rounds: int = 1) -> None:
        """Let the background driver lease and poll everything due, ``rounds`` times."""
        for _ in range(rounds):
            await self.driver.run_once()
            await self.driver.drain()

    async def bc_authorize(
        self, data: dict[str, str], *, tenant: str = "acme", auth: tuple[str, str] | None = None
    ) -> Any:
        user, password = auth or ("callcenter", SECRET)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return await self.client.post(
            f"/{tenant}/bc-authorize", data=data, headers={"Authorization": f"Basic {basic}"}
        )

    async def token(
        self, auth_req_id: str, *, tenant: str = "acme", auth: tuple[str, str] | None = None
    ) -> Any:
        user, password = auth or ("callcenter", SECRET)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return await self.client.post(
            f"/{tenant}/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers={"Authorization": f"Basic {basic}"},
        )

    async def jwks(self, tenant: str = "acme") -> KeySet:
        response = await self.client.get(f"/{tenant}/jwks")
        return KeySet.import_key_set(response.json())

    async def verify_id_token(self, token: str, tenant: str = "acme") -> dict[str, Any]:
        keys = await self.jwks(tenant)
        algs = ["ES256", "RS256", "PS256", "EdDSA"]
        return dict(jwt.decode(token, keys, algorithms=algs).claims)


@pytest.fixture
def client_jwk() -> dict[str, Any]:
    return generate_private_jwk("ES256", "signer-key-1")


@pytest.fixture
async def harness(tmp_path: Path, clock: Any, client_jwk: dict[str, Any]) -> AsyncIterator[Harness]:
    config = parse_config(config_yaml(tmp_path, client_jwk), registry=load_registry())
    app = create_app(config, clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield Harness(app=app, client=client, config=config, client_jwk=client_jwk)
