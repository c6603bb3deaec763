"""Fixtures: a hand-moved clock and the real gateway app with the SMS link connector."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_smslink.config import Config
from ciba_gateway_smslink.connector import SmsLinkConnector
from litestar.testing import AsyncTestClient
from smslink_support import Gateway, Harness, gateway_yaml, no_sleep, sms_connector

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import ConnectorRegistry, load_registry
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.store.memory import MemoryStore

HarnessFactory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_harness(tmp_path: Path, clock: FakeClock) -> HarnessFactory:
    """Builds a harness; keyword arguments override the ``sms`` connector's YAML."""

    @contextlib.asynccontextmanager
    async def factory(
        registry: ConnectorRegistry | None = None, **overrides: Any
    ) -> AsyncIterator[Harness]:
        registry = registry or load_registry()
        text = gateway_yaml(
            tmp_path,
            issuer="http://testserver.local/acme",
            connector=sms_connector(tmp_path, **overrides),
        )
        config = parse_config(text, registry=registry)
        store = MemoryStore(clock=clock)
        app = create_app(config, registry=registry, store=store, clock=clock, run_driver=False)
        async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
            yield Harness(app=app, client=client, store=store, clock=clock)

    return factory


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with make_harness() as built:
        yield built


@pytest.fixture
def gateway(clock: FakeClock) -> Gateway:
    return Gateway(clock)


@pytest.fixture
async def make_connector(
    gateway: Gateway, tmp_path: Path
) -> AsyncIterator[Callable[..., SmsLinkConnector]]:
    made: list[SmsLinkConnector] = []

    def factory(
        transport: httpx.AsyncBaseTransport | None = None, **overrides: Any
    ) -> SmsLinkConnector:
        raw = {k: v for k, v in sms_connector(tmp_path, **overrides).items() if k != "type"}
        connector = SmsLinkConnector(
            msgspec.convert(raw, Config), gateway.deps(), transport=transport, sleep=no_sleep
        )
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()
