"""The OpenAPI document a running gateway serves, and a bounded schemathesis run against it.

schemathesis generates requests from the document (form bodies, paths, headers) and
checks every answer: never a 5xx, a documented status code and content type, and a
body that fits the documented schema. The example budget is bounded so the run stays
well under a minute here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.processes import Process, free_port
from tests.e2e.test_signals import SECRET, config_text

pytestmark = pytest.mark.process

CLIENT = ("ops-client", SECRET)
TENANT = "ops"
MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
"""Not schemathesis's positive_data_acceptance: a schema-valid form (a random login_hint,
a tenant that does not exist) is still a 400 OAuth error, as the document says."""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``serve`` process; yields its base URL."""
    tmp = tmp_path_factory.mktemp("openapi")
    port = free_port()
    path = tmp / "gw.yaml"
    path.write_text(config_text(tmp, port))
    args = ["serve", "--config", str(path), "--port", str(port), "--server", "uvicorn"]
    process = Process(args, tmp / "gw.log")
    try:
        process.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        assert "Traceback" not in process.output()


@pytest.fixture(scope="module")
def api_schema(gateway: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway}/openapi/openapi.json")


def test_document_is_openapi_3_1_with_every_endpoint(gateway: str) -> None:
    """The document lists the CIBA endpoints with their forms, errors and the operations ones."""
    doc = httpx.get(f"{gateway}/openapi/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    assert set(paths) >= {
        "/{tenant}/bc-authorize",
        "/{tenant}/token",
        "/{tenant}/userinfo",
        "/{tenant}/jwks",
        "/{tenant}/.well-known/openid-configuration",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    authorize = paths["/{tenant}/bc-authorize"]["post"]
    form = authorize["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert {"scope", "login_hint", "acr_values", "binding_message"} <= set(form["properties"])
    assert {"200", "400", "401", "403"} <= set(authorize["responses"])
    error = doc["components"]["schemas"]["OAuthErrorAnswer"]
    assert error["required"] == ["error"]
    token_form = paths["/{tenant}/token"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]
    assert token_form["required"] == ["grant_type"]
    assert not any("{connector}" in p for p in paths)
    assert httpx.get(f"{gateway}/openapi/openapi.yaml").status_code == 200


def test_api_answers_fit_the_document(api_schema: schemathesis.BaseSchema) -> None:
    """Generated requests (with the client's credentials) get documented answers, never 5xx.

    One hypothesis run per operation, each with a bounded example budget.
    """
    labels, failures = [], []
    statuses: defaultdict[str, set[int]] = defaultdict(set)
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_fit(case: schemathesis.Case) -> None:
            if "tenant" in (case.path_parameters or {}):
                case.path_parameters["tenant"] = TENANT  # the tenant's own code, not "unknown"
            response = case.call_and_validate(auth=CLIENT, checks=CHECKS)
            statuses[case.operation.label].add(response.status_code)

        try:
            answers_fit()
        except Exception as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert "POST /{tenant}/token" in labels and len(labels) >= 10, labels
    # The runs reached the endpoints' own answers, not only the tenant check.
    assert statuses["GET /{tenant}/jwks"] == {200}
    assert 400 in statuses["POST /{tenant}/token"]
    assert 400 in statuses["POST /{tenant}/bc-authorize"], statuses
    assert statuses["GET /{tenant}/userinfo"] == {401}
