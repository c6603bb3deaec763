"""Fixtures: connectors wired to the BankID simulator served in-process, a hand-moved clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from bankid_support import (  # noqa: F401 - the simulator's fixtures, shared with bankid-sim
    BASE_URL,
    app,
    clock,
    http,
    make_simulator,
    sim,
    sleeps,
)
from ciba_gateway_bankid.connector import BankIDConnector, Config
from ciba_gateway_bankid_sim.simulator import BankIDSimulator
from litestar import Litestar

from ciba_gateway.connector import ConnectorDeps
from ciba_gateway.connector.testing import FakeClock, FakeSleep, SimulatorTransport, make_deps


@pytest.fixture
def deps(clock: FakeClock) -> ConnectorDeps:
    return make_deps(clock=clock, instance_name="bankid")


@pytest.fixture
def root_file(app: Litestar, tmp_path: Path) -> Path:
    """The simulator's root.pem: the ``signature_ca_file`` connectors get by default."""
    sim: BankIDSimulator = app.state.bankid
    return sim.pki.write_root(tmp_path / "bankid-pki")


@pytest.fixture
async def make_connector(
    app: Litestar, deps: ConnectorDeps, sleeps: FakeSleep, root_file: Path
) -> AsyncIterator[Callable[..., BankIDConnector]]:
    made: list[BankIDConnector] = []

    def factory(
        transport: httpx.AsyncBaseTransport | None = None, **config: Any
    ) -> BankIDConnector:
        defaults = {"base_url": BASE_URL, "signature_ca_file": str(root_file)}
        settings = msgspec.convert({**defaults, **config}, Config)
        connector = BankIDConnector(
            settings, deps, transport=transport or SimulatorTransport(app), sleep=sleeps
        )
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


@pytest.fixture
def connector(make_connector: Callable[..., BankIDConnector]) -> BankIDConnector:
    return make_connector()
