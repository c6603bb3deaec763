"""Fixtures: connectors wired to the Freja simulator served in-process, a hand-moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from ciba_gateway_freja.connector import Config, FrejaConnector
from freja_support import (  # noqa: F401 - the simulator's fixtures, shared with freja-sim
    BASE_URL,
    CERT_FILE,
    app,
    clock,
    http,
    make_simulator,
    sim,
    sleeps,
)
from litestar import Litestar

from ciba_gateway.connector import ConnectorDeps
from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport, make_deps


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
