"""OpenTelemetry tracing: spans of requests, connector calls, upstream HTTP and notifications.

The gateway runs with ``OtelTracing`` exporting to the SDK's in-memory exporter; the
BankID simulator is served on a loopback port, so the connector's calls go over the
real transport, and the ping receiver is a real HTTP server too.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ciba_gateway_bankid_sim.app import create_simulator
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.testing import capture_logs

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.config.model import TracingConfig
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock, serve_http
from ciba_gateway.observability import add_trace_ids
from ciba_gateway.otel import OtelTracing
from tests.integration.receiver import Receiver, free_port

CIBA = "urn:openid:params:grant-type:ciba"
SECRET = "callcenter-secret-0123456789"
PING_SECRET = "ping-client-secret-0123456789"
KARL = "199001011239"
"""The personal number in both login hints; must appear in no span attribute."""
NOTIFY_TOKEN = "notify-token-0123456789"
BANKID_ACR = "urn:grn:authn:se:bankid"


def _yaml(tmp: Path, bankid_url: str, ping_url: str) -> str:
    return f"""
store: {{url: "memory://"}}
tracing: {{enabled: true, exporter: none}}
tenants:
  - id: acme
    issuer: http://testserver.local/acme
    keys: [{{kid: acme-1, alg: ES256, file: {tmp}/acme-1.jwk, generate: true}}]
    subject: {{salt: "acme-subject-salt-0123456789"}}
    allow_http_loopback_notifications: true
    connectors:
      example:
        type: example
        acr: urn:example:acr:substantial
        people: [{{hint: "ssn:{KARL}", name: Karl Karlsson, polls: 1}}]
      bankid:
        type: bankid
        base_url: {bankid_url}/rp/v6.0
        end_user_ip: 198.51.100.4
        http: {{retries: 1}}
    routes:
      - {{acr: "{BANKID_ACR}", connector: bankid}}
      - {{login_hint: ssn, connector: example}}
    clients:
      - client_id: callcenter
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile]
      - client_id: pinger
        auth: {{method: client_secret_basic, secret: "{PING_SECRET}"}}
        delivery_mode: ping
        notification_endpoint: "{ping_url}"
        scopes: [openid, profile]
