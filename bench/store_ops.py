"""Microseconds per store call on a token poll's path, in-process, for the SQLite store.

Creates ``--pending`` requests, then times ``get`` (the request) and ``swap_value``
(its pacing state, with an expiry that follows the request's, as the token endpoint
writes it) round-robin over them, then one ``purge_expired`` over the rows (ms).
A tool for choosing between schemas and statements, not a headline figure: the
HTTP figures are ``bench/run.py``'s.

    python bench/store_ops.py [--pending 16384] [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from ciba_gateway.connector import LoginHint
from ciba_gateway.flow.model import AuthRequest
from ciba_gateway.store.sqlite import SQLiteStore


async def measure(pending: int, calls: int) -> dict[str, float]:
    """Microseconds per call of get, swap_value, and both, after ``pending`` requests exist."""
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(str(Path(directory) / "bench.db"))
        await store.open()
        try:
            now = time.time()
            ids = [f"bench-{i:06d}-{'x' * 30}" for i in range(pending)]
            hint = LoginHint(kind="email", value="pat@example.com")
            for auth_req_id in ids:
                await store.create(
                    AuthRequest(
                        auth_req_id=auth_req_id,
                        tenant_id="es",
                        client_id="client",
                        scope=("openid",),
                        login_hint=hint,
                        connector="example",
                        created_at=now,
                        expires_at=now + 3600,
                        interval=1,
                        session={"hint": "email:pat@example.com", "polls": 0},
                        next_poll_at=now + 3600,
                    )
                )

            async def get(auth_req_id: str) -> None:
                await store.get(auth_req_id)

            async def swap(auth_req_id: str) -> None:
                await store.swap_value("poll", auth_req_id, b"x" * 20, now + 3600 - time.time())

            async def both(auth_req_id: str) -> None:
                await get(auth_req_id)
                await swap(auth_req_id)

            figures = {}
            for name, call in (("get", get), ("swap_value", swap), ("get_and_swap", both)):
                started = time.perf_counter()
                for i in range(calls):
                    await call(ids[i % pending])
                figures[name] = (time.perf_counter() - started) / calls * 1e6
            # The periodic purge scans kv (no expiry index): its cost with a pacing row
            # per pending request, in milliseconds.
            started = time.perf_counter()
            await store.purge_expired(time.time())
            figures["purge_expired_ms"] = (time.perf_counter() - started) * 1e3
            return figures
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=16_384)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    for name, value in asyncio.run(measure(args.pending, args.calls)).items():
        unit = "ms" if name.endswith("_ms") else "us"
        label = name if name.endswith("_ms") else f"{name}_us"
        print(f"store_ops.sqlite.{label}: {value:.1f} {unit}")


if __name__ == "__main__":
    main()
