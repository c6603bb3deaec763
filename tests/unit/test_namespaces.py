"""The value-space namespaces: declared in one module, distinct, spelled as stored data has
them, and the only way into a store's values."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ciba_gateway.store import namespaces
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.values import Values

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "src" / "ciba_gateway"
SOURCES = sorted([*CORE.rglob("*.py"), *ROOT.glob("connectors/*/src/**/*.py")])
BACKEND_VALUE_CALLS = {"put_value", "get_value", "swap_value", "take_value"}

TENANT_WIDE = {
    namespaces.access_tokens: "at:t1",
    namespaces.subject_hints: "sub_hint:t1",
    namespaces.refresh_tokens: "rt:t1",
    namespaces.refresh_uses: "rtuse:t1",
    namespaces.refresh_used: "rtused:t1",
    namespaces.refresh_families: "rtfam:t1",
}
PER_OWNER = {
    namespaces.client_assertions: "client_assertion:t1:c1",
    namespaces.request_objects: "request_object:t1:c1",
    namespaces.connector_state: "c:t1:c1",
}


def test_namespaces_keep_the_names_stored_data_has() -> None:
    """Renaming one would orphan what a running deployment holds under the old name."""
    for name, expected in TENANT_WIDE.items():
        assert name("t1") == expected
    for owner, expected in PER_OWNER.items():
        assert owner("t1", "c1") == expected


def test_every_declared_namespace_is_covered_and_distinct() -> None:
    declared = {getattr(namespaces, n) for n in namespaces.__all__ if n != "Name"}
    assert declared == set(TENANT_WIDE) | set(PER_OWNER)
    values = [*TENANT_WIDE.values(), *PER_OWNER.values()]
    assert len(set(values)) == len(values)
    assert all(isinstance(name("t1"), namespaces.Name) for name in TENANT_WIDE)
    assert all(isinstance(owner("t1", "c1"), namespaces.Name) for owner in PER_OWNER)


async def test_an_undeclared_namespace_cannot_be_opened() -> None:
    """A plain string (a typo, or a namespace made up at the call site) is refused."""
    values = Values(MemoryStore())
    with pytest.raises(TypeError, match="not a namespace declared"):
        values.namespace("at:t1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a namespace declared"):
        await values.put(("at:t1", "k", b"v", 60.0))  # type: ignore[arg-type]
    assert values.namespace(namespaces.access_tokens("t1")).name == "at:t1"


def _calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _backend_value_call(call: ast.Call) -> bool:
    """``x.put_value(...)`` and friends, or the namespace-first ``remember``/``incr``."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr in BACKEND_VALUE_CALLS:
        return True
    return func.attr in {"remember", "incr"} and len(call.args) + len(call.keywords) == 3


def test_the_scans_can_see_what_they_forbid() -> None:
    """The checks below recognise the calls they look for (so they cannot pass empty)."""
    assert "src/ciba_gateway/protocol/token.py" in {p.relative_to(ROOT).as_posix() for p in SOURCES}
    call = ast.parse('store.remember("ns", key, ttl)').body[0].value  # type: ignore[attr-defined]
    assert _backend_value_call(call)
    assert not _backend_value_call(ast.parse("ns.remember(key, ttl)").body[0].value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_values_are_reached_only_through_declared_namespaces(path: Path) -> None:
    """Outside the store package nothing calls the backend's value methods or makes a Name."""
    if path.is_relative_to(CORE / "store"):
        return
    found = [
        ast.unparse(call.func)
        for call in _calls(path)
        if _backend_value_call(call) or ast.unparse(call.func) in {"Name", "namespaces.Name"}
    ]
    assert found == [], f"{path.relative_to(ROOT)}: {found}"
