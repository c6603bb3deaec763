"""Packaging and docs of the simulator: its entry point and README coverage.

What it may import is an import-linter contract (pyproject.toml): from the core only
``ciba_gateway.connector``, from the connector only ``wire`` and ``personnummer``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from ciba_gateway_bankid_sim.app import create_simulator
from ciba_gateway_bankid_sim.settings import FaultControl, Persona, SimulatorSettings

from ciba_gateway.connector import load_registry

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_entry_point_registers_the_simulator() -> None:
    """The distribution registers the simulator factory as bankid, and no connector."""
    registry = load_registry(strict=True)

    assert registry.simulators["bankid"] is create_simulator
    assert registry.connectors["bankid"].__module__ == "ciba_gateway_bankid.connector"


@pytest.mark.parametrize("struct", [SimulatorSettings, Persona, FaultControl], ids=repr)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every simulator setting, persona and control field is named in README.md."""
    missing = [name for name in struct.__struct_fields__ if f"`{name}`" not in README]

    assert missing == []
