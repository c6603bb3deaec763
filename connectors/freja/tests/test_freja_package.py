"""Packaging and docs: entry points, README coverage of every setting, import boundaries."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_freja.connector import Config, FrejaConnector, LevelAcrs, TrustedCertConfig
from ciba_gateway_freja.simulation import (
    Fault,
    FaultControl,
    Persona,
    PersonaAttributes,
    SimulatorSettings,
)
from ciba_gateway_freja.simulator import create_simulator

from ciba_gateway.connector import HttpSettings, load_registry

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
PACKAGE = ROOT / "src" / "ciba_gateway_freja"
CONNECTOR_SIDE = ("connector.py", "client.py", "details.py", "wire.py")


def test_entry_points_register_connector_and_simulator() -> None:
    """The distribution registers the connector class and the simulator factory as freja."""
    registry = load_registry(strict=True)

    assert registry.connector("freja") is FrejaConnector
    assert registry.simulators["freja"] is create_simulator


@pytest.mark.parametrize(
    "struct",
    [
        Config,
        HttpSettings,
        TrustedCertConfig,
        LevelAcrs,
        SimulatorSettings,
        Persona,
        PersonaAttributes,
        Fault,
        FaultControl,
    ],
    ids=lambda s: s.__name__,
)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every config, simulator, persona and fault field is named in README.md."""
    missing = [name for name in struct.__struct_fields__ if f"`{name}`" not in README]

    assert missing == []


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_only_the_public_connector_api_of_the_core_is_imported(module: str) -> None:
    """Package modules import ciba_gateway.connector only; connector-side ones no Litestar."""
    modules = imported_modules(PACKAGE / module)
    core = {m for m in modules if m == "ciba_gateway" or m.startswith("ciba_gateway.")}

    assert core <= {"ciba_gateway.connector"}
    if module in CONNECTOR_SIDE:
        assert not any(m == "litestar" or m.startswith("litestar.") for m in modules)
