"""Shared pieces of the benchmarks: configs, processes, a raw HTTP/1.1 client, wrk, /proc.

Everything runs on loopback: the gateway as a real ``ciba-gateway serve``
process, the BankID simulator in a process of its own, wrk or the asyncio
client below as the load.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
CIBA = str(VENV_BIN / "ciba-gateway")
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789"  # noqa: S105 (a benchmark client)
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
PENDING_HINT = "email:pending@example.com"
APPROVE_PNR = "199001011239"
PENDING_ACR = "urn:bench:pending"
QUICK_HINT = "email:quick@example.com"
QUICK_ACR = "urn:bench:quick"
"""A person the ``quick`` example connector approves at its first collect, 0.5 s in."""
BANKID_ACR = "urn:grn:authn:se:bankid"
CIBA_GRANT = "urn%3Aopenid%3Aparams%3Agrant-type%3Aciba"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def personal_number(i: int) -> str:
    """The i-th valid Swedish personal number (date 1930-1999, Luhn check digit)."""
    day = i % 28 + 1
    month = (i // 28) % 12 + 1
    year = 1930 + (i // 336) % 70
    serial = (i // 23520) % 1000
    nine = f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}"
    total = 0
    for pos, ch in enumerate(nine):
        d = int(ch) * (2 if pos % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return f"{year // 100}{nine}{(10 - total % 10) % 10}"


# --- configs ------------------------------------------------------------------


def gateway_yaml(
    workdir: Path,
    port: int,
    store_url: str,
    *,
    sim_port: int | None = None,
    bankid_poll: float = 2.0,
    redis_prefix: str | None = None,
) -> str:
    """Two tenants (``es``: ES256, ``rs``: RS256) with the example and bankid connectors.

    The example connector's one person stays pending and asks for no polling
    (``poll_after`` one hour), so its requests load nothing but the store. The
    ``quick`` one approves at its first collect, half a second after the start
    (``flow_cost``: one create, one pending poll, one collect, one redeem).
    """
    store = f'{{url: "{store_url}"'
    if redis_prefix:
        store += f', prefix: "{redis_prefix}"'
    store += "}"
    bankid = ""
    if sim_port is not None:
        bankid = f"""
      bankid:
        type: bankid
        base_url: "http://127.0.0.1:{sim_port}/rp/v6.0"
        call_initiator: RP
        poll_interval: {bankid_poll}
        http: {{max_connections: 64}}"""
    tenants = []
    for tid, alg in (("es", "ES256"), ("rs", "RS256")):
        tenants.append(
            f"""
  - id: {tid}
    issuer: http://127.0.0.1:{port}/{tid}
    keys: [{{kid: {tid}-1, alg: {alg}, file: {workdir}/keys/{tid}-1.jwk, generate: true}}]
    subject: {{salt: "bench-subject-salt-0123456789"}}
    start_limits: {{per_client: null, per_login_hint: null}}  # a load test is the abuse
    lifetimes: {{auth_request: 3600, auth_request_max: 3600, id_token: 300, access_token: 600,
                poll_interval: 1}}
    connectors:
      example:
        type: example
        poll_after: 3600
        people: [{{hint: "{PENDING_HINT}", name: Pat Pending, outcome: pending}}]
      quick:
        type: example
        poll_after: 0.5
        people: [{{hint: "{QUICK_HINT}", name: Quinn Quick, polls: 0}}]{bankid}
    routes:
      - {{acr: "{PENDING_ACR}", connector: example}}
      - {{acr: "{QUICK_ACR}", connector: quick}}"""
            + (
                f"""
      - {{acr: "{BANKID_ACR}", connector: bankid}}"""
                if bankid
                else ""
            )
            + f"""
    clients:
      - client_id: {CLIENT_ID}
        auth: {{method: client_secret_basic, secret: "{CLIENT_SECRET}"}}
        scopes: [openid, profile, email, ssn]"""
        )
    return f"""server: {{host: 127.0.0.1, port: {port}}}
store: {store}
logging: {{format: json, level: info}}
tenants:{"".join(tenants)}
"""


def simulator_yaml(
    workdir: Path, *, complete_retention: float = 10.0, start_timeout: float = 3600.0
) -> str:
    """The BankID simulator's settings: one persona approving at once; others have no BankID.

    A number without a persona stays ``outstandingTransaction`` until
    ``start_timeout``: the driver_scale benchmark's long-pending orders.
    """
    return f"""simulators:
  - type: bankid
    mount: /_sim/bankid
    settings:
      start_timeout: {start_timeout}
      order_lifetime: {start_timeout}
      complete_retention: {complete_retention}
      personas:
        - {{personal_number: "{APPROVE_PNR}", given_name: Karl, surname: Karlsson,
           outcome: approve, delay: 0}}
tenants:  # unused; the file must be a valid gateway config
  - id: unused
    issuer: http://127.0.0.1:1/unused
    keys: [{{kid: unused, file: {workdir}/keys/unused.jwk, generate: true}}]
    subject: {{salt: "unused-salt-0123456789"}}
"""


# --- processes ----------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(c) for c in fh.read().split()]
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every live descendant (a server's workers)."""
    total = 0.0
    for each in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):
            total += cpu_seconds(each)
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def load_average() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


