"""Packaging and docs: entry points, README coverage of every setting, import boundaries."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest
from ciba_gateway_freja.connector import Config, FrejaConnector, LevelAcrs, TrustedCertConfig

from ciba_gateway.connector import HttpSettings, load_registry

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
PACKAGE = ROOT / "src" / "ciba_gateway_freja"


def test_entry_point_registers_the_connector() -> None:
    """The distribution registers the connector class as freja (its simulator: freja-sim)."""
    assert load_registry(strict=True).connector("freja") is FrejaConnector


@pytest.mark.parametrize(
    "struct",
    [
        Config,
        HttpSettings,
        TrustedCertConfig,
        LevelAcrs,
    ],
    ids=lambda s: s.__name__,
)
def test_readme_documents_every_field(struct: type[msgspec.Struct]) -> None:
    """Every config field is named in README.md."""
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
    """Package modules import ciba_gateway.connector only, and neither Litestar nor a simulator."""
    modules = imported_modules(PACKAGE / module)
    core = {m for m in modules if m == "ciba_gateway" or m.startswith("ciba_gateway.")}

    assert core <= {"ciba_gateway.connector"}
    assert not any(m.split(".")[0] in ("litestar", "ciba_gateway_freja_sim") for m in modules)
