"""Store round trips per complete poll flow, on every store (``bench/run.py --only round_trips``).

One flow through the real app in-process (a fake clock, the driver driven by
hand): bc-authorize, a token poll answered ``authorization_pending``, the
connector's one collect (the example person approves at once), the token call
that redeems. What is counted per store:

- memory: calls of the store's methods (each an await on the hot path);
- SQLite: SQL statements run (``sqlite3`` trace callback: BEGIN and COMMIT count);
- Redis: commands the gateway sent (``MONITOR`` on a private ``redis-server``, so no
  other client's commands are counted; a Lua script is one round trip).

The first flow warms up (pool, scripts); the second is counted.

    python bench/round_trips.py [--stores memory,sqlite,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry

SECRET = "trips-client-secret-0123456789"  # noqa: S105 - a throwaway bench client
CIBA = "urn:openid:params:grant-type:ciba"
STEPS = ("create", "pending poll", "collect", "redeem")
_METHODS = (
    "create", "get", "poll", "transition", "lease_due", "release_leases", "purge_expired",
    "count_pending", "remember", "put_value", "get_value", "swap_value", "take_value", "incr",
)  # fmt: skip


def config_yaml(url: str, tmp: Path, prefix: str | None, polls: int = 0) -> str:
    """One tenant whose example person approves after ``polls`` pending collects."""
    store = f'{{url: "{url}"' + (f', prefix: "{prefix}"' if prefix else "") + "}"
    return f"""
store: {store}
tenants:
  - id: bank
    issuer: http://gateway.local/bank
    keys: [{{kid: k1, alg: ES256, file: {tmp}/k1.jwk, generate: true}}]
    subject: {{salt: "trips-subject-salt-0123456789"}}
    start_limits: {{per_client: null, per_login_hint: null}}
    lifetimes: {{auth_request: 120, poll_interval: 5}}
    connectors:
      example:
        type: example
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: {polls}}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: callcenter
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile, ssn]
"""


class Clock:
    """The app's injected clock; token calls move it on by the polling interval."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Flow:
    """The client side of one poll flow against an in-process app, step by step."""

    def __init__(self, client: AsyncTestClient[Any], clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self.driver = client.app.state.driver
        secret = base64.b64encode(f"callcenter:{SECRET}".encode()).decode()
        self.headers = {"Authorization": f"Basic {secret}"}
        self.auth_req_id = ""

    async def authorize(self) -> None:
        response = await self.client.post(
            "/bank/bc-authorize",
            data={"scope": "openid profile", "login_hint": "ssn:199001011239"},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        self.auth_req_id = response.json()["auth_req_id"]

    async def token(self, expect: int) -> None:
        self.clock.now += 5
        response = await self.client.post(
            "/bank/token",
            data={"grant_type": CIBA, "auth_req_id": self.auth_req_id},
            headers=self.headers,
        )
        assert response.status_code == expect, response.text

    async def in_app(self, work: Callable[[], Awaitable[Any]]) -> Any:
        # The app (and the store's connections) live on the test client's loop.
        return await asyncio.to_thread(self.client.blocking_portal.call, work)

    async def collect(self) -> None:
        """One driver pass that collects the flow's request."""

        async def once() -> None:
            assert await self.driver.run_once() == 1
            await self.driver.drain()

        await self.in_app(once)


class Counting:
    """Counts the store's work per step: method calls, SQL statements or Redis commands."""

    def __init__(self, kind: str, store: Any, url: str) -> None:
        self.kind = kind
        self.store = store
        self.url = url
        self.counts: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[Counting]:
        if self.kind == "redis":
            import redis_sizing

            async with redis_sizing.Recorder(self.url).running() as recorder:
                self._recorder = recorder
                yield self
            return
        if self.kind == "sqlite":
            self.store._conn.set_trace_callback(self._statement)
        for name in _METHODS:
            method = getattr(self.store, name)
            setattr(self.store, name, self._wrap(name, method))
        try:
            yield self
        finally:
            for name in _METHODS:
                delattr(self.store, name)
            if self.kind == "sqlite" and self.store._conn is not None:
                self.store._conn.set_trace_callback(None)

    def _statement(self, sql: str) -> None:
        self._sql[sql.split(None, 1)[0].upper()] += 1

    def _wrap(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            self._calls[name] += 1
            return await method(*args, **kwargs)

        return call

    async def step(self, action: Callable[[], Awaitable[Any]]) -> Counter[str]:
        """Run ``action``; the round trips it made, by name."""
        if self.kind == "redis":
            trips, _ = await self._recorder.step(action)
            return trips
        self._calls: Counter[str] = Counter()
        self._sql: Counter[str] = Counter()
        await action()
        return self._sql if self.kind == "sqlite" else self._calls


async def measure(kind: str) -> list[tuple[str, Counter[str]]]:
    """The round trips of each step of one complete poll flow on store ``kind``."""
    if kind != "redis":
        return await _measure(kind, "")
    import redis_sizing

    with redis_sizing.private_redis([]) as url:
        return await _measure(kind, url)


async def _measure(kind: str, redis_url: str) -> list[tuple[str, Counter[str]]]:
    prefix = "trips:" if kind == "redis" else None
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/g.db", "redis": redis_url}[kind]
        config = parse_config(config_yaml(url, Path(tmp), prefix), registry=load_registry())
        app = create_app(config, clock=clock, run_driver=False)
        async with AsyncTestClient(app=app, base_url="http://gateway.local") as client:
            flow = Flow(client, clock)
            actions = (
                flow.authorize,
                lambda: flow.token(400),
                flow.collect,
                lambda: flow.token(200),
            )
            store = app.state.gateway.engine.store
            steps: list[tuple[str, Counter[str]]] = []
            async with Counting(kind, store, redis_url).attached() as counting:
                for _ in range(2):
                    steps = [
                        (name, await counting.step(action))
                        for name, action in zip(STEPS, actions, strict=True)
                    ]
            return steps


def show(counter: Counter[str]) -> str:
    total = sum(counter.values())
    detail = ", ".join(f"{name} {n}" for name, n in sorted(counter.items()))
    return f"{total} ({detail})" if total else "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stores", default="memory,sqlite,redis")
    args = parser.parse_args()
    for kind in args.stores.split(","):
        steps = asyncio.run(measure(kind))
        for name, counter in steps:
            print(f"round_trips.{kind}.{name.replace(' ', '_')}: {show(counter)}")
        print(f"round_trips.{kind}.per_flow: {sum(sum(c.values()) for _, c in steps)}")


if __name__ == "__main__":
    main()