"""


def _basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@dataclass
class Traced:
    client: AsyncTestClient[Any]
    app: Any
    exporter: InMemorySpanExporter
    clock: FakeClock
    receiver: Receiver

    async def drive(self, rounds: int = 1) -> None:
        for _ in range(rounds):
            await self.app.state.driver.run_once()
            await self.app.state.driver.drain()

    async def bc_authorize(self, user: str, secret: str, **extra: str) -> str:
        data = {"scope": "openid profile", "login_hint": f"ssn:{KARL}", **extra}
        response = await self.client.post(
            "/acme/bc-authorize", data=data, headers=_basic(user, secret)
        )
        assert response.status_code == 200, response.text
        return response.json()["auth_req_id"]

    async def token(self, auth_req_id: str) -> Any:
        return await self.client.post(
            "/acme/token",
            data={"grant_type": CIBA, "auth_req_id": auth_req_id},
            headers=_basic("callcenter", SECRET),
        )

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def bankid_url() -> Iterator[str]:
    personas = [{"personal_number": KARL, "given_name": "Karl", "outcome": "approve"}]
    with serve_http(create_simulator({"personas": personas})) as url:
        yield url


@pytest.fixture
async def traced(tmp_path: Path, clock: FakeClock, bankid_url: str) -> AsyncIterator[Traced]:
    receiver = Receiver(free_port())
    await receiver.start()
    config = parse_config(_yaml(tmp_path, bankid_url, receiver.url), registry=load_registry())
    exporter = InMemorySpanExporter()
    tracing = OtelTracing(config.tracing, exporter=exporter)
    app = create_app(config, clock=clock, run_driver=False, tracing=tracing)
    try:
        async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
            yield Traced(client, app, exporter, clock, receiver)
    finally:
        await receiver.stop()


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _assert_no_pii(spans: tuple[ReadableSpan, ...], *secrets: str) -> None:
    """No attribute value, span name or resource value holds a login hint or secret."""
    for span in spans:
        values = [span.name, *map(str, span.attributes.values())]
        values += map(str, span.resource.attributes.values())
        for value in values:
            for secret in (KARL, KARL[2:], *secrets):
                assert secret not in value, (span.name, value)


async def test_poll_flow_with_the_example_connector(traced: Traced) -> None:
    """Request spans by route, a start span under bc-authorize, poll spans with outcomes."""
    auth_req_id = await traced.bc_authorize("callcenter", SECRET)
    await traced.drive()
    traced.clock.advance(6)
    await traced.drive()
    assert (await traced.token(auth_req_id)).status_code == 200
    spans = traced.spans()

    (authorize,) = _named(spans, "POST /{tenant}/bc-authorize")
    assert authorize.kind is SpanKind.SERVER
    assert authorize.attributes["http.route"] == "/{tenant}/bc-authorize"
    assert authorize.attributes["http.response.status_code"] == 200
    assert authorize.attributes["ciba.tenant"] == "acme"
    assert authorize.attributes["ciba.client_id"] == "callcenter"
    (start,) = _named(spans, "connector.start")
    assert start.parent is not None and start.parent.span_id == authorize.context.span_id
    assert start.attributes["ciba.connector"] == "example"
    assert start.attributes["ciba.connector.kind"] == "example"
    assert start.attributes["ciba.outcome"] == "started"
    polls = _named(spans, "connector.poll")
    assert [p.attributes["ciba.outcome"] for p in polls] == ["pending", "approved"]
    assert all(p.attributes["ciba.tenant"] == "acme" for p in polls)
    (token,) = _named(spans, "POST /{tenant}/token")
    assert token.attributes["http.response.status_code"] == 200
    _assert_no_pii(spans, auth_req_id, SECRET)


async def test_bankid_calls_are_child_spans_of_the_connector_calls(traced: Traced) -> None:
    """Each BankID auth and collect is a client span under its connector span: host, status."""
    auth_req_id = await traced.bc_authorize("callcenter", SECRET, acr_values=BANKID_ACR)
    traced.clock.advance(3)
    await traced.drive()
    assert (await traced.token(auth_req_id)).status_code == 200
    spans = traced.spans()

    (start,) = _named(spans, "connector.start")
    (poll,) = _named(spans, "connector.poll")
    assert start.attributes["ciba.connector.kind"] == "bankid"
    assert poll.attributes["ciba.outcome"] == "approved"
    for call in (start, poll):
        (http,) = _children(spans, call)
        assert http.kind is SpanKind.CLIENT
        assert http.name == "POST"
        assert http.attributes["http.request.method"] == "POST"
        assert http.attributes["server.address"] == "127.0.0.1"
        assert http.attributes["http.response.status_code"] == 200
        assert http.context.trace_id == call.context.trace_id
        assert not any(k.startswith("url.") and k != "url.scheme" for k in http.attributes)
    _assert_no_pii(spans, auth_req_id, SECRET)


async def test_ping_is_a_span_with_its_http_call(traced: Traced) -> None:
    """A ping delivery is one notification span whose child is the POST to the client."""
    auth_req_id = await traced.bc_authorize(
        "pinger", PING_SECRET, client_notification_token=NOTIFY_TOKEN
    )
    await traced.drive()
    traced.clock.advance(6)
    await traced.drive(rounds=2)
    assert len(traced.receiver.received) == 1
    spans = traced.spans()

    (ping,) = _named(spans, "notification.ping")
    assert ping.attributes["ciba.outcome"] == "delivered"
    assert ping.attributes["ciba.client_id"] == "pinger"
    assert ping.status.status_code is not StatusCode.ERROR
    (http,) = _children(spans, ping)
    assert http.attributes["http.response.status_code"] == 204
    assert http.attributes["server.port"] == traced.receiver.port
    # No traceparent went to the client: propagation is off by default.
    assert "traceparent" not in traced.receiver.received[0].headers
    _assert_no_pii(spans, auth_req_id, PING_SECRET, NOTIFY_TOKEN)


async def test_log_lines_carry_the_trace_id(traced: Traced) -> None:
    """The access-log line and a connector's lines name the trace and span they were written in."""
    with capture_logs(processors=[add_trace_ids]) as logs:
        auth_req_id = await traced.bc_authorize("callcenter", SECRET, acr_values=BANKID_ACR)
        traced.clock.advance(3)
        await traced.drive()
        await traced.token(auth_req_id)
    spans = {format(s.context.span_id, "016x"): s for s in traced.spans()}
    (authorize,) = [e for e in logs if e["event"] == "request" and e["endpoint"] == "bc-authorize"]
    span = spans[authorize["span_id"]]
    assert span.name == "POST /{tenant}/bc-authorize"
    assert authorize["trace_id"] == format(span.context.trace_id, "032x")
    (collected,) = [e for e in logs if e["event"] == "bankid_collected"]
    poll = spans[collected["span_id"]]
    assert poll.name == "connector.poll"
    assert collected["trace_id"] == format(poll.context.trace_id, "032x")
    # The decision, logged after the connector call returned, is in the driver's step span,
    # whose child the connector call is.
    (finished,) = [e for e in logs if e["event"] == "flow_finished"]
    drive = spans[finished["span_id"]]
    assert drive.name == "flow.drive"
    assert drive.attributes["ciba.tenant"] == "acme"
    assert poll.parent is not None and poll.parent.span_id == drive.context.span_id
    assert finished["trace_id"] == collected["trace_id"]


