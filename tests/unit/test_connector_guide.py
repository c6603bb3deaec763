"""connectors/README.md, the connector author's guide, stays true to the connector API."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import httpx
import msgspec
import pytest

import ciba_gateway.connector as connector_api
from ciba_gateway.connector import (
    CONNECTOR_GROUP,
    SIMULATOR_GROUP,
    ConnectorDeps,
    ConnectorError,
    HttpSettings,
    Identity,
    LoginHint,
    StartRequest,
    UpstreamRejected,
    UpstreamUnavailable,
    api,
    outbound,
    testing,
)

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "connectors" / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.S)


@pytest.mark.parametrize(
    "struct", [StartRequest, LoginHint, Identity, ConnectorDeps, HttpSettings], ids=repr
)
def test_every_field_is_named(struct: type[msgspec.Struct]) -> None:
    """Each field of what a connector receives and returns is in the guide."""
    missing = [name for name in struct.__struct_fields__ if f"`{name}`" not in GUIDE]

    assert missing == []


def test_every_error_and_kit_member_is_named() -> None:
    """Each ConnectorError and each export of the contract kit is in the guide."""
    errors = [
        name
        for name in api.__all__
        if isinstance(getattr(api, name), type) and issubclass(getattr(api, name), ConnectorError)
    ]
    missing = [name for name in [*errors, *testing.__all__] if f"`{name}" not in GUIDE]

    assert len(errors) == 7
    assert missing == []


def test_the_pyproject_examples_register_a_connector_and_its_simulator() -> None:
    """Both pyproject.toml examples parse; the simulator is ``<name>-sim`` in its own group."""
    connector, simulator = (tomllib.loads(text) for text in blocks("toml")[:2])
    name = connector["project"]["name"]
    (kind,) = connector["project"]["entry-points"][CONNECTOR_GROUP]

    assert simulator["project"]["name"] == f"{name}-sim"
    assert SIMULATOR_GROUP not in connector["project"]["entry-points"]
    assert list(simulator["project"]["entry-points"]) == [SIMULATOR_GROUP]
    assert list(simulator["project"]["entry-points"][SIMULATOR_GROUP]) == [kind]
    assert name in simulator["project"]["dependencies"]


def test_step_one_subclasses_the_suites() -> None:
    """The first code block is the contract test: it parses and subclasses every suite."""
    tree = ast.parse(blocks("python")[0])
    bases = {b.id for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for b in node.bases}

    assert {"ConnectorContract", "UpstreamContract", "IdentityContract", "Subject"} <= bases
    assert GUIDE.index("## Step one: run the contract suite") < GUIDE.index("## The connector")


def test_every_outbound_helper_is_named() -> None:
    """Each helper of ``connector.outbound`` the API exports is in the guide (one retry helper)."""
    exported = [name for name in outbound.__all__ if name in connector_api.__all__]
    missing = [name for name in exported if f"`{name}" not in GUIDE]

    assert {"ErrorBoundary", "best_effort", "call_with_retries", "never_sent"} <= set(exported)
    assert "retrying" not in connector_api.__all__
    assert missing == []


def test_the_shape_example_translates_as_it_says() -> None:
    """The boundary of "One shape" runs: codes, statuses and transport errors map as documented."""
    (block,) = [b for b in blocks("python") if "class translated(ErrorBoundary)" in b]
    namespace: dict[str, object] = {}
    exec(compile(block, "connectors/README.md", "exec"), namespace)  # noqa: S102 - the guide's own code
    boundary, error = namespace["translated"], namespace["AcmeError"]
    events: list[str] = []

    class Log:
        def warning(self, event: str, **fields: object) -> None:
            events.append(event)

    def raised(exc: Exception) -> BaseException:
        with pytest.raises(Exception) as caught, boundary(Log()):  # type: ignore[operator]
            raise exc
        return caught.value

    assert isinstance(raised(error(503, "busy", "later")), UpstreamUnavailable)  # type: ignore[operator]
    refused = raised(error(400, "badRef", "no such ref"))  # type: ignore[operator]
    assert isinstance(refused, UpstreamRejected)
    assert "badRef" in str(refused)
    assert isinstance(raised(httpx.ReadTimeout("slow")), UpstreamUnavailable)
    assert isinstance(raised(KeyError("bug")), KeyError)
    assert events == ["acme_refused", "acme_refused", "acme_failed"]
