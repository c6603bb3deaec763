"""Process-level regression tests for the two bugs of issue 12, on real processes.

1. A ping client that calls the token endpoint as soon as the ping arrives,
   before its HTTP answer reaches the gateway, receives exactly one ping per
   request (the delivery is recorded on top of the redeem, never re-sent when
   the lease runs out): on one gateway, and on three replicas sharing Redis.
2. An upstream whose collect hangs for longer than the driver's lease sees one
   collect at a time per order (the driver renews its lease while the collect
   runs, and never starts a second task for the same request).

Leases and timeouts are short in these configs, so a repeat would show within
seconds; each test waits more than a lease past the last event for one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ciba_gateway.tokens.keys import generate_private_jwk
from tests.e2e.processes import Process, free_ports
from tests.e2e.test_replicas import (
    REDIS_URL,
    CollectRecorder,
    personal_number,
    redis_prefix,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.process

SECRET = "once-client-secret-0123456789"
CIBA = "urn:openid:params:grant-type:ciba"
LEASE = 3.0
"""``driver.lease_seconds``: short, so a re-sent ping would come within seconds."""


def serve_in_thread(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the helper server did not start"
        time.sleep(0.05)
    return server, thread


@dataclass
class RedeemingPingClient:
    """A ping client's callback endpoint that redeems at /token before it answers the ping."""

    token_urls: list[str]
    pings: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_ping: float = 0.0
    _http: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._http = httpx.AsyncClient(auth=("rp", SECRET), timeout=10)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    assert self._http is not None
                    await self._http.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        auth_req_id = json.loads(body)["auth_req_id"]
        with self.lock:
            self.pings[auth_req_id] += 1
            self.last_ping = time.monotonic()
            url = self.token_urls[sum(self.pings.values()) % len(self.token_urls)]
        assert self._http is not None
        answer = await self._http.post(url, data={"grant_type": CIBA, "auth_req_id": auth_req_id})
        if answer.status_code == 200 and "id_token" in answer.json():
            with self.lock:
                self.tokens[auth_req_id] += 1
        # Only now does the gateway get its answer to the ping.
        await asyncio.sleep(0.05)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def write_key(tmp: Path) -> Path:
    key_file = tmp / "keys" / "once-1.jwk"
    key_file.parent.mkdir(mode=0o700, exist_ok=True)
    key_file.write_text(json.dumps(generate_private_jwk("ES256", "once-1")))
    key_file.chmod(0o600)
    return key_file


def ping_config(tmp: Path, port: int, issuer_port: int, store: str, endpoint: str) -> Path:
    config = tmp / f"gateway-{port}.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: {port}}}
