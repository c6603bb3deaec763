"""CPU per upstream call of the HTTP client stacks the gateway could use (BENCHMARKS.md).

A raw asyncio server in its own process answers every POST with the same 104-byte
JSON (a BankID collect answer); this process makes ``--calls`` POSTs from
``--concurrency`` tasks over at most 100 keep-alive connections and reports its own
CPU time per call (``time.process_time``: the server's CPU is not counted), on uvloop
as in the gateway. Stacks:

- ``httpcore``: ``httpx.AsyncHTTPTransport`` (httpx's default pool), request and answer
  as httpx objects, as ``BankIDClient`` would send them through it;
- ``transport``: ``build_transport()``'s ``handle_async_request`` (what every
  ``build_client`` client uses): httpx objects over aiohttp;
- ``exchange``: ``exchange(build_transport(), ...)``, the BankID client's path: aiohttp
  without httpx's objects;
- ``aiohttp``: a bare ``aiohttp.ClientSession`` (the floor).

    .venv/bin/python bench/upstream_client.py --concurrency 64,400 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import uvloop

from ciba_gateway.connector import HttpSettings, build_transport, exchange

BODY = (
    b'{"orderRef":"131daac9-16c6-4618-beb0-365768f37288","status":"pending",'
    b'"hintCode":"outstandingTransaction"}'
)
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"date: Thu, 03 Dec 2026 13:00:00 GMT\r\nserver: bench\r\n"
    b"content-length: %d\r\n\r\n" % len(BODY) + BODY
)
REQUEST = b'{"orderRef":"131daac9-16c6-4618-beb0-365768f37288"}'
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
STACKS = ("httpcore", "transport", "exchange", "aiohttp")


async def serve(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


def _caller(
    stack: str, url: str
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """(one call, close) for ``stack``."""
    timeouts = httpx.Timeout(10.0, connect=5.0)
    if stack == "aiohttp":
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar()
        )

        async def bare() -> None:
            async with session.post(url, data=REQUEST, headers=HEADERS) as response:
                assert await response.read() == BODY

        return bare, session.close
    if stack == "exchange":
        fast = build_transport(HttpSettings())
        target = httpx.URL(url)

        async def direct() -> None:
            answer = await exchange(
                fast, "POST", target, content=REQUEST, headers=HEADERS, timeouts=timeouts
            )
            assert answer.content == BODY

        return direct, fast.aclose
    transport: httpx.AsyncBaseTransport = (
        httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100))
        if stack == "httpcore"
        else build_transport(HttpSettings())
    )
    target = httpx.URL(url)
    extensions = {"timeout": timeouts.as_dict()}

    async def via_httpx() -> None:
        request = httpx.Request(
            "POST", target, headers=HEADERS, content=REQUEST, extensions=extensions
        )
        response = await transport.handle_async_request(request)
        try:
            assert await response.aread() == BODY
        finally:
            await response.aclose()

    return via_httpx, transport.aclose


async def measure(stack: str, port: int, concurrency: int, calls: int) -> float:
    """Microseconds of this process's CPU per call (after one warm-up round)."""
    call, close = _caller(stack, f"http://127.0.0.1:{port}/rp/v6.0/collect")
    each = max(1, calls // concurrency)

    async def worker() -> None:
        for _ in range(each):
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    used = time.process_time() - started
    await close()
    return used / (each * concurrency) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="64,400")
    parser.add_argument("--calls", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(serve(args.serve))
        return 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])  # noqa: S603
    try:
        time.sleep(1.0)
        for concurrency in map(int, args.concurrency.split(",")):
            for stack in args.stacks.split(","):
                runs = [
                    uvloop.run(measure(stack, port, concurrency, args.calls))
                    for _ in range(args.runs)
                ]
                figures = ", ".join(f"{r:.0f}" for r in runs)
                median = sorted(runs)[len(runs) // 2]
                print(f"{stack:10s} concurrency {concurrency:4d}: {median:6.0f} us CPU per call"
                      f"    # runs: {figures}", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
