"""Three gateway replicas share one Redis; one is killed mid-run and nothing is lost or doubled.

Real processes: three ``ciba-gateway serve`` on loopback ports, the BankID
simulator (``ciba-gateway simulate bankid``), the machine's Redis on
127.0.0.1:6379 under a fresh key prefix. Between the replicas and the
simulator sits a small recording proxy (in this test process): each replica's
connector talks to it under its own path (``/r0``, ``/r1``, ``/r2``), so every
collect is logged with the replica that sent it and when it started and ended.
The proxy holds each collect a little, which widens the window in which two
replicas polling one order would overlap, and makes sure the killed replica
dies holding leases.

Clients spread bc-authorize and token calls over the live replicas at random.
Half of them poll the token endpoint; the other half wait until the store says
approved and then redeem at every live replica at once, so the approved ->
issued compare-and-set races across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from ciba_gateway_bankid.personnummer import check_digit

from ciba_gateway.tokens.keys import generate_private_jwk
from tests.contract.test_store_contract import REDIS_URL
from tests.e2e.processes import Process, free_ports

pytestmark = pytest.mark.process

SECRET = "replica-client-secret-0123456789"
CIBA = "urn:openid:params:grant-type:ciba"
REPLICAS = 3
FLOWS = 24
LEASE = 8.0
"""The driver's lease (``driver.lease_seconds`` in the replicas' config)."""
POLL_INTERVAL = 2
"""The tenant's token polling interval; BankID collects every 2 s too."""
HOLD = 0.8
"""Seconds the proxy holds every collect before it forwards it."""
TAKEOVER_SLACK = 3.0
"""Seconds a takeover may come before ``leased_at + LEASE`` (see the check); > POLL_INTERVAL."""


def personal_number(i: int) -> str:
    """A distinct valid personnummer per flow (BankID allows one order per person)."""
    born = dt.date(1960, 1, 1) + dt.timedelta(days=97 * i)
    nine = born.strftime("%y%m%d") + f"{200 + i:03d}"
    return born.strftime("%Y") + nine[2:] + str(check_digit(nine))


def approve_delay(i: int) -> float:
    """Seconds until flow ``i``'s persona approves: the kill must find a collect in flight,
    so collects go on well past the 5 s warm-up and the victim's drain."""
    return 11.0 + i % 5


# --- the recording proxy ----------------------------------------------------------


@dataclass(frozen=True)
class Collect:
    order_ref: str
    replica: int
    start: float
    end: float


class CollectRecorder:
    """An ASGI reverse proxy to the simulator that records every collect call."""

    def __init__(self, upstream: str, hold: float = HOLD, first_hold: float | None = None) -> None:
        self.upstream = upstream
        self.hold = hold
        self.first_hold = hold if first_hold is None else first_hold
        """Seconds the first collect of each order is held (a hanging upstream)."""
        self._seen: set[str] = set()
        self.collects: list[Collect] = []
        self.inflight: dict[int, dict[str, float]] = defaultdict(dict)
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None

    def snapshot(self) -> tuple[list[Collect], dict[int, dict[str, float]]]:
        with self._lock:
            return list(self.collects), {r: dict(o) for r, o in self.inflight.items()}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        _, replica_part, rest = scope["path"].split("/", 2)
        replica = int(replica_part[1:])
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        start = time.monotonic()
        order_ref = json.loads(body).get("orderRef") if rest.endswith("/collect") else None
        if order_ref is not None:
            with self._lock:
                self.inflight[replica][order_ref] = start
                first = order_ref not in self._seen
                self._seen.add(order_ref)
            await asyncio.sleep(self.first_hold if first else self.hold)
        assert self._client is not None
        answer = await self._client.post(
            f"{self.upstream}/{rest}", content=body, headers={"content-type": "application/json"}
        )
        if order_ref is not None:
            with self._lock:
                del self.inflight[replica][order_ref]
                self.collects.append(Collect(order_ref, replica, start, time.monotonic()))
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=10)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


