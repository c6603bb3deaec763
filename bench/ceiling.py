"""The ceiling: a bare Litestar route answering the token endpoint's authorization_pending bytes.

Served by the same ASGI server with the same settings as ``ciba-gateway serve``
(``servers.granian_server`` / ``servers.UVICORN_OPTIONS``), so the ratio
token_poll_pending / ceiling is what the gateway's own work costs.

    python bench/ceiling.py --server granian|uvicorn --port N
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, post

PENDING = (
    b'{"error":"authorization_pending",'
    b'"error_description":"the user has not yet been authenticated"}'
)
HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@post("/{tenant:str}/token", status_code=400)
async def token(request: Request[Any, Any, Any], tenant: str) -> Response[bytes]:
    """Read the body, answer the bytes the gateway answers for a pending request."""
    await request.body()
    return Response(PENDING, status_code=400, media_type="application/json", headers=HEADERS)


def create() -> Litestar:
    """The app factory the servers import."""
    return Litestar(route_handlers=[token], openapi_config=None, debug=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    sys.path.insert(0, here)
    if args.server == "granian":
        from ciba_gateway.servers import granian_server

        granian_server("ceiling:create", "127.0.0.1", args.port, 1).serve()
    else:
        import uvicorn

        from ciba_gateway.servers import UVICORN_OPTIONS

        options: dict[str, Any] = dict(UVICORN_OPTIONS)
        uvicorn.run("ceiling:create", factory=True, host="127.0.0.1", port=args.port, **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
