"""Auto-pipelining: the store calls of one event-loop turn reach Redis as one pipeline.

A private ``redis-server`` on a spare port, so its counters see only this test:
``total_reads_processed`` counts the reads the server made from its sockets
(one per pipeline that fits its 16 KiB query buffer), ``CLIENT LIST`` the
connections the store opened. A small proxy in front of the server can drop
the reply to a batch the server has run, which is the one failure where a
resent command would run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from ciba_gateway.connector.testing import FakeClock
from ciba_gateway.errors import StoreError
from ciba_gateway.store.base import poller
from ciba_gateway.store.redis import RedisStore
from tests.contract.test_store_contract import T0, make_request
from tests.integration.test_redis_outage import RedisServer

PREFIX = "pipe:"
OWNER = poller("demo", "callcenter")


@pytest.fixture
async def admin(private_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=private_redis.port)
    yield client
    await client.aclose()


@pytest.fixture
async def store(private_redis: RedisServer) -> AsyncIterator[RedisStore]:
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    instance = RedisStore(url, prefix=PREFIX, clock=FakeClock(T0))
    await instance.open()
    await instance.put_value("ns", "warm", b"up", ttl=60)  # one connection, open
    try:
        yield instance
    finally:
        await instance.close()


async def reads(admin: aioredis.Redis) -> int:
    """The server's socket reads so far, this INFO's own included."""
    return int((await admin.info("stats"))["total_reads_processed"])


async def store_connections(admin: aioredis.Redis) -> int:
    return sum(1 for c in await admin.client_list() if c["name"] == "ciba-gateway")


async def test_concurrent_calls_in_one_turn_go_out_as_one_pipeline(
    store: RedisStore, admin: aioredis.Redis
) -> None:
    """40 calls from 40 tasks started in one turn: one connection, one read on the server."""
    before = await reads(admin)
    results = await asyncio.gather(
        *(store.put_value("ns", f"k{i}", b"v%d" % i, ttl=60) for i in range(20)),
        *(store.get_value("ns", f"k{i}") for i in range(20)),
    )
    assert await reads(admin) - before == 2  # the batch, then this INFO
    assert results == [None] * 20 + [b"v%d" % i for i in range(20)]
    assert await store_connections(admin) == 1


async def test_one_failing_command_fails_only_its_caller(
    store: RedisStore, admin: aioredis.Redis
) -> None:
    """An error reply (WRONGTYPE, from a command and from a script) fails only its caller."""
    await admin.hset(f"{PREFIX}v:2:ns:bad", "not", "a string")
    await store.incr("ns", "warm", ttl=60)  # the script loaded: no NOSCRIPT batch below
    before = await reads(admin)
    results = await asyncio.gather(
        store.put_value("ns", "a", b"1", ttl=60),
        store.get_value("ns", "bad"),
        store.incr("ns", "bad", ttl=60),
        store.get_value("ns", "a"),
        store.incr("ns", "n", ttl=60),
        return_exceptions=True,
    )
    assert await reads(admin) - before == 2  # the batch, then this INFO
    assert results[0] is None
    assert isinstance(results[1], StoreError)
    assert "WRONGTYPE" in str(results[1])
    assert isinstance(results[2], StoreError)
    assert results[3:] == [b"1", 1]


async def test_lost_scripts_are_reloaded_for_the_commands_of_a_batch(
    store: RedisStore, admin: aioredis.Redis
) -> None:
    """After SCRIPT FLUSH each EVALSHA of a batch reloads its script and runs once, in order."""
    await admin.script_flush()
    results = await asyncio.gather(
        store.remember("jti", "x", ttl=60),
        store.remember("jti", "x", ttl=60),
        store.incr("rate", "c", ttl=60),
        store.put_value("ns", "v", b"plain", ttl=60),
        store.incr("rate", "c", ttl=60),
    )
    assert results == [True, False, 1, None, 2]


class ReplyDropper:
    """A TCP proxy to Redis that, when armed, closes the client's connection instead of
    passing on the next reply: the server ran the commands, the client never hears so."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.armed = False
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        for pump in (self._pump(reader, up_writer), self._replies(up_reader, writer)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.armed:
                    self.armed = False
                    self.dropped += 1
                    break
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


@pytest.fixture
async def dropper(private_redis: RedisServer) -> AsyncIterator[ReplyDropper]:
    proxy = ReplyDropper(private_redis.port)
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_lost_replies_resend_only_what_is_safe_to_run_twice(
    dropper: ReplyDropper, admin: aioredis.Redis
) -> None:
    """The server ran a batch but its replies were lost: reads, values and the fail-safe
    writes are resent (remember then reports its own first run as seen), a token poll is
    not (a replay would pace the client for its own poll) and fails with StoreError."""
    port = await dropper.start()
    clock = FakeClock(T0)
    store = RedisStore(f"redis://127.0.0.1:{port}/0", prefix=PREFIX, clock=clock, retries=1)
    await store.open()
    try:
        request = make_request(now=T0)
        await store.create(request)
        await store.remember("warm", "scripts", ttl=60)  # loaded, so no NOSCRIPT below

        dropper.armed = True
        polled, got, first, value = await asyncio.gather(
            store.poll(request.auth_req_id, OWNER, T0 + 1, 0.5, 5),
            store.get(request.auth_req_id),
            store.remember("jti", "once", ttl=60),
            store.put_value("ns", "k", b"v", ttl=60),
            return_exceptions=True,
        )
        assert dropper.dropped == 1
        assert isinstance(polled, StoreError)
        assert got == request
        assert first is False
        assert value is None
        assert await admin.get(f"{PREFIX}v:2:ns:k") is not None

        # The poll ran once: the next one, on time, is not slowed down.
        on_time = await store.poll(request.auth_req_id, OWNER, T0 + 1 + request.interval, 0.5, 5)
        assert on_time is not None
        assert on_time[1] is None
    finally:
        await store.close()
