"""A model-based test of the flow engine over every store (issue 12).

Hypothesis drives the real ``FlowEngine``, two real ``Driver`` s (two replicas)
and the real ``Notifier`` over the memory, SQLite and Redis stores, with actors
interleaved at random: backchannel requests, token-endpoint polls and redeems
(also from stale copies), connector callbacks, connector polls whose answers
(pending, approved, denied, failed, upstream down) arrive at any moment,
notification attempts answered 2xx, 5xx, 4xx or timing out, the clock moving
(each driver's loop renews its leases as it would), expiry, a driver crashing
and its leases being taken over by the other, and a reload removing a client.

What the connector and the notification receiver do is in this file (they are
outside the gateway), so every poll and every notification is seen while it is
in flight. After every step the invariants hold:

- at most one token response per request (token endpoint and push together);
- a terminal state never changes (only approved -> issued);
- a notification is never answered 2xx twice, nor sent twice at once, unless a
  driver crashed while holding it (at-least-once then, CIBA allows a repeat);
- no request is polled by two tasks at once, ever;
- no lease reaches further than one lease period ahead (nothing leased forever),
  and once everything is answered and time has passed nothing is leased, nothing
  is due and every request is decided;
- nothing yields tokens at or past its ``expires_at``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ciba_gateway.connector import (
    Approved,
    Denied,
    Failed,
    Identity,
    LoginHint,
    Pending,
    Started,
    StartRequest,
    UpstreamUnavailable,
)
from ciba_gateway.flow.driver import Driver
from ciba_gateway.flow.engine import FlowEngine, NewRequest
from ciba_gateway.flow.model import TERMINAL, AuthRequest, Status
from ciba_gateway.flow.notify import DeliveryPolicy, Notifier
from ciba_gateway.store.base import Store
from ciba_gateway.store.memory import MemoryStore
from ciba_gateway.store.redis import RedisStore
from ciba_gateway.store.sqlite import SQLiteStore
from tests.contract.test_store_contract import REDIS_URL, FakeClock

T0 = 1_700_000_000.0
LEASE = 10.0
LIFETIME = 40
MAX_REQUESTS = 3
ENDPOINT = "https://rp.example/cb"
EXAMPLES = {"memory": 150, "sqlite": 60, "redis": 40}
"""Examples per store: the three together stay well under half a minute."""

OUTCOMES = st.sampled_from(["pending", "approved", "denied", "failed", "unavailable"])
ANSWERS = st.sampled_from([200, 503, 400, "timeout"])


class ScriptedConnector:
    """An upstream whose every poll waits until the test answers it."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.active: Counter[str] = Counter()
        self.overlaps: list[str] = []

    async def start(self, request: StartRequest) -> Started:
        return Started(session={"ref": request.ref}, poll_after=0.0)

    async def poll(self, session: dict[str, Any]) -> Any:
        ref = session["ref"]
        self.active[ref] += 1
        if self.active[ref] > 1:
            self.overlaps.append(ref)
        future = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        try:
            return await future
        finally:
            self.active[ref] -= 1
            if self.waiting.get(ref) is future:
                del self.waiting[ref]

    async def cancel(self, session: dict[str, Any]) -> None:
        """Nothing upstream to stop."""


