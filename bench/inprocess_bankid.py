"""CPU of the gateway per bc-authorize routed to BankID, in process, the simulator over HTTP.

The gateway app (benchmark config, memory store, no driver) is called through ASGI
by 64 concurrent tasks, as wrk's 64 connections would; each request makes the
connector's real ``/phone/auth`` call to the BankID simulator in a process of its
own (``lib.start_simulator``, the one ``bench/run.py``'s bc_authorize starts).
Prints the process CPU (``time.process_time``) per request for each round: the
gateway's Python thread without the server in front, which is what bounds the
bc_authorize figure. ``--local`` routes to the example connector instead (no
upstream call). A tool for optimising, not a benchmark figure.

    python bench/inprocess_bankid.py [--requests 10000] [--rounds 3] [--local]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inprocess
import lib
import uvloop

from ciba_gateway.app import create_app
from ciba_gateway.config.load import load_config
from ciba_gateway.connector import load_registry
from ciba_gateway.observability import configure_logging


async def _lifespan(app: Any, stop: asyncio.Event) -> asyncio.Task[None]:
    started = asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.create_task(app({"type": "lifespan"}, receive, send))
    await started.wait()
    return task


async def main_async(args: argparse.Namespace, report: Any) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ciba-inprocess-bankid-"))
    sim = None if args.local else lib.start_simulator(workdir)
    try:
        cfg = workdir / "gateway.yaml"
        sim_port = None if sim is None else sim.port
        cfg.write_text(
            lib.gateway_yaml(workdir, 8000, "memory://", sim_port=sim_port, bankid_poll=30)
        )
        config = load_config(cfg, registry=load_registry())
        configure_logging("json", "info")
        app = create_app(config, run_driver=False)
        stop = asyncio.Event()
        life = await _lifespan(app, stop)
        if args.local:
            body = lib.bc_body(lib.PENDING_HINT, lib.PENDING_ACR).encode()
        else:
            body = lib.bc_body(f"ssn:{lib.APPROVE_PNR}", lib.BANKID_ACR).encode()

        async def worker(n: int) -> None:
            for _ in range(n):
                status, answer = await inprocess.call(app, "/es/bc-authorize", body)
                assert status == 200, answer

        each = args.requests // args.concurrency
        await asyncio.gather(*(worker(10) for _ in range(args.concurrency)))
        for _ in range(args.rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker(each) for _ in range(args.concurrency)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            n = each * args.concurrency
            name = "local" if args.local else "bankid"
            print(f"{name}: {cpu / n * 1e6:.1f} us CPU/request, {n / wall:.0f} req/s", file=report)
        stop.set()
        await life
    finally:
        if sim is not None:
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args()
    report = sys.stdout
    sys.stdout = open(os.devnull, "w")  # the gateway's JSON log lines
    try:
        uvloop.run(main_async(args, report))
    finally:
        sys.stdout = report
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
