"""Fixtures: panva's oidc-provider as the upstream, and ciba connectors wired to it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_ciba.connector import CibaConnector, Config
from gateways import free_port
from op_support import TestOp, ciba_client, public

from ciba_gateway.connector import ConnectorDeps, LoginHint, StartRequest
from ciba_gateway.connector.testing import Resolutions, make_deps
from ciba_gateway.store import namespaces
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.values import Values
from ciba_gateway.tokens.keys import generate_private_jwk

SECRET = "gateway-at-op-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def client_key() -> dict[str, Any]:
    return generate_private_jwk("ES256", "gw-key-1")


@pytest.fixture(scope="module")
def op_process(
    tmp_path_factory: pytest.TempPathFactory, client_key: dict[str, Any]
) -> Iterator[TestOp]:
    """One provider per test module (node starts in about a second)."""
    clients = [
        ciba_client("gw-basic", client_secret=SECRET),
        ciba_client(
            "gw-post", client_secret=SECRET, token_endpoint_auth_method="client_secret_post"
        ),
        ciba_client(
            "gw-ping",
            client_secret=SECRET,
            backchannel_token_delivery_mode="ping",
            # Nobody listens there: tests hand the ping to the connector themselves.
            backchannel_client_notification_endpoint="https://127.0.0.1:9/ping",
        ),
        ciba_client(
            "gw-jwt",
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [public(client_key)]},
        ),
    ]
    provider = TestOp(tmp_path_factory.mktemp("op"), free_port(), clients)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
async def op(op_process: TestOp) -> TestOp:
    """The module's provider, its pending list emptied for this test."""
    await op_process.reset()
    return op_process


@pytest.fixture
def resolutions() -> Resolutions:
    return Resolutions()


@pytest.fixture
def deps(resolutions: Resolutions) -> ConnectorDeps:
    return ConnectorDeps(
        tenant_id="t1",
        instance_name="upstream",
        base_url="http://gw.test/t1/upstream",
        state=Values(MemoryStore()).namespace(namespaces.connector_state("t1", "upstream")),
        resolve=resolutions,
        lookup=make_deps().lookup,
    )


ConnectorFactory = Callable[..., CibaConnector]


@pytest.fixture
async def make_connector(
    op: TestOp, deps: ConnectorDeps, tmp_path: Path, client_key: dict[str, Any]
) -> AsyncIterator[ConnectorFactory]:
    made: list[CibaConnector] = []
    key_file = tmp_path / "gw-key.jwk"
    key_file.write_text(json.dumps(client_key))
    auths = {
        "gw-basic": {"method": "client_secret_basic", "secret": SECRET},
        "gw-post": {"method": "client_secret_post", "secret": SECRET},
        "gw-ping": {"method": "client_secret_basic", "secret": SECRET},
        "gw-jwt": {"method": "private_key_jwt", "key_file": str(key_file)},
    }

    def factory(
        client_id: str = "gw-basic",
        transport: httpx.AsyncBaseTransport | None = None,
        **config: Any,
    ) -> CibaConnector:
        settings = {
            "issuer": op.issuer,
            "client_id": client_id,
            "auth": auths[client_id],
            "scope": ["openid", "profile", "nnin"],
            "interval": 0.5,
            "identity": {"scheme": "no-nnin", "national_id": "nnin", "default_country": "NO"},
            **config,
        }
        connector = CibaConnector(msgspec.convert(settings, Config), deps, transport=transport)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


def start_request(
    value: str, kind: str = "ssn", country: str | None = "NO", **fields: Any
) -> StartRequest:
    """A StartRequest for a hint (by default a Norwegian ``ssn`` one)."""
    country = country if kind == "ssn" else None
    return StartRequest(
        ref=fields.pop("ref", "ref-1"),
        tenant_id="t1",
        client_id="callcenter",
        client_name="Call Centre",
        login_hint=LoginHint(kind=kind, value=value, country=country),
        scope=("openid", "profile", "ssn"),
        expires_at=fields.pop("expires_at", time.time() + 120),
        **fields,
    )
