"""Measure what the Redis store costs: keys and bytes per pending request, commands per flow.

Usage::

    .venv/bin/python bench/redis_sizing.py [--requests 10000] [--url redis://host:port/db]

Without ``--url`` it starts a private ``redis-server`` on a spare port, so the
numbers contain nothing but this script's work. Two measurements:

1. Memory: ``--requests`` BankID-shaped pending requests are created through
   ``RedisStore.create``, each polled once by its client (the pacing fields the
   token endpoint keeps in the request hash); reported are the keys and
   ``used_memory`` bytes they add, divided by the count, plus ``MEMORY USAGE``
   of one request hash.
2. Commands: one complete poll-mode flow runs through the real app (example
   connector, the driver driven by hand) while ``MONITOR`` records every
   command; each step is reported as client round trips and as the commands
   the Lua scripts ran inside Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import round_trips
from litestar.testing import AsyncTestClient

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import LoginHint, load_registry
from ciba_gateway.flow.model import AuthRequest
from ciba_gateway.store.base import poller
from ciba_gateway.store.redis import RedisStore

POLLS = 4
"""Connector polls that answer pending before the example person approves."""
OWNER = poller("bank", "callcenter")


# --- a private Redis ------------------------------------------------------------------


@contextlib.contextmanager
def private_redis(server_args: list[str]) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (run scripts/prepare.sh) or pass --url")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        *server_args,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- 1. memory ------------------------------------------------------------------------


def bankid_request(now: float) -> AuthRequest:
    """What bc-authorize stores for a BankID order (lengths as in production)."""
    return AuthRequest(
        auth_req_id=secrets.token_urlsafe(32),
        tenant_id="bank",
        client_id="callcenter",
        scope=("openid", "profile", "ssn"),
        login_hint=LoginHint(kind="ssn", value="199001011239", country="SE"),
        connector="bankid",
        created_at=now,
        expires_at=now + 120,
        interval=5,
        acr_values=("urn:grn:authn:se:bankid",),
        route_acr="urn:grn:authn:se:bankid",
        binding_message="Call 4711",
        session={"orderRef": str(uuid.uuid4())},
        next_poll_at=now + 2,
    )


async def measure_memory(url: str, count: int) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    prefix = f"sizing-{secrets.token_hex(4)}:"
    store = RedisStore(url, prefix=prefix)
    await store.open()
    try:
        keys_before = await client.dbsize()
        memory_before = (await client.info("memory"))["used_memory"]
        now = time.time()
        for start in range(0, count, 500):
            batch = [bankid_request(now) for _ in range(min(500, count - start))]
            await asyncio.gather(*(store.create(r) for r in batch))
            await asyncio.gather(*(store.poll(r.auth_req_id, OWNER, now, 0.5, 5) for r in batch))
        keys_after = await client.dbsize()
        memory_after = (await client.info("memory"))["used_memory"]
        sample = bankid_request(now)
        await store.create(sample)
        await store.poll(sample.auth_req_id, OWNER, now, 0.5, 5)
        hash_bytes = await client.memory_usage(f"{prefix}{{req}}:r:{sample.auth_req_id}")
        return {
            "requests": count,
            "keys_per_request": (keys_after - keys_before) / count,
            "bytes_per_request": (memory_after - memory_before) / count,
            "request_hash_bytes": hash_bytes or 0,
        }
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=5000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await store.close()
        await client.aclose()


# --- 2. commands per flow -----------------------------------------------------------------


class Recorder:
    """MONITOR on its own connection; ``step`` returns the commands one step sent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = aioredis.Redis.from_url(url)
        self.lines: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Recorder]:
        monitor = self.client.monitor()
        async with monitor as m:
            self._task = asyncio.create_task(self._listen(m))
            try:
                yield self
            finally:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.client.aclose()

    async def _sync(self) -> str:
        """Send a marker and wait until MONITOR has shown it (and so everything before it)."""
        marker = secrets.token_hex(8)
        await self.client.echo(marker)
        while not any(marker in line["command"] for line in self.lines):
            self._arrived.clear()
            await self._arrived.wait()
        return marker

    async def _listen(self, monitor: Any) -> None:
        async for line in monitor.listen():
            self.lines.append(line)
            self._arrived.set()

    async def step(self, action: Callable[[], Awaitable[Any]]) -> tuple[Counter[str], Counter[str]]:
        """Run ``action``; return (client round trips, commands run inside scripts) by name."""
        await self._sync()
        self.lines = []
        await action()
        marker = await self._sync()
        lines, self.lines = self.lines, []
        round_trips: Counter[str] = Counter()
        scripted: Counter[str] = Counter()
        for line in lines:
            command = line["command"]
            if marker in command:
                continue
            name = command.split(" ", 1)[0].upper()
            if line.get("client_type") == "lua":
                scripted[name] += 1
            else:
                round_trips[name] += 1
        return round_trips, scripted


