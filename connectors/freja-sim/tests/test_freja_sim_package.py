"""Packaging and docs of the simulator: its entry point and README coverage.

What it may import is an import-linter contract (pyproject.toml): from the core only
``ciba_gateway.connector``, from the connector only its ``wire`` module.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from ciba_gateway_freja_sim.app import create_simulator
from ciba_gateway_freja_sim.settings import (
    Fault,
    FaultControl,
    Persona,
    PersonaAttributes,
    SimulatorSettings,
)

from ciba_gateway.connector import load_registry

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_entry_point_registers_the_simulator() -> None:
    """The distribution registers the simulator factory as freja, and no connector."""
    registry = load_registry(strict=True)

    assert registry.simulators["freja"] is create_simulator
    assert registry.connectors["freja"].__module__ == "ciba_gateway_freja.connector"


@pytest.mark.parametrize(
    "struct",
    [SimulatorSettings, Persona, PersonaAttributes, Fault, FaultControl],
    ids=lambda s: s.__name__,
)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every simulator setting, persona and fault field is named in README.md."""
    missing = [name for name in struct.__struct_fields__ if f"`{name}`" not in README]

    assert missing == []
