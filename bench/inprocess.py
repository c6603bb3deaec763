"""The app's own cost per request, without a server or a network: ASGI calls in a loop.

Builds the gateway from the benchmark config (memory store, no driver), creates
pending requests through bc-authorize, then calls ``POST /es/token`` with
``receive``/``send`` stubs, and the ceiling app the same way. Prints microseconds
per request for both; ``--endpoint bc-authorize`` measures ``POST /es/bc-authorize``
(the example connector, nothing upstream) instead. With ``--pyinstrument FILE`` writes
a text profile of the gateway loop. Times are CPU (``time.process_time``), so a busy
machine moves them less. A tool for optimising, not a benchmark figure.

    python bench/inprocess.py [--endpoint token|bc-authorize] [--requests 20000]
                              [--pyinstrument bench/profiles/x.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ceiling
import lib

from ciba_gateway.app import create_app
from ciba_gateway.config.load import load_config
from ciba_gateway.connector import load_registry
from ciba_gateway.observability import configure_logging


async def call(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One ASGI HTTP request; returns the status and the body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", lib.BASIC.encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.sleep(3600)
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], sent[1].get("body", b"")


async def measure(app: Any, paths_bodies: list[tuple[str, bytes]], n: int) -> float:
    """CPU microseconds per request of ``n`` requests, cycling through ``paths_bodies``."""
    started = time.process_time()
    for i in range(n):
        path, body = paths_bodies[i % len(paths_bodies)]
        await call(app, path, body)
    return (time.process_time() - started) / n * 1e6


async def main_async(args: argparse.Namespace, report: Any) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ciba-inprocess-"))
    cfg = workdir / "gateway.yaml"
    cfg.write_text(lib.gateway_yaml(workdir, 8000, "memory://"))
    config = load_config(cfg, registry=load_registry())
    configure_logging("json", "info")
    app = create_app(config, run_driver=False)
    bare = ceiling.create()
    startup_done = asyncio.Event()
    shutdown = asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            startup_done.set()

    life = asyncio.create_task(app({"type": "lifespan"}, receive, send))
    await startup_done.wait()
    ids = []
    for _ in range(args.ids):
        status, body = await call(
            app, "/es/bc-authorize", lib.bc_body(lib.PENDING_HINT, lib.PENDING_ACR).encode()
        )
        assert status == 200, body
        ids.append(json.loads(body)["auth_req_id"])
    polls = [("/es/token", lib.token_body(i).encode()) for i in ids]
    # The clock is real: every id is polled at most every len(ids)/rate seconds.
    status, body = await call(app, *polls[0])
    assert b"authorization_pending" in body, body
    if args.endpoint == "bc-authorize":
        polls = [("/es/bc-authorize", lib.bc_body(lib.PENDING_HINT, lib.PENDING_ACR).encode())]
    for _ in range(2):
        gw = await measure(app, polls, args.requests)
        top = await measure(bare, polls, args.requests)
        print(
            f"gateway: {gw:.1f} us/request, ceiling: {top:.1f} us/request, ratio {top / gw:.3f}",
            file=report,
        )
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="enabled")
        with profiler:
            await measure(app, polls, args.requests)
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        Path(args.pyinstrument).write_text(text)  # noqa: ASYNC240 (after the measurement)
        print(f"profile written: {args.pyinstrument}", file=report)
    shutdown.set()
    await life


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", choices=["token", "bc-authorize"], default="token")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--ids", type=int, default=20000)
    parser.add_argument("--pyinstrument")
    args = parser.parse_args()
    report = sys.stdout
    sys.stdout = open(os.devnull, "w")
    try:
        asyncio.run(main_async(args, report))
    finally:
        sys.stdout = report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