async def test_propagation_sends_traceparent_when_configured(
    tmp_path: Path, clock: FakeClock, bankid_url: str
) -> None:
    """With ``propagate: true`` the ping carries the notification span's traceparent."""
    receiver = Receiver(free_port())
    await receiver.start()
    text = _yaml(tmp_path, bankid_url, receiver.url).replace(
        "exporter: none}", "exporter: none, propagate: true}"
    )
    config = parse_config(text, registry=load_registry())
    exporter = InMemorySpanExporter()
    app = create_app(
        config,
        clock=clock,
        run_driver=False,
        tracing=OtelTracing(config.tracing, exporter=exporter),
    )
    try:
        async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
            traced = Traced(client, app, exporter, clock, receiver)
            await traced.bc_authorize("pinger", PING_SECRET, client_notification_token=NOTIFY_TOKEN)
            await traced.drive()
            clock.advance(6)
            await traced.drive(rounds=2)
    finally:
        await receiver.stop()
    (ping,) = _named(exporter.get_finished_spans(), "notification.ping")
    (http,) = _children(exporter.get_finished_spans(), ping)
    _version, trace_id, span_id, _flags = receiver.received[0].headers["traceparent"].split("-")
    assert trace_id == format(http.context.trace_id, "032x")
    assert span_id == format(http.context.span_id, "016x")


_OFF_SCRIPT = """
import asyncio, base64, json, sys
if sys.argv[1] == "uninstalled":
    sys.modules["opentelemetry"] = None  # every import of it fails, as without the extra
from litestar.testing import AsyncTestClient
from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.observability import configure_logging

async def main():
    configure_logging("json", "warning")
    config = parse_config(sys.stdin.read(), registry=load_registry())
    app = create_app(config, run_driver=False)
    basic = {"Authorization": "Basic " + base64.b64encode(sys.argv[2].encode()).decode()}
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        data = {"scope": "openid", "login_hint": sys.argv[3]}
        started = await client.post("/acme/bc-authorize", data=data, headers=basic)
        assert started.status_code == 200, started.text
        await app.state.driver.run_once()
        await app.state.driver.drain()
        token = await client.post(
            "/acme/token", headers=basic, data={
                "grant_type": sys.argv[4], "auth_req_id": started.json()["auth_req_id"]})
        assert token.status_code == 400, token.text  # authorization_pending: polls: 1
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    tracing = app.state.runtime.tracing.enabled
    ours = "ciba_gateway.otel" in sys.modules
    print(json.dumps({"tracing": tracing, "loaded": loaded, "ours": ours}))

asyncio.run(main())
"""


def _run_untraced(tmp_path: Path, mode: str) -> dict[str, Any]:
    config = _yaml(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9/cb").replace(
        "tracing: {enabled: true, exporter: none}", ""
    )
    done = subprocess.run(
        [sys.executable, "-c", _OFF_SCRIPT, mode, f"callcenter:{SECRET}", f"ssn:{KARL}", CIBA],
        input=config,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_disabled_tracing_imports_no_opentelemetry(tmp_path: Path) -> None:
    """Tracing off: a flow imports neither the SDK nor the API, nor ciba_gateway.otel.

    Litestar itself imports the bare ``opentelemetry`` package and its semantic
    conventions when they are installed (it looks for its own middleware when an
    app is built, once); nothing that opens or exports a span is loaded.
    """
    result = _run_untraced(tmp_path, "installed")
    assert result["tracing"] is False
    assert result["ours"] is False
    probe = [m for m in result["loaded"] if m != "opentelemetry" and ".semconv" not in m]
    assert probe == []


def test_the_gateway_runs_without_the_extra(tmp_path: Path) -> None:
    """With opentelemetry not importable at all, the same flow runs and loads none of it.

    (``opentelemetry`` is listed: it is the ``None`` placeholder that blocks the import.)
    """
    result = _run_untraced(tmp_path, "uninstalled")
    assert result == {"tracing": False, "loaded": ["opentelemetry"], "ours": False}


def test_sample_ratio_zero_records_nothing() -> None:
    """``sample_ratio: 0`` keeps no trace the gateway starts, and logs name none."""
    exporter = InMemorySpanExporter()
    tracing = OtelTracing(TracingConfig(enabled=True, sample_ratio=0.0), exporter=exporter)
    with tracing.span("connector.poll"):
        assert tracing.ids() is None
    assert exporter.get_finished_spans() == ()
