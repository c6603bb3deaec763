"""One owner for every state change: only the flow engine writes requests (issue 12).

import-linter (pyproject.toml) keeps the module arrows; these checks read the
source for what imports cannot show: which modules call the store's request
writes, and where ``version`` is bumped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "src" / "ciba_gateway"
SOURCES = sorted([*CORE.rglob("*.py"), *ROOT.glob("connectors/*/src/**/*.py")])
REQUEST_WRITES = {"transition", "lease_due", "release_leases"}
ENGINE = CORE / "flow" / "engine.py"
MODEL = CORE / "flow" / "model.py"


def _calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _store_write(call: ast.Call) -> str | None:
    """``x.transition(...)``, ``x.lease_due(...)``, ... or ``<something>store.create(...)``."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in REQUEST_WRITES:
        return ast.unparse(func)
    if func.attr == "create" and ast.unparse(func.value).lower().endswith("store"):
        return ast.unparse(func)
    return None


def _in_store_package(path: Path) -> bool:
    return path.is_relative_to(CORE / "store")


def test_the_sources_are_found() -> None:
    """The scan sees the engine, the protocol layer and the connectors (it cannot pass empty)."""
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert "src/ciba_gateway/flow/engine.py" in names
    assert "src/ciba_gateway/protocol/token.py" in names
    assert any(n.startswith("connectors/bankid/src/") for n in names)
    assert _store_write(ast.parse("self.store.transition(new)").body[0].value) is not None  # type: ignore[attr-defined]
    assert _store_write(ast.parse("gw.store.create(r)").body[0].value) is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_only_the_engine_writes_requests(path: Path) -> None:
    """Outside the stores themselves, only flow/engine.py calls create/transition/lease."""
    if path == ENGINE or _in_store_package(path):
        return
    writes = [w for w in map(_store_write, _calls(path)) if w is not None]
    assert writes == [], f"{path.relative_to(ROOT)} writes requests: {writes}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_version_is_bumped_only_in_the_model(path: Path) -> None:
    """``version=<...> + 1`` appears in flow/model.py only (``advance``)."""
    if path == MODEL:
        return
    bumps = [
        ast.unparse(call)
        for call in _calls(path)
        for kw in call.keywords
        if kw.arg == "version" and isinstance(kw.value, ast.BinOp)
    ]
    assert bumps == [], f"{path.relative_to(ROOT)} bumps version itself: {bumps}"