store: {store}
driver: {{lease_seconds: {LEASE}, tick: 0.1}}
notifications: {{timeout: 2, max_attempts: 3, initial_wait: 0.5, max_wait: 1}}
logging: {{format: json, level: info}}
tenants:
  - id: once
    issuer: http://127.0.0.1:{issuer_port}/once
    keys: [{{kid: once-1, alg: ES256, file: {write_key(tmp)}}}]
    subject: {{salt: "once-subject-salt-0123456789"}}
    allow_http_loopback_notifications: true
    lifetimes: {{auth_request: 60, poll_interval: 1}}
    start_limits: {{per_client: null, per_login_hint: null}}
    connectors:
      example:
        type: example
        people:
          - {{hint: "email:ping@example.com", name: Pat Ping, polls: 1}}
    routes: [{{login_hint: email, connector: example}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        delivery_mode: ping
        notification_endpoint: "{endpoint}"
        scopes: [openid, profile]
"""
    )
    return config


def run_ping_flows(ports: list[int], flows: int, tmp: Path, store: str) -> None:
    """``ports``: one per gateway, then the ping client's last."""
    *ports, client_port = ports
    urls = [f"http://127.0.0.1:{p}/once/token" for p in ports]
    client = RedeemingPingClient(urls)
    server, thread = serve_in_thread(client, client_port)
    endpoint = f"http://127.0.0.1:{client_port}/cb"
    gateways = []
    try:
        for port in ports:
            config = ping_config(tmp, port, ports[0], store, endpoint)
            gateways.append(Process(["serve", "--config", str(config)], tmp / f"gw-{port}.log"))
        for gateway, port in zip(gateways, ports, strict=True):
            gateway.wait_http(f"http://127.0.0.1:{port}/readyz")

        def start(i: int) -> str:
            url = f"http://127.0.0.1:{ports[i % len(ports)]}/once/bc-authorize"
            answer = httpx.post(
                url,
                data={
                    "scope": "openid",
                    "login_hint": "email:ping@example.com",
                    "client_notification_token": f"ping-token-{i}-{secrets.token_hex(4)}",
                },
                auth=("rp", SECRET),
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json()["auth_req_id"])

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(start, range(flows)))
        deadline = time.monotonic() + 60
        while len(client.pings) < flows and time.monotonic() < deadline:
            time.sleep(0.1)
        # A repeat would come once the lease ran out: wait well past it.
        while time.monotonic() < client.last_ping + 2 * LEASE + 1:
            time.sleep(0.1)
    finally:
        for gateway in gateways:
            gateway.stop()
        server.should_exit = True
        thread.join(timeout=10)
    assert set(client.pings) == set(ids), "a request was never pinged"
    assert {i: n for i, n in client.pings.items() if n != 1} == {}, "a ping was sent twice"
    assert dict(client.tokens) == dict.fromkeys(ids, 1), "each flow issues tokens once"


def test_ping_client_that_redeems_first_gets_one_ping_on_one_gateway(tmp_path: Path) -> None:
    """One gateway (SQLite): every request is pinged once although /token wins the race."""
    store = f'{{url: "sqlite:///{tmp_path}/once.db"}}'
    run_ping_flows(free_ports(2), flows=12, tmp=tmp_path, store=store)


def test_ping_client_that_redeems_first_gets_one_ping_on_three_replicas(
    tmp_path: Path,
    redis_prefix: str,  # noqa: F811 - the fixture imported above
) -> None:
    """Three replicas on one Redis: still one ping per request, whichever replica sends it."""
    store = f'{{url: "{REDIS_URL}", prefix: "{redis_prefix}", timeout: 1}}'
    run_ping_flows(free_ports(4), flows=24, tmp=tmp_path, store=store)


# --- a collect that hangs past the lease ---------------------------------------------


HANG = 2.5 * LEASE
"""Seconds the proxy holds the first collect of every order: well past the lease."""
ORDERS = 4


@pytest.fixture
def hanging_upstream() -> Iterator[tuple[CollectRecorder, int, int, int]]:
    """The BankID simulator behind a recording proxy that holds each order's first collect.

    Yields the proxy, the simulator's, the proxy's and the gateway's ports.
    """
    sim_port, proxy_port, gateway_port = free_ports(3)
    proxy = CollectRecorder(f"http://127.0.0.1:{sim_port}", hold=0.0, first_hold=HANG)
    server, thread = serve_in_thread(proxy, proxy_port)
    try:
        yield proxy, sim_port, proxy_port, gateway_port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_collect_hanging_past_the_lease_is_never_repeated_concurrently(
    tmp_path: Path, hanging_upstream: tuple[CollectRecorder, int, int, int]
) -> None:
    """While one collect hangs for 2.5 leases, no second collect of that order starts."""
    proxy, sim_port, proxy_port, port = hanging_upstream
    delay = HANG + 2
    personas = "\n".join(
        f'        - {{personal_number: "{personal_number(i)}", outcome: approve, delay: {delay}}}'
        for i in range(ORDERS)
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "sqlite:///{tmp_path}/hang.db"}}
driver: {{lease_seconds: {LEASE}, tick: 0.1}}
notifications: {{timeout: 1}}
simulators:
  - type: bankid
    mount: /_sim/bankid
    settings:
      personas:
{personas}
tenants:
  - id: once
    issuer: http://127.0.0.1:{port}/once
    keys: [{{kid: once-1, alg: ES256, file: {write_key(tmp_path)}}}]
    subject: {{salt: "once-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 60, poll_interval: 1}}
    connectors:
      bankid:
        type: bankid
        base_url: "http://127.0.0.1:{proxy_port}/r0/rp/v6.0"
        http: {{timeout: {HANG + 2}, retries: 1}}
    routes: [{{login_hint: ssn, connector: bankid}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid]
"""
    )
    sim = Process(
        ["simulate", "bankid", "--port", str(sim_port), "--config", str(config)],
        tmp_path / "sim.log",
    )
    gateway = None
    issued: dict[str, int] = defaultdict(int)
    try:
        sim.wait_http(f"http://127.0.0.1:{sim_port}/phone")
        gateway = Process(["serve", "--config", str(config)], tmp_path / "gateway.log")
        gateway.wait_http(f"http://127.0.0.1:{port}/readyz")
        with httpx.Client(auth=("rp", SECRET), timeout=10) as http:
            ids = []
            for i in range(ORDERS):
                answer = http.post(
                    f"http://127.0.0.1:{port}/once/bc-authorize",
                    data={"scope": "openid", "login_hint": f"ssn:{personal_number(i)}"},
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["auth_req_id"])
            deadline = time.monotonic() + 45
            while len(issued) < ORDERS and time.monotonic() < deadline:
                for auth_req_id in ids:
                    if auth_req_id in issued:
                        continue
                    answer = http.post(
                        f"http://127.0.0.1:{port}/once/token",
                        data={"grant_type": CIBA, "auth_req_id": auth_req_id},
                    )
                    if answer.status_code == 200:
                        issued[auth_req_id] += 1
                time.sleep(1.1)
    finally:
        if gateway is not None:
            gateway.stop()
        sim.stop()
    assert len(issued) == ORDERS, f"only {len(issued)} of {ORDERS} flows finished"
    collects, _ = proxy.snapshot()
    per_order: dict[str, list[Any]] = defaultdict(list)
    for c in collects:
        per_order[c.order_ref].append(c)
    assert len(per_order) == ORDERS
    for order_ref, calls in per_order.items():
        calls.sort(key=lambda c: c.start)
        assert calls[0].end - calls[0].start >= HANG - 0.5, "the first collect did not hang"
        for before, after in pairwise(calls):
            assert after.start >= before.end, f"order {order_ref}: {before} and {after} overlap"
