"""Fixtures: the Freja simulator served in-process, connectors wired to it, a hand-moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_freja.connector import Config, FrejaConnector
from ciba_gateway_freja.simulator import FrejaSimulator, SimulatorTransport, create_simulator
from freja_support import (
    BASE_URL,
    CERT_FILE,
    KEY_FILE,
    PERSONAS,
)
from litestar import Litestar

from ciba_gateway.connector import ConnectorDeps
from ciba_gateway.connector.testing import FakeClock, FakeSleep, make_deps


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_simulator(clock: FakeClock, sleeps: FakeSleep) -> Callable[..., Litestar]:
    def factory(**settings: Any) -> Litestar:
        defaults = {
            "personas": PERSONAS,
            "signing_key_file": KEY_FILE,
            "signing_cert_file": CERT_FILE,
        }
        return create_simulator({**defaults, **settings}, clock=clock, sleep=sleeps)

    return factory


@pytest.fixture
def app(make_simulator: Callable[..., Litestar]) -> Litestar:
    return make_simulator()


@pytest.fixture
def sim(app: Litestar) -> FrejaSimulator:
    return app.state.freja  # type: ignore[no-any-return]


@pytest.fixture
async def http(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=SimulatorTransport(app), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def deps(clock: FakeClock) -> ConnectorDeps:
    return make_deps(clock=clock, instance_name="freja")


@pytest.fixture
async def make_connector(
    app: Litestar, deps: ConnectorDeps, sleeps: FakeSleep
) -> AsyncIterator[Callable[..., FrejaConnector]]:
    made: list[FrejaConnector] = []

    def factory(transport: httpx.AsyncBaseTransport | None = None, **config: Any) -> FrejaConnector:
        settings = msgspec.convert(
            {"base_url": BASE_URL, "trusted_certs": [CERT_FILE], **config}, Config
        )
        connector = FrejaConnector(
            settings, deps, transport=transport or SimulatorTransport(app), sleep=sleeps
        )
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


@pytest.fixture
def connector(make_connector: Callable[..., FrejaConnector]) -> FrejaConnector:
    return make_connector()