@dataclass
class Proc:
    """A started child process (its own process group, so stopping it stops its workers)."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    worker_pid: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def start(
    name: str,
    argv: Sequence[str],
    port: int,
    workdir: Path,
    ready_path: str,
    *,
    ready: bytes = b"2",
) -> Proc:
    """Start ``argv`` and wait until ``GET ready_path`` on ``port`` answers ``ready``+ status."""
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(  # noqa: S603
            list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )
    proc = Proc(name, popen, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited {popen.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {ready_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 " + ready):
                    break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        proc.stop()
        raise RuntimeError(f"{name} did not become ready: {log.read_text()[-2000:]}")
    kids = descendants(popen.pid)
    # granian serves from a worker child; uvicorn with one worker serves in-process.
    proc.worker_pid = kids[-1] if kids else popen.pid
    return proc


def start_gateway(workdir: Path, config: str, server: str = "granian") -> Proc:
    path = workdir / "gateway.yaml"
    path.write_text(config)
    port = int(re.search(r"port: (\d+)", config).group(1))  # type: ignore[union-attr]
    argv = [CIBA, "serve", "--config", str(path), "--server", server]
    return start("gateway", argv, port, workdir, "/readyz")


def start_simulator(workdir: Path, *, record: bool = False, **settings: float) -> Proc:
    """The BankID simulator in its own process (``ciba-gateway simulate bankid``).

    ``record``: the same simulator behind bench/sim_recorder.py, which also
    keeps the time of every collect per order (driver_scale).
    """
    path = workdir / "simulator.yaml"
    path.write_text(simulator_yaml(workdir, **settings))
    port = free_port()
    if record:
        argv = [sys.executable, str(BENCH / "sim_recorder.py"), "--port", str(port), str(path)]
    else:
        argv = [CIBA, "simulate", "bankid", "--port", str(port), "--config", str(path)]
    return start("simulator", argv, port, workdir, "/control/stats")


# --- a small HTTP/1.1 client -----------------------------------------------------


class Http:
    """Keep-alive HTTP/1.1 connections to one host, shared by many tasks (a pool)."""

    def __init__(self, port: int, size: int = 64) -> None:
        self.port = port
        self.size = size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._opened = 0

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            return await asyncio.open_connection("127.0.0.1", self.port)
        return await self._idle.get()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        conn = await self._conn()
        reader, writer = conn
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if match is None:
                raise RuntimeError(f"no content-length: {head!r}")
            body = await reader.readexactly(int(match.group(1)))
        except BaseException:
            writer.close()
            self._opened -= 1
            raise
        self._idle.put_nowait(conn)
        return status, body

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()


def form_post(path: str, body: str, auth: str = BASIC) -> bytes:
    data = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def bc_body(hint: str, acr: str, scope: str = "openid") -> str:
    return f"scope={scope}&login_hint={hint}&acr_values={acr}"


def token_body(auth_req_id: str) -> str:
    return f"grant_type={CIBA_GRANT}&auth_req_id={auth_req_id}"


async def create_pending(
    port: int,
    count: int,
    *,
    tenant: str = "es",
    hints: Sequence[str] | None = None,
    acr: str = PENDING_ACR,
    connections: int = 64,
) -> tuple[list[str], float]:
    """``count`` bc-authorize calls, ``connections`` at a time; returns the ids and the rate/s."""
    http = Http(port, connections)
    ids: list[str] = []
    raws = (
        [form_post(f"/{tenant}/bc-authorize", bc_body(PENDING_HINT, acr))]
        if hints is None
        else None
    )
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            raw = raws[0] if raws else form_post(f"/{tenant}/bc-authorize", bc_body(hints[i], acr))  # type: ignore[index]
            status, body = await http.request(raw)
            if status != 200:
                raise RuntimeError(f"bc-authorize answered {status}: {body[:300]!r}")
            ids.append(json.loads(body)["auth_req_id"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    rate = count / (time.perf_counter() - started)
    await http.close()
    return ids, rate


# --- wrk ------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package (as root, or with sudo) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)  # noqa: S603
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed")
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    counts: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk(
    port: int,
    script: str,
    args: Sequence[str],
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 1,
) -> WrkResult:
    """Run wrk with one of bench/lua/*.lua; the script prints a RESULT line."""
    cmd = [
        ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
        "-s", str(BENCH / "lua" / script), f"http://127.0.0.1:{port}", "--", *args,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout  # noqa: S603
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}")
    values = dict(item.split("=", 1) for item in line.split()[1:])
    ints = {k: int(v) for k, v in values.items()}
    return WrkResult(
        requests=ints.pop("requests"),
        seconds=ints.pop("duration_us") / 1e6,
        p50_ms=ints.pop("p50_us") / 1000,
        p99_ms=ints.pop("p99_us") / 1000,
        counts=ints,
    )


@contextlib.contextmanager
def sampled_cpu(pid: int) -> Iterator[dict[str, float]]:
    """Cores used by ``pid`` while the block runs (CPU seconds / wall seconds)."""
    result: dict[str, float] = {}
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    yield result
    result["cores"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
