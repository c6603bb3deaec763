"""Ping/push delivery details: attempt logs, timeouts, metrics, dropped deliveries, https rule.

Complements test_ping_push.py with a real receiver on a loopback port.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from ciba_gateway.app import create_app
from ciba_gateway.config.load import load_config, parse_config
from ciba_gateway.connector import load_registry
from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.errors import ConfigError
from tests.integration.receiver import Receiver, free_port
from tests.integration.test_ping_push import (
    PING_SECRET,
    PUSH_SECRET,
    Setup,
    drive,
    start,
    yaml_for,
)

TOKEN = "notify-token-123"


@dataclass
class SlowReceiver(Receiver):
    """A Receiver that holds its first answers back for ``delays`` seconds each."""

    delays: list[float] = field(default_factory=list)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        delay = self.delays.pop(0) if scope["type"] == "http" and self.delays else 0.0

        async def slow_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(delay)
            await send(message)

        await super().app(scope, receive, slow_send)


@pytest.fixture
async def setup(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Setup]:
    s = Setup(tmp_path, clock, "memory://")
    yield s
    await s.receiver.stop()


def attempts(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "notification_attempt"]


def metric_line(text: str, mode: str, outcome: str) -> str | None:
    prefix = f'ciba_notifications_total{{mode="{mode}",outcome="{outcome}",tenant="acme"}} '
    return next((line for line in text.splitlines() if line.startswith(prefix)), None)


async def test_push_attempts_are_logged_without_any_token(setup: Setup) -> None:
    """Each attempt is one log event (retry, then delivered); no token appears in any of them."""
    setup.receiver.statuses = [503]
    await setup.receiver.start()
    app = setup.app()
    with capture_logs() as logs:
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            await start(client, "pusher", PUSH_SECRET)
            await drive(app)  # approved
            await drive(app)  # attempt 1: 503
            setup.clock.advance(5)
            await drive(app)  # attempt 2: 204
    seen = attempts(logs)
    assert [(e["attempt"], e["outcome"], e["status"]) for e in seen] == [
        (1, "retry", 503),
        (2, "delivered", 204),
    ]
    assert all(e["mode"] == "push" and e["client_id"] == "pusher" for e in seen)
    body = setup.receiver.received[-1].body
    dumped = json.dumps(logs, default=str)
    for secret in (TOKEN, body["access_token"], body["id_token"]):
        assert secret not in dumped


async def test_refusal_is_logged_and_counted(setup: Setup) -> None:
    """A 4xx answer stops delivery, is logged as refused and counted in /metrics."""
    setup.receiver.statuses = [403]
    await setup.receiver.start()
    app = setup.app()
    with capture_logs() as logs:
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            auth_req_id = await start(client, "pinger", PING_SECRET)
            await drive(app)
            await drive(app)
            setup.clock.advance(120)
            await drive(app)
            text = (await client.get("/metrics")).text
    assert [(e["outcome"], e["status"]) for e in attempts(logs)] == [("refused", 403)]
    assert metric_line(text, "ping", "refused") == (
        'ciba_notifications_total{mode="ping",outcome="refused",tenant="acme"} 1.0'
    )
    assert metric_line(text, "ping", "delivered") is None
    assert auth_req_id not in text and TOKEN not in text
    assert TOKEN not in json.dumps(logs, default=str)


async def test_slow_receiver_times_out_and_is_retried(tmp_path: Path, clock: FakeClock) -> None:
    """The configured timeout cuts a slow answer short; the next attempt is delivered."""
    port = free_port()
    receiver = SlowReceiver(port, delays=[2.0])
    text = yaml_for(tmp_path, receiver.url, "memory://").replace("timeout: 2,", "timeout: 0.3,")
    config = parse_config(text, registry=load_registry())
    assert config.notifications.timeout == 0.3
    app = create_app(config, clock=clock, run_driver=False)
    await receiver.start()
    try:
        with capture_logs() as logs:
            async with AsyncTestClient(app, base_url="http://testserver.local") as client:
                auth_req_id = await start(client, "pinger", PING_SECRET)
                await drive(app)
                loop = asyncio.get_running_loop()
                began = loop.time()
                await drive(app)  # attempt 1 times out
                took = loop.time() - began
                stored = await app.state.gateway.engine.get(auth_req_id)
                assert (stored.notify_state, stored.notify_attempts) == ("due", 1)
                clock.advance(2)
                await drive(app)  # attempt 2 answered at once
                stored = await app.state.gateway.engine.get(auth_req_id)
                metrics = (await client.get("/metrics")).text
    finally:
        await receiver.stop()
    assert took < 1.5
    assert stored.notify_state == "delivered"
    assert [(e["outcome"], e.get("error")) for e in attempts(logs)] == [
        ("error", "ReadTimeout"),
        ("delivered", None),
    ]
    assert metric_line(metrics, "ping", "error") is not None
    assert metric_line(metrics, "ping", "error").endswith(" 1.0")
    assert metric_line(metrics, "ping", "delivered").endswith(" 1.0")


def reloadable_app(
    tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> tuple[Litestar, Path, str]:
    """An app (no driver) built from a config file that a test rewrites and reloads."""
    text = yaml_for(tmp_path, receiver.url, "memory://")
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    app = create_app(
        load_config(path, registry=load_registry()),
        clock=clock,
        run_driver=False,
        config_path=path,
    )
    return app, path, text


async def test_unreadable_push_payload_is_dropped_not_retried(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A reload that changes the subject salt makes the sealed push unreadable: dropped once."""
    receiver = Receiver(free_port())
    app, path, text = reloadable_app(tmp_path, clock, receiver)
    with capture_logs() as logs:
        async with AsyncTestClient(app, base_url="http://testserver.local") as client:
            auth_req_id = await start(client, "pusher", PUSH_SECRET)
            await drive(app)
            await drive(app)  # receiver down: attempt 1 fails, the sealed payload is stored
            path.write_text(text.replace("acme-subject-salt-0123456789", "acme-salt-rotated-98765"))
            assert await app.state.runtime.reload() is True
            await receiver.start()
            try:
                for _ in range(3):
                    clock.advance(30)
                    await drive(app)
            finally:
                await receiver.stop()
            stored = await app.state.gateway.engine.get(auth_req_id)
            metrics = (await client.get("/metrics")).text
    assert receiver.received == []
    assert (stored.notify_state, stored.next_poll_at) == ("failed", None)
    dropped = [e for e in logs if e["event"] == "notification_dropped"]
    assert len(dropped) == 1 and dropped[0]["mode"] == "push"
    assert not [e for e in logs if e["event"] == "notification_failed"]
    assert metric_line(metrics, "push", "dropped").endswith(" 1.0")


