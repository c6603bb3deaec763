"""The production wheels carry no simulator; each simulator wheel carries only its simulator.

Every distribution is built the way ``pip install`` builds it (``pip wheel --no-deps``)
and its archive is read: modules, entry points. A simulator is recognised by its
entry-point group, by a ``*_sim`` package, or by any module defining ``create_simulator``
(the factory every simulator exports), whatever the module is called.
"""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ciba_gateway.connector import CONNECTOR_GROUP, SIMULATOR_GROUP

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
SIMULATORS = sorted(p.parent for p in ROOT.glob("connectors/*-sim/pyproject.toml"))
CONNECTORS = sorted(p.parent for p in ROOT.glob("connectors/*/pyproject.toml"))
PRODUCTION = [ROOT, *(p for p in CONNECTORS if p not in SIMULATORS)]


def name_of(source: Path) -> str:
    return "ciba-gateway" if source == ROOT else source.name


class Wheel:
    """A built wheel's Python modules (path -> source) and entry points (group -> names)."""

    def __init__(self, path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            self.modules = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
            points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
            parser = configparser.ConfigParser()
            if points is not None:
                parser.read_string(archive.read(points).decode())
        self.entry_points = {group: set(parser[group]) for group in parser.sections()}

    def packages(self) -> set[str]:
        """The top-level packages."""
        return {name.split("/")[0] for name in self.modules}

    def simulator_factories(self) -> list[str]:
        """Modules that define a ``create_simulator`` function."""
        return sorted(
            name
            for name, source in self.modules.items()
            if any(
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == "create_simulator"
                for node in ast.walk(ast.parse(source))
            )
        )


SKIPPED = (".git", ".venv", "var", "build", "*.egg-info", "__pycache__", "tests", "bench")
"""Not copied for a build: state, caches, tests (and, for the core, ``connectors/``)."""


def build(source: Path, out: Path) -> Wheel:
    """The wheel of the distribution at ``source``, built from a copy (no build/ left behind)."""
    tree = out / "src" / source.name
    skipped = (*SKIPPED, "connectors") if source == ROOT else SKIPPED
    shutil.copytree(
        source,
        tree,
        ignore=shutil.ignore_patterns(*skipped),
    )
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), "."]
    subprocess.run(command, cwd=tree, check=True, timeout=300, capture_output=True)
    (wheel,) = out.glob("*.whl")
    return Wheel(wheel)


@pytest.mark.parametrize("source", PRODUCTION, ids=name_of)
def test_a_production_wheel_has_no_simulator(source: Path, tmp_path: Path) -> None:
    """No simulator entry point, no simulator package, no simulator factory in any module."""
    wheel = build(source, tmp_path)

    assert wheel.modules, "the wheel holds no Python module"
    assert SIMULATOR_GROUP not in wheel.entry_points
    assert not [p for p in wheel.packages() if p.endswith("_sim")]
    assert wheel.simulator_factories() == []


@pytest.mark.parametrize("source", SIMULATORS, ids=name_of)
def test_a_simulator_wheel_has_its_simulator_and_no_connector(source: Path, tmp_path: Path) -> None:
    """One ``*_sim`` package registered as a simulator of its connector's name; no connector."""
    wheel = build(source, tmp_path)
    name = source.name.removesuffix("-sim")

    assert wheel.packages() == {f"ciba_gateway_{name}_sim"}
    assert wheel.entry_points.get(SIMULATOR_GROUP) == {name}
    assert CONNECTOR_GROUP not in wheel.entry_points
    assert wheel.simulator_factories() == [f"ciba_gateway_{name}_sim/app.py"]
