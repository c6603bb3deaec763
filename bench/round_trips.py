"""Store round trips per complete poll flow, on every store (``bench/run.py --only round_trips``).

One flow through the real app in-process (a fake clock, the driver driven by
hand): bc-authorize, a token poll answered ``authorization_pending``, the
connector's one collect (the example person approves at once), the token call
that redeems. What is counted per store:

- memory: calls of the store's methods (each an await on the hot path);
- SQLite: SQL statements run (``sqlite3`` trace callback: BEGIN and COMMIT count);
- Redis: commands the gateway sent (``MONITOR``; a Lua script is one round trip).

The first flow warms up (pool, scripts); the second is counted.

    python bench/round_trips.py [--stores memory,sqlite,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import secrets
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

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "trips-client-secret-0123456789"  # noqa: S105 - a throwaway bench client
CIBA = "urn:openid:params:grant-type:ciba"
STEPS = ("create", "pending poll", "collect", "redeem")
_METHODS = (
    "create", "get", "poll", "transition", "lease_due", "release_leases", "purge_expired",
    "count_pending", "remember", "put_value", "get_value", "swap_value", "take_value", "incr",
)  # fmt: skip


def config_yaml(url: str, tmp: Path, prefix: str | None) -> str:
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
        people: [{{hint: "ssn:199001011239", name: Karl Karlsson, polls: 0}}]
    routes: [{{login_hint: ssn, connector: example}}]
    clients:
      - client_id: callcenter
        auth: {{method: client_secret_basic, secret: "{SECRET}"}}
        scopes: [openid, profile, ssn]
"""


class Counting:
    """Counts the store's work per step: method calls, SQL statements or Redis commands."""

    def __init__(self, kind: str, store: Any) -> None:
        self.kind = kind
        self.store = store
        self.counts: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[Counting]:
        if self.kind == "redis":
            import redis_sizing

            async with redis_sizing.Recorder(REDIS_URL).running() as recorder:
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
    now = [time.time()]
    prefix = f"trips-{secrets.token_hex(4)}:" if kind == "redis" else None
    basic = {"Authorization": "Basic " + base64.b64encode(f"callcenter:{SECRET}".encode()).decode()}
    with tempfile.TemporaryDirectory() as tmp:
        url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/g.db", "redis": REDIS_URL}[kind]
        config = parse_config(config_yaml(url, Path(tmp), prefix), registry=load_registry())
        app = create_app(config, clock=lambda: now[0], run_driver=False)
        try:
            async with AsyncTestClient(app=app, base_url="http://gateway.local") as client:
                driver = app.state.driver
                store = app.state.gateway.engine.store
                auth_req_id = ""

                async def authorize() -> None:
                    nonlocal auth_req_id
                    response = await client.post(
                        "/bank/bc-authorize",
                        data={"scope": "openid profile", "login_hint": "ssn:199001011239"},
                        headers=basic,
                    )
                    assert response.status_code == 200, response.text
                    auth_req_id = response.json()["auth_req_id"]

                async def token(expect: int) -> None:
                    now[0] += 5
                    response = await client.post(
                        "/bank/token",
                        data={"grant_type": CIBA, "auth_req_id": auth_req_id},
                        headers=basic,
                    )
                    assert response.status_code == expect, response.text

                async def collect_once() -> None:
                    assert await driver.run_once() == 1
                    await driver.drain()

                async def collect() -> None:
                    # The app (and the store's connections) live on the test client's loop.
                    await asyncio.to_thread(client.blocking_portal.call, collect_once)

                actions = (authorize, lambda: token(400), collect, lambda: token(200))
                steps: list[tuple[str, Counter[str]]] = []
                async with Counting(kind, store).attached() as counting:
                    for _ in range(2):
                        steps = [
                            (name, await counting.step(action))
                            for name, action in zip(STEPS, actions, strict=True)
                        ]
                return steps
        finally:
            if prefix:
                import run

                run._redis_cleanup(prefix)


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