async def test_push_for_a_removed_client_is_dropped_once(tmp_path: Path, clock: FakeClock) -> None:
    """The push client is removed by a reload before its approval is delivered: no tokens
    are minted, the notification is dropped once, and it is not retried every lease."""
    receiver = Receiver(free_port())
    app, path, text = reloadable_app(tmp_path, clock, receiver)
    pusher = text[text.index("      - client_id: pusher") :]
    await receiver.start()
    try:
        with capture_logs() as logs:
            async with AsyncTestClient(app, base_url="http://testserver.local") as client:
                auth_req_id = await start(client, "pusher", PUSH_SECRET)
                path.write_text(text.replace(pusher, ""))
                assert await app.state.runtime.reload() is True
                for _ in range(4):
                    await drive(app)
                    clock.advance(60)  # well past the driver's lease: a retry would show
                stored = await app.state.gateway.engine.get(auth_req_id)
                metrics = (await client.get("/metrics")).text
    finally:
        await receiver.stop()
    assert receiver.received == []
    assert stored.status.value == "approved"  # never issued: no tokens were made
    assert (stored.notify_state, stored.next_poll_at) == ("failed", None)
    assert len([e for e in logs if e["event"] == "push_build_failed"]) == 1
    dropped = [e for e in logs if e["event"] == "notification_dropped"]
    assert len(dropped) == 1 and dropped[0]["mode"] == "push"
    assert metric_line(metrics, "push", "dropped").endswith(" 1.0")


def config_with_endpoint(tmp: Path, endpoint: str, *, loopback_flag: bool) -> str:
    text = yaml_for(tmp, endpoint, "memory://")
    if not loopback_flag:
        text = text.replace("    allow_http_loopback_notifications: true\n", "")
    return text


@pytest.mark.parametrize(
    ("endpoint", "loopback_flag"),
    [
        ("http://rp.example/cb", True),
        ("http://127.0.0.1:9/cb", False),
        ("ftp://rp.example/cb", True),
    ],
)
def test_notification_endpoint_must_be_https(
    tmp_path: Path, endpoint: str, loopback_flag: bool
) -> None:
    """http is refused except for loopback with the tenant's dev flag."""
    with pytest.raises(ConfigError) as info:
        parse_config(
            config_with_endpoint(tmp_path, endpoint, loopback_flag=loopback_flag),
            registry=load_registry(),
        )
    messages = " ".join(p.message for p in info.value.problems)
    assert "notification_endpoint must be an https URL" in messages


@pytest.mark.parametrize(
    ("endpoint", "loopback_flag"),
    [("https://rp.example/cb", False), ("http://127.0.0.1:9/cb", True)],
)
def test_https_or_flagged_loopback_endpoint_is_accepted(
    tmp_path: Path, endpoint: str, loopback_flag: bool
) -> None:
    """https always works; http to loopback works when the tenant enables the dev flag."""
    config = parse_config(
        config_with_endpoint(tmp_path, endpoint, loopback_flag=loopback_flag),
        registry=load_registry(),
    )
    clients = {c.client_id: c for c in config.tenants[0].clients}
    assert clients["pinger"].notification_endpoint == endpoint
    assert clients["pusher"].delivery_mode == "push"