KINDS = {
    "{req}:r:": "request hash (issued; kept for store.retention)",
    "v:7:at:bank:": "access token claims (lifetimes.access_token)",
    "v:13:sub_hint:bank:": "id_token_hint subject (lifetimes.id_token_hint)",
}


async def key_sizes(url: str, prefix: str) -> dict[str, int]:
    """MEMORY USAGE of the keys a finished flow leaves, by kind."""
    client = aioredis.Redis.from_url(url)
    sizes: dict[str, int] = {}
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            kind = next((k for k in KINDS if key.decode().startswith(prefix + k)), None)
            if kind is not None:
                sizes[KINDS[kind]] = await client.memory_usage(key) or 0
    finally:
        await client.aclose()
    return sizes


async def measure_flow(
    url: str,
) -> tuple[list[tuple[str, Counter[str], Counter[str]]], dict[str, int]]:
    steps: list[tuple[str, Counter[str], Counter[str]]] = []
    clock = round_trips.Clock()
    prefix = f"flow-{secrets.token_hex(4)}:"
    with tempfile.TemporaryDirectory() as tmp:
        yaml = round_trips.config_yaml(url, Path(tmp), prefix, polls=POLLS)
        app = create_app(
            parse_config(yaml, registry=load_registry()), clock=clock, run_driver=False
        )
        async with (
            AsyncTestClient(app=app, base_url="http://gateway.local") as client,
            Recorder(url).running() as recorder,
        ):
            flow = round_trips.Flow(client, clock)
            # The first flow warms the pool and loads the scripts; the second is measured.
            for _ in range(2):
                steps = [("bc-authorize", *await recorder.step(flow.authorize))]
                steps.append(("token poll, pending", *await recorder.step(lambda: flow.token(400))))
                for _ in range(POLLS):
                    steps.append(("driver poll, still pending", *await recorder.step(flow.collect)))
                steps.append(("driver poll, approved", *await recorder.step(flow.collect)))
                steps.append(
                    ("token, tokens issued", *await recorder.step(lambda: flow.token(200)))
                )
            idle = await recorder.step(lambda: flow.in_app(flow.driver.run_once))
            steps.append(("driver tick, nothing due (per replica)", *idle))
            sizes = await key_sizes(url, prefix)
    return steps, sizes


def show(counter: Counter[str]) -> str:
    total = sum(counter.values())
    detail = ", ".join(f"{name} {n}" for name, n in sorted(counter.items()))
    return f"{total} ({detail})" if total else "0"


async def main(url: str | None, count: int, listpack_value: int | None) -> None:
    with contextlib.ExitStack() as stack:
        server_args = (
            [] if listpack_value is None else ["--hash-max-listpack-value", str(listpack_value)]
        )
        target = url or stack.enter_context(private_redis(server_args))
        server = aioredis.Redis.from_url(target)
        version = (await server.info("server"))["redis_version"]
        listpack = (await server.config_get("hash-max-listpack-value"))["hash-max-listpack-value"]
        await server.aclose()
        print(
            f"Redis {version} at {target.rsplit('@', 1)[-1]}, hash-max-listpack-value {listpack}\n"
        )

        memory = await measure_memory(target, count)
        print(f"{memory['requests']} pending BankID requests (each polled once):")
        print(f"  keys per pending request:       {memory['keys_per_request']:.2f}")
        print(f"  used_memory per pending request: {memory['bytes_per_request']:.0f} bytes")
        print(f"  MEMORY USAGE of one request hash: {memory['request_hash_bytes']} bytes\n")

        print("Commands per step of one poll-mode flow (round trips | run inside scripts):")
        steps, sizes = await measure_flow(target)
        seen: set[str] = set()
        flow_trips: Counter[str] = Counter()
        flow_scripted: Counter[str] = Counter()
        for name, round_trips, scripted in steps:
            if not name.startswith("driver tick"):
                flow_trips += round_trips
                flow_scripted += scripted
            if name not in seen:
                seen.add(name)
                print(f"  {name:40} {show(round_trips)} | {show(scripted)}")
        print(
            f"\nThe whole flow ({POLLS + 1} connector polls, 2 token calls):"
            f" {sum(flow_trips.values())} round trips, {sum(flow_scripted.values())}"
            " commands inside scripts."
        )
        print("\nWhat a finished flow leaves behind (MEMORY USAGE):")
        for kind, size in sizes.items():
            print(f"  {kind:52} {size} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", help="an existing Redis (default: start a private one)")
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument(
        "--hash-max-listpack-value",
        type=int,
        help="start the private Redis with this hash-max-listpack-value (default: Redis's 64)",
    )
    args = parser.parse_args()
    if args.url and args.hash_max_listpack_value is not None:
        parser.error("--hash-max-listpack-value configures the private Redis: not with --url")
    asyncio.run(main(args.url, args.requests, args.hash_max_listpack_value))