class Receiver:
    """The clients' notification endpoints: every POST waits until the test answers it."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[int | str]] = {}
        self.active: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.accepted: Counter[str] = Counter()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        ref = msgspec.json.decode(request.content)["auth_req_id"]
        self.active[ref] += 1
        if self.active[ref] > 1:
            self.overlaps.append(ref)
        future = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        try:
            answer = await future
        finally:
            self.active[ref] -= 1
            if self.waiting.get(ref) is future:
                del self.waiting[ref]
        if answer == "timeout":
            raise httpx.ReadTimeout("the client did not answer", request=request)
        assert isinstance(answer, int)
        if 200 <= answer < 300:
            self.accepted[ref] += 1
        return httpx.Response(answer)


def _stores(kind: str, tmp: Path, clock: FakeClock, prefix: str) -> tuple[Store, Store]:
    """Two store handles on one backend, as two replicas would have."""
    if kind == "memory":
        shared = MemoryStore(clock=clock)
        return shared, shared
    if kind == "sqlite":
        path = str(tmp / f"{prefix}.db")
        return SQLiteStore(path, clock=clock), SQLiteStore(path, clock=clock)
    return (
        RedisStore(REDIS_URL, prefix=prefix, clock=clock),
        RedisStore(REDIS_URL, prefix=prefix, clock=clock),
    )


class FlowMachine(RuleBasedStateMachine):
    """Replicas A and B share a store; clients and upstream act in between."""

    kind = "memory"
    tmp = Path("/tmp")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock(T0)
        self.prefix = f"model-{secrets.token_hex(6)}:"
        self.connector = ScriptedConnector()
        self.receiver = Receiver()
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self.receiver))
        self.removed: set[str] = set()
        self.stores = _stores(self.kind, self.tmp, self.clock, self.prefix)
        self.engines = [FlowEngine(store, clock=self.clock) for store in self.stores]
        self.drivers = [self._driver(0, "A-0"), self._driver(1, "B-0")]
        self.ids: list[str] = []
        self.seen: dict[str, Status] = {}
        self.copies: dict[str, AuthRequest] = {}
        self.tokens: Counter[str] = Counter()
        self.late_tokens: list[str] = []
        self.crashed_holding: set[str] = set()
        self.restarts = 0
        for store in dict.fromkeys(self.stores):
            self._run(store.open())

    # --- plumbing ---------------------------------------------------------------

    def _driver(self, replica: int, owner: str) -> Driver:
        notifier = Notifier(
            self.http,
            endpoint_for=lambda r: None if r.client_id in self.removed else ENDPOINT,
            build_push=self._build_push,
            open_push=_open_push,
            policy=DeliveryPolicy(timeout=2.0, max_attempts=3, initial_wait=1.0, max_wait=4.0),
        )
        return Driver(
            self.engines[replica],
            lambda tenant, name: self.connector,
            lease_seconds=LEASE,
            tick=0.5,
            owner=owner,
            notifier=notifier,
        )

    async def _build_push(self, request: AuthRequest) -> bytes:
        if request.client_id in self.removed:
            raise LookupError("the client is no longer configured")
        self._count_tokens(request.auth_req_id)
        return msgspec.json.encode({"auth_req_id": request.auth_req_id, "id_token": "t"})

    def _count_tokens(self, auth_req_id: str) -> None:
        self.tokens[auth_req_id] += 1

    def _run(self, coro: Any) -> Any:
        result = self.loop.run_until_complete(coro)
        self._quiesce()
        return result

    def _quiesce(self) -> None:
        """Let every driver task run until it waits on the test (or is done)."""

        async def settle() -> None:
            for _ in range(5000):
                if self._at_rest():
                    await asyncio.sleep(0)  # done callbacks run
                    if self._at_rest():
                        return
                await asyncio.sleep(0.001 if self.kind == "redis" else 0)
            raise AssertionError("driver tasks did not come to rest")

        self.loop.run_until_complete(settle())

    def _at_rest(self) -> bool:
        """Every live driver task is parked on an unanswered poll or POST of ours."""
        live = [t for d in self.drivers for t in d._inflight if not t.done()]
        parked = [
            f
            for f in [*self.connector.waiting.values(), *self.receiver.waiting.values()]
            if not f.done()
        ]
        return len(live) == len(parked)

    def _in_order(self, waiting: dict[str, Any]) -> list[str]:
        """Waiting ids in the order the requests were made (ids are random; the order not)."""
        return [i for i in self.ids if i in waiting]

    def _engine(self, replica: int) -> FlowEngine:
        return self.engines[replica]

    def _read(self, auth_req_id: str) -> AuthRequest | None:
        return self._run(self.engines[0].get(auth_req_id))

    # --- actors -----------------------------------------------------------------

    @initialize()
    def first_request(self) -> None:
        self.begin(mode="ping", client=0)

    @precondition(lambda self: len(self.ids) < MAX_REQUESTS)
    @rule(mode=st.sampled_from(["poll", "ping", "push"]), client=st.integers(0, 1))
    def begin(self, mode: str, client: int) -> None:
        new = NewRequest(
            tenant_id="t",
            client_id=f"c{client}",
            client_name="C",
            login_hint=LoginHint(kind="ssn", value="199001011239", country="SE"),
            scope=("openid",),
            connector="x",
            expires_in=LIFETIME,
            interval=1,
            delivery_mode=mode,
            client_notification_token=None if mode == "poll" else "notify-token",
        )
        request = self._run(self.engines[0].begin(new, self.connector))  # type: ignore[arg-type]
        self.ids.append(request.auth_req_id)
        self.copies[request.auth_req_id] = request

    @rule(data=st.data(), replica=st.integers(0, 1), stale=st.booleans())
    def token_call(self, data: st.DataObject, replica: int, stale: bool) -> None:
        """The token endpoint: pace a pending request, redeem an approved one (maybe stale)."""
        self.token_call_on(data.draw(st.sampled_from(self.ids)), replica, stale)

    def token_call_on(self, auth_req_id: str, replica: int, stale: bool) -> None:
        engine = self._engine(replica)
        current = self._read(auth_req_id)
        assert current is not None
        request = self.copies[auth_req_id] if stale else current
        self.copies[auth_req_id] = current
        if current.status is Status.PENDING:
            self._run(engine.poll(auth_req_id, current.tenant_id, current.client_id, self.clock()))
        won = self._run(engine.redeem(request))
        if won is not None:
            self._count_tokens(auth_req_id)
            if self.clock() >= won.expires_at:
                self.late_tokens.append(auth_req_id)

    @rule(data=st.data())
    def callback(self, data: st.DataObject) -> None:
        """The upstream calls back with an approval (a connector's route resolving it)."""
        auth_req_id = data.draw(st.sampled_from(self.ids))
        approved = Approved(identity=_identity())
        self._run(self.engines[1].settle_by_id(auth_req_id, approved, tenant_id="t"))

    @rule(replica=st.integers(0, 1))
    def driver_tick(self, replica: int) -> None:
        """One turn of a driver's loop: lease what is due and start working on it."""
        driver = self.drivers[replica]
        self._run(driver.run_once())
        self._run(driver.renew_leases())

    @precondition(lambda self: self.connector.waiting)
    @rule(data=st.data(), outcome=OUTCOMES)
    def upstream_answers(self, data: st.DataObject, outcome: str) -> None:
        ref = data.draw(st.sampled_from(self._in_order(self.connector.waiting)))
        future = self.connector.waiting[ref]
        if outcome == "unavailable":
            future.set_exception(UpstreamUnavailable("down"))
        else:
            future.set_result(_outcome(outcome))
        self._quiesce()

    @precondition(lambda self: self.receiver.waiting)
    @rule(data=st.data(), answer=ANSWERS, redeem_first=st.booleans())
    def client_answers(self, data: st.DataObject, answer: int | str, redeem_first: bool) -> None:
        """A client answers a notification; a ping client may call /token before it answers."""
        ref = data.draw(st.sampled_from(self._in_order(self.receiver.waiting)))
        if redeem_first:
            self.token_call_on(ref, replica=data.draw(st.integers(0, 1)), stale=False)
        if ref in self.receiver.waiting:
            self.receiver.waiting[ref].set_result(answer)
        self._quiesce()

    @rule(seconds=st.floats(0.1, LEASE / 3))
    def time_passes(self, seconds: float) -> None:
        """The clock moves; both drivers' loops renew the leases of their work."""
        self.clock.advance(seconds)
        for driver in self.drivers:
            self._run(driver.renew_leases())

    @precondition(lambda self: any(d._work for d in self.drivers))
    @rule(replica=st.integers(0, 1))
    def driver_crashes(self, replica: int) -> None:
        """A replica dies holding its leases; it restarts with a new owner id."""
        driver = self.drivers[replica]
        self.crashed_holding |= set(driver._work)
        for task in list(driver._inflight):
            task.cancel()
        self._quiesce()
        self.restarts += 1
        self.drivers[replica] = self._driver(replica, f"{'AB'[replica]}-{self.restarts}")

    @precondition(lambda self: not self.removed)
    @rule(client=st.integers(0, 1))
    def reload_removes_client(self, client: int) -> None:
        self.removed.add(f"c{client}")

    # --- invariants ---------------------------------------------------------------

    @invariant()
    def states_and_leases(self) -> None:
        now = self.clock()
        for auth_req_id in self.ids:
            request = self._read(auth_req_id)
            assert request is not None
            before = self.seen.get(auth_req_id)
            if before is not None and before in TERMINAL and request.status is not before:
                assert (before, request.status) == (Status.APPROVED, Status.ISSUED), (
                    f"{auth_req_id[:6]}: {before} -> {request.status}"
                )
            self.seen[auth_req_id] = request.status
            if request.lease_owner is not None:
                assert request.lease_until is not None
                assert request.lease_until <= now + LEASE + 1.0, "a lease reaches too far"

    @invariant()
    def once_only(self) -> None:
        assert all(n == 1 for n in self.tokens.values()), f"token responses: {self.tokens}"
        assert self.late_tokens == [], "tokens past expires_at"
        assert self.connector.overlaps == [], "an order was polled by two tasks at once"
        repeats = {
            ref
            for ref, n in self.receiver.accepted.items()
            if n > 1 and ref not in self.crashed_holding
        }
        assert repeats == set(), "a notification was delivered twice"
        overlapping = set(self.receiver.overlaps) - self.crashed_holding
        assert overlapping == set(), "a notification was sent twice at once"

    def teardown(self) -> None:
        try:
            self._drain_everything()
        finally:
            for driver in self.drivers:
                for task in list(driver._inflight):
                    task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.run_until_complete(self.http.aclose())
            for store in dict.fromkeys(self.stores):
                self.loop.run_until_complete(store.close())
            self.loop.close()
            if self.kind == "redis":
                _delete_prefix(self.prefix)

    def _drain_everything(self) -> None:
        """Answer everything, let time pass: nothing may stay leased, due or pending."""
        for _ in range(40):
            for future in self.connector.waiting.values():
                if not future.done():
                    future.set_result(_outcome("approved"))
            for answer in self.receiver.waiting.values():
                if not answer.done():
                    answer.set_result(200)
            self._quiesce()
            self.clock.advance(LEASE / 2)
            for driver in self.drivers:
                self._run(driver.run_once())
                self._run(driver.renew_leases())
        self.states_and_leases()
        self.once_only()
        for auth_req_id in self.ids:
            request = self._read(auth_req_id)
            assert request is not None
            assert request.is_terminal, f"{request.status} after everything was answered"
            assert request.lease_owner is None, "left leased"
            assert request.notify_state != "due", "a notification left due"


def _open_push(request: AuthRequest) -> bytes:
    """Like the gateway's: only an issued push request carries a payload to open."""
    if request.notify_payload is None:
        raise LookupError("no sealed push payload")
    return request.notify_payload


def _identity() -> Identity:
    return Identity(scheme="se-pnr", subject="199001011239", auth_time=int(T0))


def _outcome(kind: str) -> Any:
    return {
        "pending": Pending(poll_after=0.5),
        "approved": Approved(identity=_identity()),
        "denied": Denied(reason="no"),
        "failed": Failed(reason="broken"),
    }[kind]


def _delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_flow_engine_model(kind: str, tmp_path: Path) -> None:
    """The engine keeps every invariant under interleaved actors, on each store."""
    machine = type(f"FlowMachine_{kind}", (FlowMachine,), {"kind": kind, "tmp": tmp_path})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES[kind],
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            database=None,
            # No shrinking: a failure is reported at once with its whole sequence of
            # steps, instead of minutes of shrinking each with a full drain.
            phases=[Phase.explicit, Phase.generate],
        ),
    )
