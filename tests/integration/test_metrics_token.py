"""/metrics behind a bearer token (server.metrics_token)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.errors import ConfigError
from tests.integration.conftest import config_yaml

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
async def client(
    tmp_path: Path, client_jwk: dict[str, Any]
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    text = f"server: {{metrics_token: {TOKEN}}}\n" + config_yaml(tmp_path, client_jwk)
    app = create_app(parse_config(text, registry=load_registry()), run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        yield test_client


async def test_metrics_need_the_token(client: AsyncTestClient[Litestar]) -> None:
    """No token: 401 and a Bearer challenge; a wrong one adds invalid_token; the right: 200."""
    missing = await client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert "ciba_" not in missing.text
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer realm="metrics", error="invalid_token"'
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert "ciba_http_requests_total" in right.text


async def test_metrics_are_open_without_a_token(tmp_path: Path, client_jwk: dict[str, Any]) -> None:
    """The default (no metrics_token) serves /metrics to anyone, as the demo expects."""
    app = create_app(
        parse_config(config_yaml(tmp_path, client_jwk), registry=load_registry()),
        run_driver=False,
    )
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        assert (await test_client.get("/metrics")).status_code == 200


def test_short_metrics_token_is_a_config_error(tmp_path: Path, client_jwk: dict[str, Any]) -> None:
    """A guessable token is refused at load time."""
    with pytest.raises(ConfigError, match="metrics_token must be at least 16"):
        parse_config(
            "server: {metrics_token: short}\n" + config_yaml(tmp_path, client_jwk),
            registry=load_registry(),
        )
