"""The BankID simulator of ``ciba-gateway simulate bankid``, recording when each order is collected.

An ASGI wrapper notes the time of every ``/rp/v6.0/collect`` per orderRef;
``GET /bench/intervals?since=T`` answers the gaps between successive collects
of the same order that ended after monotonic time T. Served by uvicorn exactly
as ``simulate`` serves the plain simulator.

    python bench/sim_recorder.py --port N simulator.yaml
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import defaultdict
from typing import Any

import uvicorn

from ciba_gateway.config.load import load_config
from ciba_gateway.connector import load_registry


def recording(inner: Any) -> Any:
    """Wrap the simulator app; collect times are kept per orderRef."""
    times: dict[str, list[float]] = defaultdict(list)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/rp/v6.0/collect":
            if scope["type"] == "http" and scope["path"] == "/bench/intervals":
                await _intervals(scope, send, times)
                return
            await inner(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        ref = json.loads(body).get("orderRef", "")
        times[ref].append(time.monotonic())
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await inner(scope, replay, send)

    return app


async def _intervals(scope: dict[str, Any], send: Any, times: dict[str, list[float]]) -> None:
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    since = float(query.get("since", "0"))
    gaps = [b - a for ts in times.values() for a, b in itertools.pairwise(ts) if b >= since]
    payload = json.dumps(
        {"now": time.monotonic(), "orders": len(times), "intervals": gaps}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("config")
    args = parser.parse_args()
    registry = load_registry()
    config = load_config(args.config, registry=registry)
    settings = next(dict(s.settings) for s in config.simulators if s.type == "bankid")
    app = recording(registry.simulators["bankid"](settings))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
