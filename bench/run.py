"""The gateway's benchmarks (BENCHMARKS.md): ``make bench`` or ``python bench/run.py``.

Each benchmark drives a real ``ciba-gateway serve`` process (1 worker) on
loopback, with the BankID simulator in a process of its own and wrk or an
asyncio client as the load. Every figure is measured ``--runs`` times (3) and
printed as ``name: value`` with the median; the runs go to
``bench/results/latest.json``.

    python bench/run.py [--quick] [--only NAME,...] [--stores memory,sqlite,redis]
                        [--server granian|uvicorn] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lib
import pyspy

REDIS_URL = "redis://127.0.0.1:6379/0"


class Bench:
    """Settings of one invocation, the printed figures and the raw runs."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.runs = args.runs or (1 if args.quick else 3)
        self.seconds = args.seconds or (3.0 if args.quick else 10.0)
        self.scale = 0.1 if args.quick else 1.0
        self.poll_ids = 16384
        self.figures: dict[str, Any] = {}
        self.raw: dict[str, list[Any]] = {}
        self.profile = args.profile
        self.ceilings: dict[str, Ceiling] = {}

    def emit(self, name: str, runs: list[float], unit: str = "", digits: int = 1) -> float:
        """Print ``name: median`` (and the runs); returns the median."""
        value = statistics.median(runs)
        self.figures[name] = round(value, digits + 2)
        self.raw[name] = runs
        shown = ", ".join(f"{r:.{digits}f}" for r in runs)
        print(f"{name}: {value:.{digits}f}{unit}    # runs: {shown}; load {lib.load_average()}")
        sys.stdout.flush()
        return value

    def note(self, name: str, value: Any) -> None:
        self.figures[name] = value
        print(f"{name}: {value}")
        sys.stdout.flush()

    @contextmanager
    def workdir(self, name: str) -> Any:
        path = Path(tempfile.mkdtemp(prefix=f"ciba-bench-{name}-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextmanager
    def profiled(self, name: str, pid: int, seconds: float) -> Any:
        """Sample ``pid`` with py-spy while the block runs (with ``--profile``)."""
        if not self.profile:
            yield
            return
        out = lib.BENCH / "profiles" / f"{name}.txt"
        proc = pyspy.record(pid, seconds, out, f"{name} (py-spy, gateway worker)")
        try:
            yield
        finally:
            pyspy.finish(proc)
            print(f"# profile written: {out.relative_to(lib.ROOT)}")

    def store_url(self, store: str, workdir: Path) -> tuple[str, str | None]:
        if store == "memory":
            return "memory://", None
        if store == "sqlite":
            return f"sqlite:///{workdir}/gateway.db", None
        return REDIS_URL, f"bench-{os.getpid()}-{secrets.token_hex(4)}:"


# --- helpers -----------------------------------------------------------------------


def _ids_file(workdir: Path, ids: list[str]) -> Path:
    path = workdir / f"ids-{len(ids)}.txt"
    path.write_text("\n".join(ids) + "\n")
    return path


def _poll(b: Bench, port: int, ids_file: Path, tenant: str = "es", seconds: float | None = None):
    # Each wrk run starts again at the first id: the pause keeps every id's gap between
    # two polls above interval - 0.5 s, or the gateway would answer slow_down.
    time.sleep(1)
    return lib.wrk(
        port,
        "token_poll.lua",
        [str(ids_file), f"/{tenant}/token", lib.BASIC, "1"],
        seconds=seconds or b.seconds,
    )


def _redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_cleanup(prefix: str | None) -> None:
    """Delete the keys of one run (its unique prefix) from the shared Redis."""
    if not prefix:
        return
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        batch = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


# --- 2. the ceiling ------------------------------------------------------------------


class Ceiling:
    """The bare Litestar route (bench/ceiling.py) under one server, up for the whole run.

    Benchmarks that compare with it run it right before each of their own runs, so
    the ratio pairs two figures measured under the same load of the machine.
    """

    def __init__(self, b: Bench, server: str) -> None:
        self.b = b
        self.server = server
        self.dir = Path(tempfile.mkdtemp(prefix="ciba-bench-ceiling-"))
        self.port = lib.free_port()
        argv = [sys.executable, str(lib.BENCH / "ceiling.py"), "--server", server]
        self.proc = lib.start(
            "ceiling", [*argv, "--port", str(self.port)], self.port, self.dir, "/", ready=b""
        )
        self.ids = _ids_file(self.dir, [secrets.token_urlsafe(32) for _ in range(b.poll_ids)])
        self.results: list[lib.WrkResult] = []
        _poll(b, self.port, self.ids, seconds=2)

    def run(self) -> lib.WrkResult:
        result = _poll(self.b, self.port, self.ids)
        assert result.counts["pending"] == result.requests, result.counts
        self.results.append(result)
        return result

    def median(self) -> float:
        return statistics.median(r.rps for r in self.results)

    def paced_cpu(self, rate: float, seconds: float = 6.0, connections: int = 256) -> float:
        """The bare route's CPU seconds per request when asked ``rate`` requests/s.

        ``connections`` keep-alive connections each send one request, then wait
        their turn, as the flow bench's clients do: the cost of a request at a
        load that leaves the server idle between requests (``flow_cost.floor``).
        """
        return asyncio.run(_paced_cpu(self, rate, seconds, connections))

    def report(self) -> None:
        name = f"ceiling.{self.server}"
        self.b.emit(f"{name}.req_s", [r.rps for r in self.results], " req/s", 0)
        self.b.emit(f"{name}.p50_ms", [r.p50_ms for r in self.results], " ms", 2)
        self.b.emit(f"{name}.p99_ms", [r.p99_ms for r in self.results], " ms", 2)

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


async def _paced_cpu(ceiling: Ceiling, rate: float, seconds: float, connections: int) -> float:
    import httpx

    url = f"http://127.0.0.1:{ceiling.port}/es/token"
    body = lib.token_body(secrets.token_urlsafe(32))
    gap = connections / rate
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(offset: float, until: float) -> int:
            await asyncio.sleep(offset)
            sent = 0
            while time.monotonic() < until:
                started = time.monotonic()
                answer = await client.post(url, content=body, headers=_FORM)
                assert answer.status_code == 400, answer.text
                sent += 1
                await asyncio.sleep(max(0.0, gap - (time.monotonic() - started)))
            return sent

        offsets = [i * gap / connections for i in range(connections)]
        warm = time.monotonic() + 1.0
        await asyncio.gather(*(one(offset, warm) for offset in offsets))
        used = lib.tree_cpu_seconds(ceiling.proc.popen.pid)
        until = time.monotonic() + seconds
        sent = await asyncio.gather(*(one(offset, until) for offset in offsets))
        used = lib.tree_cpu_seconds(ceiling.proc.popen.pid) - used
    return used / max(1, sum(sent))


_FORM = {"content-type": "application/x-www-form-urlencoded"}


# --- 1. token_poll_pending -----------------------------------------------------------


def token_poll_pending(b: Bench, store: str, server: str, ceiling: Ceiling) -> None:
    name = f"token_poll_pending.{store}" + ("" if server == "granian" else f".{server}")
    with b.workdir("poll") as wd:
        url, prefix = b.store_url(store, wd)
        port = lib.free_port()
        gw = lib.start_gateway(wd, lib.gateway_yaml(wd, port, url, redis_prefix=prefix), server)
        try:
            ids, rate = asyncio.run(lib.create_pending(port, b.poll_ids))
            print(f"# {name}: created {len(ids)} pending requests at {rate:.0f}/s")
            path = _ids_file(wd, ids)
            _poll(b, port, path, seconds=2)
            results, ratios = [], []
            for i in range(b.runs):
                top = ceiling.run()
                with b.profiled(f"{name}", gw.worker_pid, b.seconds - 1) if i == 0 else _null():
                    results.append(_poll(b, port, path))
                ratios.append(results[-1].rps / top.rps)
            rss = lib.rss_bytes(gw.worker_pid)
        finally:
            gw.stop()
            _redis_cleanup(prefix)
    for r in results:
        if r.counts["slow_down"] or r.counts["other"] or r.counts["socket_errors"]:
            print(f"# WARNING {name}: {r.counts}")
    b.emit(f"{name}.req_s", [r.rps for r in results], " req/s", 0)
    b.emit(f"{name}.p50_ms", [r.p50_ms for r in results], " ms", 2)
    b.emit(f"{name}.p99_ms", [r.p99_ms for r in results], " ms", 2)
    b.emit(f"{name}.ratio", ratios, "", 3)
    b.note(f"{name}.worker_rss_mb", round(rss / 2**20, 1))


@contextmanager
def _null() -> Any:
    yield


# --- 3. bc_authorize -----------------------------------------------------------------


def bc_authorize(b: Bench, store: str) -> None:
    """Backchannel requests routed to BankID; each one calls the simulator's /phone/auth.

    The connector's poll_interval is 30 s and every run has a fresh gateway,
    so no collect of the driver falls inside a measured window.
    """
    name = f"bc_authorize.{store}"
    results = []
    with b.workdir("bc") as wd:
        sim = lib.start_simulator(wd)
        try:
            for i in range(b.runs):
                run_dir = wd / f"run{i}"
                run_dir.mkdir()
                url, prefix = b.store_url(store, run_dir)
                port = lib.free_port()
                config = lib.gateway_yaml(
                    run_dir, port, url, sim_port=sim.port, bankid_poll=30, redis_prefix=prefix
                )
                gw = lib.start_gateway(run_dir, config)
                body = lib.bc_body(f"ssn:{lib.APPROVE_PNR}", lib.BANKID_ACR)
                args = ["/es/bc-authorize", lib.BASIC, body]
                try:
                    lib.wrk(port, "bc_authorize.lua", args, seconds=1)
                    with b.profiled(name, gw.worker_pid, b.seconds - 1) if i == 0 else _null():
                        with lib.sampled_cpu(sim.worker_pid) as sim_cpu:
                            results.append(
                                lib.wrk(port, "bc_authorize.lua", args, seconds=b.seconds)
                            )
                finally:
                    gw.stop()
                    _redis_cleanup(prefix)
                print(f"# {name} run {i}: simulator used {sim_cpu['cores']:.2f} cores")
        finally:
            sim.stop()
    for r in results:
        if r.counts["other"] or r.counts["socket_errors"]:
            print(f"# WARNING {name}: {r.counts}")
    rps = b.emit(f"{name}.req_s", [r.counts["ok"] / r.seconds for r in results], " req/s", 0)
    b.emit(f"{name}.p50_ms", [r.p50_ms for r in results], " ms", 2)
    b.emit(f"{name}.p99_ms", [r.p99_ms for r in results], " ms", 2)
    if "granian" in b.ceilings:
        b.note(f"{name}.ratio", round(rps / b.ceilings["granian"].median(), 3))


def bc_authorize_local(b: Bench, store: str, ceiling: Ceiling) -> None:
    """Backchannel requests with no upstream: the example connector, ``poll_after`` 1 h.

    What bc-authorize costs the gateway itself (client auth, validation, one
    create in the store); each run is paired with a ceiling run right before it.
    """
    name = f"bc_authorize_local.{store}"
    results, ratios = [], []
    with b.workdir("bclocal") as wd:
        for i in range(b.runs):
            run_dir = wd / f"run{i}"
            run_dir.mkdir()
            url, prefix = b.store_url(store, run_dir)
            port = lib.free_port()
            gw = lib.start_gateway(
                run_dir, lib.gateway_yaml(run_dir, port, url, redis_prefix=prefix)
            )
            args = ["/es/bc-authorize", lib.BASIC, lib.bc_body(lib.PENDING_HINT, lib.PENDING_ACR)]
            try:
                lib.wrk(port, "bc_authorize.lua", args, seconds=1)
                top = ceiling.run()
                with b.profiled(name, gw.worker_pid, b.seconds - 1) if i == 0 else _null():
                    results.append(lib.wrk(port, "bc_authorize.lua", args, seconds=b.seconds))
                ratios.append(results[-1].counts["ok"] / results[-1].seconds / top.rps)
            finally:
                gw.stop()
                _redis_cleanup(prefix)
    for r in results:
        if r.counts["other"] or r.counts["socket_errors"]:
            print(f"# WARNING {name}: {r.counts}")
    b.emit(f"{name}.req_s", [r.counts["ok"] / r.seconds for r in results], " req/s", 0)
    b.emit(f"{name}.p50_ms", [r.p50_ms for r in results], " ms", 2)
    b.emit(f"{name}.p99_ms", [r.p99_ms for r in results], " ms", 2)
    b.emit(f"{name}.ratio", ratios, "", 3)


# --- 3b. flow_cost -------------------------------------------------------------------


def flow_cost(b: Bench, store: str, ceiling: Ceiling, rp: str = "openid-client") -> None:
    """Gateway CPU seconds per complete poll flow, times the ceiling's req/s (dimensionless).

    The flows are a real relying party's: panva's openid-client in node
    (bench/node/flows.mjs, the issue's client, 256 flows in flight) or authlib
    (``--flow-rp authlib``: bench/oidc_flows.py, 128 in flight, CPU-bound at about
    100 flows/s on a 2-core machine, so the gateway idles between requests). Either
    validates the ID token, its signature included. The connector is the ``quick``
    example: one create, one pending poll, one collect, one redeem, no upstream. The
    CPU is that of every gateway process (the server and its workers, from /proc)
    from the first request of a batch to the last answer; the client's own CPU is
    not counted.
    """
    name = f"flow_cost.{store}" if rp == "openid-client" else f"flow_cost_{rp}.{store}"
    flows = max(300, int(2000 * b.scale * b.seconds / 10))
    if rp == "openid-client":
        flows *= 2
    costs, per_flow_ms, polls, rates = [], [], [], []
    with b.workdir("flowcost") as wd:
        url, prefix = b.store_url(store, wd)
        port = lib.free_port()
        gw = lib.start_gateway(wd, lib.gateway_yaml(wd, port, url, redis_prefix=prefix))
        batch = _node_batch if rp == "openid-client" else _authlib_batch
        try:
            batch(port, 100, lambda: None)  # warm-up: connections, key caches
            for i in range(b.runs):
                top = ceiling.run()
                time.sleep(1)
                cpu: list[float] = []
                mark = functools.partial(_mark_cpu, cpu, gw.popen.pid)
                with b.profiled(name, gw.worker_pid, 5) if i == 0 else _null():
                    r = batch(port, flows, mark)
                used = lib.tree_cpu_seconds(gw.popen.pid) - cpu[0]
                if r["errors"]:
                    print(f"# WARNING {name}: {len(r['errors'])} errors, e.g. {r['errors'][:3]}")
                done = r["flows"]
                per_flow = used / max(done, 1)
                costs.append(per_flow * top.rps)
                per_flow_ms.append(per_flow * 1e3)
                polls.append(r["token_requests"] / max(done, 1))
                rates.append(done / r["seconds"])
                print(
                    f"# {name} run {i}: {done} flows in {r['seconds']:.1f} s, gateway"
                    f" {used:.2f} CPU s (client {r.get('client_cpu', 0):.2f}),"
                    f" polls/flow {polls[-1]:.2f}, ceiling {top.rps:.0f} req/s"
                )
        finally:
            gw.stop()
            _redis_cleanup(prefix)
    b.emit(f"{name}.cpu_ms_per_flow", per_flow_ms, " ms", 3)
    b.emit(f"{name}.token_polls_per_flow", polls, "", 2)
    b.emit(f"{name}.flows_s", rates, " flows/s", 0)
    b.emit(f"{name}.ratio", costs, "", 2)
    # The floor: a flow's HTTP requests (bc-authorize + polls) each costing what the
    # bare route costs at the same request rate; no app work, no driver, no store.
    per_request = statistics.median(rates) * (1 + statistics.median(polls))
    bare = ceiling.paced_cpu(per_request)
    floor = bare * (1 + statistics.median(polls)) * ceiling.median()
    print(
        f"# {name}: the bare route at {per_request:.0f} req/s costs {bare * 1e6:.0f} us CPU"
        f" per request (at saturation {1e6 / ceiling.median():.0f} us)"
    )
    b.note(f"{name}.floor", round(floor, 2))


def _mark_cpu(marks: list[float], pid: int) -> None:
    marks.append(lib.tree_cpu_seconds(pid))


def _node_batch(port: int, count: int, started: Callable[[], None]) -> dict:
    """``count`` openid-client flows, 256 in flight; ``started`` runs just before the first."""
    import node_flows

    rp = node_flows.NodeFlows(
        f"http://127.0.0.1:{port}/es", lib.CLIENT_ID, lib.CLIENT_SECRET,
        alg="ES256", hint=lib.QUICK_HINT, acr=lib.QUICK_ACR, flows=count, concurrency=256,
    )  # fmt: skip
    started()
    rp.go()
    return rp.result()


def _authlib_batch(port: int, count: int, started: Callable[[], None]) -> dict:
    """``count`` authlib flows, 128 in flight, in this process."""
    import oidc_flows

    started()
    r = asyncio.run(
        oidc_flows.run_flows(
            port, "es", lib.CLIENT_ID, lib.CLIENT_SECRET,
            hint=lib.QUICK_HINT, acr=lib.QUICK_ACR, flows=count, concurrency=128,
        )
    )  # fmt: skip
    done = len(r["polls"])
    return {**r, "flows": done, "token_requests": sum(r["polls"])}


# --- 3c. round_trips -----------------------------------------------------------------


def round_trips(b: Bench, store: str) -> None:
    """Store round trips per complete poll flow (bench/round_trips.py, counted in-process)."""
    import round_trips as trips

    steps = asyncio.run(trips.measure(store))
    for step, counter in steps:
        print(f"# round_trips.{store} {step}: {trips.show(counter)}")
    b.note(f"round_trips.{store}.per_flow", sum(sum(c.values()) for _, c in steps))


# --- 4. full_flow --------------------------------------------------------------------


async def _flows(port: int, tenant: str, workers: int, warmup: float, seconds: float) -> dict:
    """``workers`` clients each running flows back to back: bc-authorize, then a token
    poll every ``interval`` (1 s) until tokens arrive. Counts flows ending in the window."""
    http = lib.Http(port, 64)
    bc = lib.form_post(
        f"/{tenant}/bc-authorize",
        lib.bc_body(f"ssn:{lib.APPROVE_PNR}", lib.BANKID_ACR, "openid profile"),
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    window = (t0 + warmup, t0 + warmup + seconds)
    done: list[float] = []
    polls: list[int] = []
    errors: list[str] = []

    async def client() -> None:
        while loop.time() < window[1]:
            started = loop.time()
            status, body = await http.request(bc)
            if status != 200:
                errors.append(f"bc {status} {body[:120]!r}")
                await asyncio.sleep(1)
                continue
            token = lib.form_post(
                f"/{tenant}/token", lib.token_body(json.loads(body)["auth_req_id"])
            )
            n = 0
            while True:
                await asyncio.sleep(1.0)
                status, body = await http.request(token)
                n += 1
                if status == 200 and b'"id_token"' in body:
                    break
                if b"authorization_pending" not in body:
                    errors.append(f"token {status} {body[:120]!r}")
                    break
            end = loop.time()
            if window[0] <= end < window[1] and status == 200:
                done.append(end - started)
                polls.append(n)

    await asyncio.gather(*(client() for _ in range(workers)))
    await http.close()
    return {"flows": len(done), "latencies": sorted(done), "polls": polls, "errors": errors}


def full_flow(b: Bench, store: str, workers: int) -> None:
    with b.workdir("flow") as wd:
        sim = lib.start_simulator(wd)
        url, prefix = b.store_url(store, wd)
        port = lib.free_port()
        config = lib.gateway_yaml(
            wd, port, url, sim_port=sim.port, bankid_poll=1.0, redis_prefix=prefix
        )
        gw = lib.start_gateway(wd, config)
        try:
            for tenant, alg in (("es", "ES256"), ("rs", "RS256")):
                name = f"full_flow.{alg}.{store}"
                results = []
                for i in range(b.runs):
                    prof = b.profiled(name, gw.worker_pid, b.seconds) if i == 0 else _null()
                    client_cpu = time.process_time()
                    with prof, lib.sampled_cpu(gw.worker_pid) as cpu:
                        results.append(asyncio.run(_flows(port, tenant, workers, 2.0, b.seconds)))
                    client_cpu = time.process_time() - client_cpu
                    r = results[-1]
                    if r["errors"]:
                        print(
                            f"# WARNING {name}: {len(r['errors'])} errors, e.g. {r['errors'][:3]}"
                        )
                    lat = r["latencies"]
                    p50 = lat[len(lat) // 2] if lat else 0.0
                    polls = statistics.mean(r["polls"]) if r["polls"] else 0.0
                    print(
                        f"# {name} run {i}: {r['flows']} flows, latency p50 {p50:.2f} s, "
                        f"polls/flow {polls:.2f}, gateway {cpu.get('cores', 0):.2f} cores, "
                        f"load client {client_cpu:.1f} CPU s"
                    )
                    time.sleep(1)  # let the last flows' collects drain
                fps = b.emit(
                    f"{name}.flows_s", [r["flows"] / b.seconds for r in results], " flows/s", 0
                )
                b.emit(
                    f"{name}.latency_p50_s",
                    [r["latencies"][len(r["latencies"]) // 2] for r in results if r["latencies"]],
                    " s", 2,
                )  # fmt: skip
                if "granian" in b.ceilings:
                    b.note(f"{name}.ratio", round(fps / b.ceilings["granian"].median(), 3))
        finally:
            gw.stop()
            sim.stop()
            _redis_cleanup(prefix)


# --- 5 + 6. scaling_pending and pending_memory ---------------------------------------


def scaling_pending(b: Bench, store: str) -> None:
    """Token polls (the same 16k polled ids) while 1k, 10k, 100k other requests are pending."""
    steps = [int(n * b.scale) for n in (1_000, 10_000, 100_000)]
    with b.workdir("scale") as wd:
        url, prefix = b.store_url(store, wd)
        port = lib.free_port()
        gw = lib.start_gateway(wd, lib.gateway_yaml(wd, port, url, redis_prefix=prefix))
        try:
            ids, _ = asyncio.run(lib.create_pending(port, b.poll_ids))
            path = _ids_file(wd, ids)
            _poll(b, port, path, seconds=2)
            have = 0
            p99: dict[int, list[float]] = {}
            for step in steps:
                _, rate = asyncio.run(lib.create_pending(port, step - have))
                print(f"# scaling_pending.{store}: {step - have} more pending at {rate:.0f}/s")
                have = step
                results = [_poll(b, port, path) for _ in range(b.runs)]
                for r in results:
                    if r.counts["slow_down"] or r.counts["other"]:
                        print(f"# WARNING scaling_pending.{store}: {r.counts}")
                p99[step] = [r.p99_ms for r in results]
                label = _count_label(step)
                b.emit(f"scaling_pending.{store}.{label}.p99_ms", p99[step], " ms", 2)
                b.emit(
                    f"scaling_pending.{store}.{label}.req_s", [r.rps for r in results], " req/s", 0
                )
        finally:
            gw.stop()
            _redis_cleanup(prefix)
    lo, hi = steps[0], steps[-1]
    b.note(
        f"scaling_pending.{store}.p99_ratio_{_count_label(hi)}_vs_{_count_label(lo)}",
        round(statistics.median(p99[hi]) / statistics.median(p99[lo]), 3),
    )


def pending_memory(b: Bench, store: str) -> None:
    """The gateway worker's RSS growth per pending request, from 2k to 102k pending.

    The first 2k requests warm the allocator and the code paths up; the RSS is
    read a second after each batch. SQLite keeps requests in its file: its size
    per request is printed too.
    """
    count = int(100_000 * b.scale)
    per_request, per_file, rates = [], [], []
    for _ in range(b.runs):
        with b.workdir("memory") as wd:
            url, prefix = b.store_url(store, wd)
            port = lib.free_port()
            gw = lib.start_gateway(wd, lib.gateway_yaml(wd, port, url, redis_prefix=prefix))
            try:
                asyncio.run(lib.create_pending(port, 2000))
                time.sleep(1)
                before = lib.rss_bytes(gw.worker_pid)
                _, rate = asyncio.run(lib.create_pending(port, count))
                time.sleep(1)
                per_request.append((lib.rss_bytes(gw.worker_pid) - before) / count)
                rates.append(rate)
                if store == "sqlite":
                    size = sum(f.stat().st_size for f in wd.glob("gateway.db*"))
                    per_file.append(size / (count + 2000))
            finally:
                gw.stop()
                _redis_cleanup(prefix)
    b.emit(f"pending_memory.{store}.rss_bytes_per_request", per_request, " B", 0)
    if per_file:
        b.emit(f"pending_memory.{store}.db_file_bytes_per_request", per_file, " B", 0)
    b.emit(f"pending_memory.{store}.created_per_s", rates, " /s", 0)


def _count_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# --- 7. driver_scale -----------------------------------------------------------------


def driver_scale(b: Bench, store: str) -> None:
    """10k pending BankID orders: the interval between two collects of one order, and CPU."""
    count = int(10_000 * b.scale)
    with b.workdir("driver") as wd:
        sim = lib.start_simulator(wd, record=True)
        url, prefix = b.store_url(store, wd)
        port = lib.free_port()
        config = lib.gateway_yaml(
            wd, port, url, sim_port=sim.port, bankid_poll=2.0, redis_prefix=prefix
        )
        gw = lib.start_gateway(wd, config)
        try:
            hints = [f"ssn:{lib.personal_number(i)}" for i in range(count)]
            hints = [h for h in hints if h != f"ssn:{lib.APPROVE_PNR}"]
            _, rate = asyncio.run(
                lib.create_pending(port, len(hints), hints=hints, acr=lib.BANKID_ACR)
            )
            print(f"# driver_scale.{store}: {len(hints)} BankID orders started at {rate:.0f}/s")
            time.sleep(10 if not b.quick else 4)
            p50s, p99s, cores, sim_cores, rates = [], [], [], [], []
            for i in range(b.runs):
                since = _sim_intervals(sim.port, 1e12)["now"]
                prof = (
                    b.profiled(f"driver_scale.{store}", gw.worker_pid, b.seconds * 1.5)
                    if i == 0
                    else _null()
                )
                with (
                    prof,
                    lib.sampled_cpu(gw.worker_pid) as cpu,
                    lib.sampled_cpu(sim.worker_pid) as scpu,
                ):
                    time.sleep(b.seconds * 1.5)
                data = _sim_intervals(sim.port, since)
                gaps = sorted(data["intervals"])
                p50s.append(gaps[len(gaps) // 2])
                p99s.append(gaps[int(len(gaps) * 0.99)])
                cores.append(cpu["cores"])
                sim_cores.append(scpu["cores"])
                rates.append(len(gaps) / (data["now"] - since))
        finally:
            gw.stop()
            sim.stop()
            _redis_cleanup(prefix)
    name = f"driver_scale.{store}"
    b.emit(f"{name}.collect_interval_p50_s", p50s, " s", 3)
    b.emit(f"{name}.collect_interval_p99_s", p99s, " s", 3)
    b.emit(f"{name}.collects_s", rates, " /s", 0)
    b.emit(f"{name}.gateway_cpu_cores", cores, " cores", 2)
    b.emit(f"{name}.simulator_cpu_cores", sim_cores, " cores", 2)


def _sim_intervals(port: int, since: float) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/intervals?since={since}") as r:
        return json.loads(r.read())


# --- main ----------------------------------------------------------------------------


def cpu_speed() -> float:
    """Seconds one core takes for a fixed pure-Python loop: compares machines across runs."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def machine() -> dict[str, Any]:
    model = "unknown"
    with suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    versions = {}
    for name in ("granian", "uvicorn", "uvloop", "httptools", "litestar", "msgspec", "httpx"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "packages": versions,
        "cores": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


ALL = [
    "ceiling",
    "token_poll_pending",
    "bc_authorize",
    "bc_authorize_local",
    "flow_cost",
    "round_trips",
    "full_flow",
    "scaling_pending",
    "pending_memory",
    "driver_scale",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s, 10%% of the counts")
    parser.add_argument("--only", help="comma-separated: " + ",".join(ALL))
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--flow-clients", type=int, default=4096)
    parser.add_argument(
        "--flow-rp",
        choices=["openid-client", "authlib"],
        default="openid-client",
        help="the relying party of flow_cost (node's openid-client, or authlib in process)",
    )
    parser.add_argument(
        "--no-uvicorn",
        action="store_true",
        help="skip the server comparison (ceiling and token_poll_pending under uvicorn)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy profiles to bench/profiles/")
    args = parser.parse_args()
    b = Bench(args)
    only = set(args.only.split(",")) if args.only else set(ALL)
    stores = args.stores.split(",")
    if "redis" in stores and not _redis_available():
        print("# redis: no Redis on 127.0.0.1:6379 (scripts/prepare.sh starts one): skipped")
        stores.remove("redis")
    lib.ensure_wrk()
    info = machine()
    print(f"# machine: {info['cores']} cores, {info['cpu']}, {info['ram_gib']} GiB RAM, "
          f"Python {info['python']}; {info['date']}; load {lib.load_average()}")  # fmt: skip
    print("# packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    print(f"# cpu speed: {cpu_speed():.2f} s for 10M iterations of a Python loop (lower is faster)")
    if info["packages"]["uvloop"] == "absent":
        print("# WARNING: uvloop is not installed; both servers run on asyncio's own loop")
    servers = ["granian"] if args.no_uvicorn else ["granian", "uvicorn"]
    started = time.monotonic()
    steps: list[Callable[[], None]] = []
    if "token_poll_pending" in only:
        for store in stores:
            steps.append(lambda s=store: token_poll_pending(b, s, "granian", b.ceilings["granian"]))
        if not args.no_uvicorn:
            steps.append(lambda: token_poll_pending(b, "memory", "uvicorn", b.ceilings["uvicorn"]))
    if "bc_authorize" in only:
        for store in [s for s in stores if s != "redis"]:
            steps.append(lambda s=store: bc_authorize(b, s))
    if "bc_authorize_local" in only:
        for store in stores:
            steps.append(lambda s=store: bc_authorize_local(b, s, b.ceilings["granian"]))
    if "flow_cost" in only:
        for store in stores:
            steps.append(lambda s=store: flow_cost(b, s, b.ceilings["granian"], args.flow_rp))
    if "round_trips" in only:
        for store in stores:
            steps.append(lambda s=store: round_trips(b, s))
    if "full_flow" in only:
        for store in stores:
            steps.append(lambda s=store: full_flow(b, s, args.flow_clients))
    if "scaling_pending" in only:
        for store in [s for s in stores if s != "redis"]:
            steps.append(lambda s=store: scaling_pending(b, s))
    if "pending_memory" in only:
        for store in [s for s in stores if s != "redis"]:
            steps.append(lambda s=store: pending_memory(b, s))
    if "driver_scale" in only:
        steps.append(lambda: driver_scale(b, "memory"))
    try:
        ceilinged = {"ceiling", "token_poll_pending", "bc_authorize", "full_flow"}
        if only & (ceilinged | {"bc_authorize_local", "flow_cost"}):
            for server in servers:
                b.ceilings[server] = Ceiling(b, server)
                if only.isdisjoint({"token_poll_pending", "bc_authorize_local", "flow_cost"}):
                    for _ in range(b.runs):
                        b.ceilings[server].run()
        for step in steps:
            step()
    finally:
        for ceiling in b.ceilings.values():
            if ceiling.results:
                ceiling.report()
            ceiling.stop()
    elapsed = time.monotonic() - started
    print(f"# finished in {elapsed / 60:.1f} min")
    # Only a full default run replaces latest.json, the record behind BENCHMARKS.md.
    full = not (
        b.quick or args.only or args.runs or args.seconds or args.no_uvicorn or args.profile
    )
    full = full and args.stores == "memory,sqlite,redis"
    out = lib.BENCH / "results" / ("latest.json" if full else "partial.json")
    out.parent.mkdir(exist_ok=True)
    report = {
        "machine": info,
        "args": vars(args),
        "figures": b.figures,
        "runs": b.raw,
        "minutes": round(elapsed / 60, 1),
    }
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
