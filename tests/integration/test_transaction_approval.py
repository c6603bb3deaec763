"""Transaction approval through the gateway: typed details in, the same details in every token.

Uses the example connector (no upstream) and a file audit sink; the connectors'
own tests cover what each upstream is sent and shows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.details import digest
from tests.integration.conftest import SECRET, Harness, config_yaml

KARL = "ssn:199001011239"
TOLVAN = "ssn:191212121212"
PAYMENT: dict[str, Any] = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}


@pytest.fixture
async def audited(tmp_path: Path, clock: Any, client_jwk: dict[str, Any]) -> AsyncIterator[Harness]:
    """The usual harness with the audit trail going to a JSON lines file."""
    audit = f"audit: {{sink: file, file: {tmp_path}/audit.jsonl}}\n"
    config = parse_config(audit + config_yaml(tmp_path, client_jwk), registry=load_registry())
    app = create_app(config, clock=clock, run_driver=False)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield Harness(app=app, client=client, config=config, client_jwk=client_jwk)


def audit_events(harness: Harness) -> list[dict[str, Any]]:
    path = Path(harness.config.audit.file or "")
    return [json.loads(line) for line in path.read_text().splitlines()]


async def approve(harness: Harness, details: list[dict[str, Any]]) -> dict[str, Any]:
    """bc-authorize with ``details``, let the example approve, redeem; the token response."""
    started = await harness.bc_authorize(
        {
            "scope": "openid profile",
            "login_hint": KARL,
            "binding_message": "A1B2",
            "authorization_details": json.dumps(details),
        }
    )
    assert started.status_code == 200, started.text
    await harness.drive(2)
    response = await harness.token(started.json()["auth_req_id"])
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_tokens_and_userinfo_carry_the_approved_details(audited: Harness) -> None:
    """RFC 9396 7 and 9.2: token response, ID token, userinfo, introspection: same details."""
    body = await approve(audited, [PAYMENT])
    expected_digest = digest([PAYMENT])

    assert body["authorization_details"] == [PAYMENT]
    assert body["authorization_details_digest"] == expected_digest
    claims = await audited.verify_id_token(body["id_token"])
    assert claims["authorization_details"] == [PAYMENT]
    assert claims["authorization_details_digest"] == expected_digest
    info = await audited.client.get(
        "/acme/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert info.json()["authorization_details"] == [PAYMENT]
    assert info.json()["authorization_details_digest"] == expected_digest
    introspected = await audited.client.post(
        "/acme/introspect",
        data={"token": body["access_token"]},
        auth=("callcenter", SECRET),
    )
    assert introspected.json()["active"] is True
    assert introspected.json()["authorization_details"] == [PAYMENT]
    assert introspected.json()["authorization_details_digest"] == expected_digest


async def test_one_byte_changes_the_digest_in_the_token(audited: Harness) -> None:
    """Two approvals that differ by one cent carry different digests in their ID tokens."""
    first = await approve(audited, [PAYMENT])
    other = {**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "123.51"}}
    second = await approve(audited, [other])

    one = await audited.verify_id_token(first["id_token"])
    two = await audited.verify_id_token(second["id_token"])
    assert one["authorization_details_digest"] != two["authorization_details_digest"]
    assert two["authorization_details_digest"] == digest([other])


async def test_without_details_the_tokens_say_nothing_about_them(audited: Harness) -> None:
    """A plain login carries no authorization_details claims."""
    started = await audited.bc_authorize({"scope": "openid", "login_hint": KARL})
    await audited.drive(2)
    body = (await audited.token(started.json()["auth_req_id"])).json()
    assert "authorization_details" not in body
    assert "authorization_details" not in await audited.verify_id_token(body["id_token"])


@pytest.mark.parametrize(
    ("details", "auth", "mentions"),
    [
        ([{**PAYMENT, "creditorName": "Evil\u202eCorp"}], None, "control, format"),
        ([{**PAYMENT, "debtorAccount": {"iban": "x"}}], None, "unknown field"),
        ([PAYMENT] * 6, None, "at most 5"),
        ([PAYMENT], "branch", "not allowed for this client"),
        ([{"type": "wire_transfer"}], None, "not allowed for this client"),
    ],
)
async def test_refused_details_leave_nothing_behind(
    audited: Harness,
    details: list[dict[str, Any]],
    auth: str | None,
    mentions: str,
) -> None:
    """Hostile, unknown or unlisted details: invalid_authorization_details, no request stored."""
    before = await audited.app.state.gateway.engine.store.count_pending()
    data = {"scope": "openid", "login_hint": KARL, "authorization_details": json.dumps(details)}
    if auth == "branch":  # a client_secret_post client that lists no details types
        data.update(client_id="branch", client_secret="branch-secret-0123456789abcdef")
        response = await audited.client.post("/acme/bc-authorize", data=data)
    else:
        response = await audited.bc_authorize(data)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"
    assert mentions in response.json()["error_description"]
    assert await audited.app.state.gateway.engine.store.count_pending() == before


async def test_one_audit_event_per_decision_without_personal_data(audited: Harness) -> None:
    """Approved and denied decisions: one complete event each; no national id, name or text."""
    await approve(audited, [PAYMENT])
    denied = await audited.bc_authorize(
        {"scope": "openid", "login_hint": TOLVAN, "authorization_details": json.dumps([PAYMENT])}
    )
    await audited.drive(2)
    await audited.token(denied.json()["auth_req_id"])  # redeeming adds no event

    events = audit_events(audited)
    assert [e["outcome"] for e in events] == ["approved", "denied"]
    for event in events:
        assert event["event"] == "audit_decision"
        assert event["tenant"] == "acme"
        assert event["client"] == "callcenter"
        assert event["connector"] == "example"
        assert len(event["request"]) == 12
        assert event["details_types"] == ["payment_initiation"]
        assert event["details_digest"] == digest([PAYMENT])
        assert event["created_at"] <= event["decided_at"] < event["expires_at"]
    assert events[0]["subject"] == "ssn:19900101****"
    assert events[0]["acr"] == "urn:example:acr:substantial"
    assert events[1]["subject"] == "ssn:19121212****"
    assert events[1]["error"] == "access_denied"
    text = json.dumps(events, ensure_ascii=False)
    for secret in ("199001011239", "191212121212", "Karl", "Merchant", "DE021001", "123.50"):
        assert secret not in text