@pytest.fixture
def ports() -> list[int]:
    """Distinct ports: the recording proxy's, the simulator's, then one per replica."""
    return free_ports(2 + REPLICAS)


@pytest.fixture
def recorder_port(ports: list[int]) -> int:
    return ports[0]


@pytest.fixture
def sim_port(ports: list[int]) -> int:
    return ports[1]


@pytest.fixture
def recorder(recorder_port: int, sim_port: int) -> Iterator[CollectRecorder]:
    proxy = CollectRecorder(f"http://127.0.0.1:{sim_port}")
    server = uvicorn.Server(
        uvicorn.Config(proxy, host="127.0.0.1", port=recorder_port, log_level="warning", ws="none")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the recording proxy did not start"
        time.sleep(0.05)
    try:
        yield proxy
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- processes and Redis ------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        try:
            client.ping()
        except redis.ConnectionError:
            pytest.fail(f"no Redis at {REDIS_URL}: run scripts/prepare.sh")
        prefix = f"e2e-{secrets.token_hex(6)}:"
        yield prefix
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def write_configs(
    tmp: Path, ports: list[int], recorder_port: int, prefix: str
) -> tuple[list[Path], Path]:
    key_file = tmp / "keys" / "replica-1.jwk"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(json.dumps(generate_private_jwk("ES256", "replica-1")))
    key_file.chmod(0o600)
    personas = "\n".join(
        f'        - {{personal_number: "{personal_number(i)}", outcome: approve,'
        f" delay: {approve_delay(i)}}}"
        for i in range(FLOWS)
    )
    configs = []
    for index, port in enumerate(ports):
        config = tmp / f"replica-{index}.yaml"
        config.write_text(
            f"""
server: {{host: 127.0.0.1, port: {port}}}
store: {{url: "{REDIS_URL}", prefix: "{prefix}"}}
driver: {{lease_seconds: {LEASE}}}
logging: {{format: json, level: info}}
simulators:
  - type: bankid
    mount: /_sim/bankid
    settings:
      personas:
{personas}
tenants:
  - id: e2e
    issuer: http://127.0.0.1:{ports[0]}/e2e
    keys: [{{kid: replica-1, alg: ES256, file: {key_file}}}]
    subject: {{salt: "replica-subject-salt-0123456789"}}
    lifetimes: {{auth_request: 120, poll_interval: {POLL_INTERVAL}}}
    connectors:
      bankid:
        type: bankid
        base_url: "http://127.0.0.1:{recorder_port}/r{index}/rp/v6.0"
    routes: [{{login_hint: ssn, connector: bankid}}]
    clients:
      - client_id: rp
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile]
"""
        )
        configs.append(config)
    return configs, tmp / "replica-0.yaml"


@dataclass
class Cluster:
    ports: list[int]
    gateways: list[Process]
    sim_port: int
    live: list[int] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    busy: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self) -> int:
        with self.lock:
            replica = self.rng.choice(self.live)
            self.busy[replica] += 1
            return replica

    def done(self, replica: int) -> None:
        with self.lock:
            self.busy[replica] -= 1

    def drain(self, replica: int) -> None:
        """Take ``replica`` out of the clients' rotation and wait for its calls to finish."""
        with self.lock:
            self.live.remove(replica)
        deadline = time.monotonic() + 10
        while self.busy[replica] and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture
def cluster(
    tmp_path: Path,
    recorder: CollectRecorder,
    ports: list[int],
    recorder_port: int,
    sim_port: int,
    redis_prefix: str,
) -> Iterator[Cluster]:
    ports = ports[2:]
    configs, sim_config = write_configs(tmp_path, ports, recorder_port, redis_prefix)
    sim = Process(
        ["simulate", "bankid", "--port", str(sim_port), "--config", str(sim_config)],
        tmp_path / "sim.log",
    )
    gateways: list[Process] = []
    try:
        sim.wait_http(f"http://127.0.0.1:{sim_port}/phone")
        gateways = [
            Process(["serve", "--config", str(config)], tmp_path / f"replica-{i}.log")
            for i, config in enumerate(configs)
        ]
        for gateway, port in zip(gateways, ports, strict=True):
            gateway.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield Cluster(ports=ports, gateways=gateways, sim_port=sim_port, live=list(range(REPLICAS)))
    finally:
        for gateway in gateways:
            gateway.stop()
        sim.stop()


