"""The guide's example connector: registered by entry point, driven through a whole flow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ciba_gateway_example.connector import ExampleConfig, ExampleConnector, Person

from ciba_gateway.connector import (
    ConnectorDeps,
    LoginHint,
    PollResult,
    StartRequest,
    load_registry,
)
from ciba_gateway.connector.testing import IdentityContract, Settle
from tests.integration.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]


def test_guide_shows_the_example_verbatim() -> None:
    """connectors/README.md embeds exactly the example connector's source."""
    guide = (ROOT / "connectors" / "README.md").read_text()
    code = (ROOT / "connectors/example/src/ciba_gateway_example/connector.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert code in blocks


def test_example_is_discovered_through_its_entry_point() -> None:
    """The entry-point group ciba_gateway.connectors yields the example connector."""
    assert load_registry(strict=True).connector("example") is ExampleConnector


async def test_example_connector_completes_a_flow(harness: Harness) -> None:
    """bc-authorize -> pending -> driver polls -> approved -> tokens, through the example."""
    started = await harness.bc_authorize(
        {"scope": "openid email", "login_hint": "email:pending@example.com"}
    )
    assert started.status_code == 200
    karl = await harness.bc_authorize({"scope": "openid profile", "login_hint": "ssn:199001011239"})
    auth_req_id = karl.json()["auth_req_id"]
    await harness.drive()
    assert (await harness.app.state.gateway.engine.get(auth_req_id)).status == "pending"
    await harness.drive()
    response = await harness.token(auth_req_id)
    assert response.status_code == 200, response.text
    claims = await harness.verify_id_token(response.json()["id_token"])
    assert claims["name"] == "Karl Karlsson"
    pending = await harness.app.state.gateway.engine.get(started.json()["auth_req_id"])
    assert pending.status == "pending"


class TestIdentity(IdentityContract):
    """The example connector's scripted impostor: a person whose approval reports another."""

    pii = ("199001011239", "191212121212")

    @pytest.fixture
    def settle(self) -> Settle:
        people = (
            Person(hint="ssn:199001011239", name="Karl", polls=0),
            Person(hint="ssn:191212121212", name="Tolvan", polls=0, approves_as="ssn:199001011239"),
        )
        connector = ExampleConnector(
            ExampleConfig(people=people),
            ConnectorDeps(
                tenant_id="t",
                instance_name="example",
                base_url="http://gw.test/t/example",
                state=None,  # type: ignore[arg-type]  # the example keeps no state
                resolve=None,  # type: ignore[arg-type]
                lookup=None,  # type: ignore[arg-type]
            ),
        )

        async def run(*, impostor: bool) -> PollResult:
            hint = LoginHint(kind="ssn", value="191212121212" if impostor else "199001011239")
            started = await connector.start(
                StartRequest(
                    ref="r",
                    tenant_id="t",
                    client_id="c",
                    client_name="C",
                    login_hint=hint,
                    scope=("openid",),
                )
            )
            return await connector.poll(started.session)

        return run
