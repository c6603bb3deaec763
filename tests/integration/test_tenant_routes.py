"""The hot form endpoints' static per-tenant routes answer as the ``/{tenant}/...`` ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import load_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock
from tests.integration.conftest import config_yaml

BETA = ("beta-rp", "beta-secret-0123456789abcdef")
START = {"scope": "openid", "login_hint": "ssn:199001011239"}


def _without_beta(text: str) -> str:
    head, beta = text.split("  - id: beta\n")
    assert "beta-rp" in beta
    return head


def _answer(response: Any) -> tuple[int, str | None, str | None, bytes]:
    headers = response.headers
    return (response.status_code, headers.get("allow"), headers.get("x-content-type-options"),
            response.content)  # fmt: skip


async def test_static_and_parameter_routes_answer_alike(
    tmp_path: Path, clock: FakeClock, client_jwk: dict[str, Any]
) -> None:
    """Every method on /beta/token and /beta/bc-authorize: the static route (beta at
    start-up) and the parameter route (beta added by a reload) give the same answers;
    a reload that removes beta makes both answer 404 unknown tenant."""
    text = config_yaml(tmp_path, client_jwk)
    path = tmp_path / "gw.yaml"
    answers: dict[str, list[tuple[int, str | None, str | None, bytes]]] = {}
    for start in ("with beta", "beta reloaded in"):
        path.write_text(text if start == "with beta" else _without_beta(text))
        app = create_app(
            load_config(path, registry=load_registry()),
            clock=clock,
            run_driver=False,
            config_path=path,
        )
        routes = {getattr(r, "path", None) for r in app.routes}
        assert ("/beta/token" in routes) is (start == "with beta")
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            if start != "with beta":
                path.write_text(text)
                assert await app.state.runtime.reload() is True
            seen = answers[start] = []
            for endpoint in ("token", "bc-authorize"):
                for method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"):
                    seen.append(_answer(await client.request(method, f"/beta/{endpoint}")))
            seen.append(
                _answer(await client.post("/beta/token", auth=BETA, data={"grant_type": "x"}))
            )
            started = await client.post("/beta/bc-authorize", auth=BETA, data=START)
            assert started.status_code == 200, started.text
            seen.append(
                (
                    started.status_code,
                    None,
                    None,
                    b"auth_req_id" * ("auth_req_id" in started.json()),
                )
            )
            path.write_text(_without_beta(text))
            assert await app.state.runtime.reload() is True
            for endpoint in ("token", "bc-authorize"):
                gone = await client.post(f"/beta/{endpoint}", auth=BETA, data=START)
                seen.append(_answer(gone))
                assert gone.json()["error_description"] == "unknown tenant"
    assert answers["with beta"] == answers["beta reloaded in"]
    statuses = [a[0] for a in answers["with beta"]]
    assert statuses == [405, 405, 204, 405, 405, 405] * 2 + [400, 200, 404, 404]