def kill_tree(process: Process) -> None:
    """SIGKILL a replica and every process under it (a lost node: the server's workers too)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    doomed = [process.proc.pid]
    for pid in doomed:
        doomed += [child for child, parent in parents.items() if parent == pid]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.proc.wait(timeout=10)


# --- the relying parties ---------------------------------------------------------------


@dataclass
class Flow:
    pnr: str
    racer: bool
    delay: float
    """Seconds before the flow starts, so that orders fall due at different times."""
    auth_req_id: str = ""
    statuses: list[tuple[int, str]] = field(default_factory=list)
    """(HTTP status, error or "tokens") of every token call, all replicas."""
    issued_at: float | None = None


def call(cluster: Cluster, http: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    replica = cluster.pick()
    try:
        return http.post(f"http://127.0.0.1:{cluster.ports[replica]}/e2e/{path}", data=data)
    finally:
        cluster.done(replica)


def record(flow: Flow, response: httpx.Response) -> bool:
    body = response.json()
    flow.statuses.append((response.status_code, body.get("error", "tokens")))
    if response.status_code == 200:
        assert "id_token" in body and "access_token" in body, body
        flow.issued_at = time.monotonic()
        return True
    assert body["error"] in {"authorization_pending", "invalid_grant"}, body
    return False


def run_flow(flow: Flow, cluster: Cluster, store: redis.Redis, prefix: str, stop: float) -> None:
    time.sleep(flow.delay)
    with httpx.Client(auth=("rp", SECRET), timeout=10) as http:
        started = call(
            cluster,
            http,
            "bc-authorize",
            {"scope": "openid profile", "login_hint": f"ssn:{flow.pnr}"},
        )
        assert started.status_code == 200, started.text
        flow.auth_req_id = started.json()["auth_req_id"]
        grant = {"grant_type": CIBA, "auth_req_id": flow.auth_req_id}
        if flow.racer:
            key = f"{prefix}{{req}}:r:{flow.auth_req_id}"
            while store.hget(key, "s") != b"approved" and time.monotonic() < stop:
                time.sleep(0.1)
            with cluster.lock:
                targets = list(cluster.live)
            barrier = threading.Barrier(len(targets))

            def redeem(replica: int) -> httpx.Response:
                barrier.wait()
                url = f"http://127.0.0.1:{cluster.ports[replica]}/e2e/token"
                return http.post(url, data=grant)

            with ThreadPoolExecutor(len(targets)) as pool:
                for response in pool.map(redeem, targets):
                    record(flow, response)
        else:
            while time.monotonic() < stop and not record(flow, call(cluster, http, "token", grant)):
                time.sleep(POLL_INTERVAL + 0.1)
        # Once issued, every replica refuses the same auth_req_id.
        record(flow, call(cluster, http, "token", grant))


# --- the test ---------------------------------------------------------------------------


def test_replicas_share_work_survive_a_kill_and_issue_exactly_once(
    cluster: Cluster, recorder: CollectRecorder, redis_prefix: str
) -> None:
    """Every order is polled by one replica at a time, every flow issues once, a kill loses none."""
    flows = [
        Flow(pnr=personal_number(i), racer=i % 2 == 1, delay=cluster.rng.uniform(0, 2))
        for i in range(FLOWS)
    ]
    store = redis.Redis.from_url(REDIS_URL)
    begin = time.monotonic()
    stop = begin + 90
    pool = ThreadPoolExecutor(FLOWS)
    try:
        futures = [pool.submit(run_flow, f, cluster, store, redis_prefix, stop) for f in flows]

        # Kill the replica that is busiest collecting, once every flow has started.
        time.sleep(5)
        victim, held = -1, {}
        while time.monotonic() < begin + 15:
            _, inflight = recorder.snapshot()
            victim = max(range(REPLICAS), key=lambda r: len(inflight.get(r, {})))
            held = inflight.get(victim, {})
            if held:
                break
            time.sleep(0.05)
        assert held, "no replica was collecting: the run is too short to test a kill"
        cluster.drain(victim)
        # Draining can outlast the collects seen above (on a loaded machine): kill when
        # the victim has just begun a collect, so it dies holding that lease.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _, inflight = recorder.snapshot()
            now = time.monotonic()
            held = inflight.get(victim, {})
            if any(now - start < HOLD / 2 for start in held.values()):
                break
            time.sleep(0.005)
        killed_at = time.monotonic()
        kill_tree(cluster.gateways[victim])

        for future in futures:
            future.result(timeout=120)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        store.close()

    collects, _ = recorder.snapshot()
    stats = httpx.get(f"http://127.0.0.1:{cluster.sim_port}/control/stats").json()
    orders = {o["orderRef"]: o["personalNumber"] for o in stats["orders"]}
    by_pnr = {f.pnr: f for f in flows}

    # Nothing lost, nothing issued twice: one 200 per auth_req_id, across every attempt.
    for flow in flows:
        assert [s for s in flow.statuses if s[0] == 200] == [(200, "tokens")], flow
        assert flow.statuses[-1] == (400, "invalid_grant"), flow
    assert stats["calls"]["auth"] == FLOWS, "an order was started twice (or not at all)"
    assert len(orders) == FLOWS and set(orders.values()) == set(by_pnr)

    # One replica at a time per order: collects never overlap, and each starts a poll
    # interval after the one before (the driver counts poll_after from a poll's start,
    # as BankID sees the pace; a second poller would show up as a short gap).
    per_order: dict[str, list[Collect]] = defaultdict(list)
    for c in collects:
        per_order[c.order_ref].append(c)
    assert set(per_order) == set(orders)
    for order_ref, calls in per_order.items():
        calls.sort(key=lambda c: c.start)
        for before, after in pairwise(calls):
            assert after.start >= before.end, f"order {order_ref}: {before} and {after} overlap"
            gap = after.start - before.start
            assert gap >= 1.5, f"order {order_ref}: collects {before} and {after} crowd"
    assert stats["calls"]["collect"] == len(collects)
    used = {c.replica for c in collects}
    assert used == set(range(REPLICAS)), f"replicas that collected: {used}"

    # The killed replica's leased orders: nobody touched them until the lease ran out,
    # then another replica took over and the flow completed within two lease periods.
    # Only a collect still running at the kill left its lease behind: one that ended
    # while the clients drained off the victim was written back (rescheduled) normally.
    assert all(c.start <= killed_at + HOLD for c in collects if c.replica == victim)
    ended_before_kill = {c.order_ref for c in collects if c.replica == victim and c.end < killed_at}
    held = {o: t for o, t in held.items() if o not in ended_before_kill}
    assert held, "every held collect ended before the kill: nothing to take over"
    for order_ref, leased_at in held.items():
        later = [c for c in per_order[order_ref] if c.start > leased_at]
        assert later, f"order {order_ref} was never collected again after the kill"
        takeover = later[0]
        assert takeover.replica != victim
        # leased_at is when the proxy saw the dead replica's collect, which follows its
        # lease by a scheduling delay that grows with the machine's load; the slack
        # stays well above the poll interval, so a poller ignoring the lease (due again
        # after POLL_INTERVAL) would still fail this.
        assert takeover.start >= leased_at + LEASE - TAKEOVER_SLACK, "the lease was not respected"
        flow = by_pnr[orders[order_ref]]
        assert flow.issued_at is not None
        assert flow.issued_at - killed_at <= 2 * LEASE, f"{flow} took too long after the kill"
    assert all(f.issued_at is not None and f.issued_at - killed_at <= 2 * LEASE for f in flows)
