"""Real gateways on loopback ports for the chaining tests, and a relying party that calls them.

``served(yaml)`` builds the gateway app from a config text (the installed
connector plugins, the real driver) and serves it with uvicorn on the port the
config names, so the upstream gateway, the chained connector and any ping
callbacks all talk real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet

from ciba_gateway.app import create_app
from ciba_gateway.config.load import parse_config
from ciba_gateway.connector import load_registry

CIBA = "urn:openid:params:grant-type:ciba"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def served(
    yaml: str, port: int, certfile: str | None = None, client_ca: str | None = None
) -> AsyncIterator[Any]:
    """The gateway of ``yaml`` served on ``127.0.0.1:port`` (lifespan and driver running).

    With ``certfile`` (certificate + key PEM) it serves https; with ``client_ca`` too,
    it requires a client certificate issued by that CA (mutual TLS).
    """
    app = create_app(parse_config(yaml, registry=load_registry()))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_certfile=certfile,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield app
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class RelyingParty:
    """A CIBA client of one gateway tenant (client_secret_basic, poll mode)."""

    issuer: str
    client_id: str
    secret: str
    ca_file: str | None = None
    """CA bundle trusted for an https issuer."""

    def _http(self) -> httpx.AsyncClient:
        verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        return httpx.AsyncClient(timeout=30, verify=verify)

    def _auth(self) -> dict[str, str]:
        basic = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}

    async def bc_authorize(self, **form: str) -> httpx.Response:
        async with self._http() as http:
            return await http.post(f"{self.issuer}/bc-authorize", data=form, headers=self._auth())

    async def token(self, auth_req_id: str) -> httpx.Response:
        async with self._http() as http:
            return await http.post(
                f"{self.issuer}/token",
                data={"grant_type": CIBA, "auth_req_id": auth_req_id},
                headers=self._auth(),
            )

    async def wait_for_result(self, auth_req_id: str, interval: float, limit: float = 60) -> Any:
        """Poll the token endpoint at ``interval`` until the answer is not pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            await asyncio.sleep(interval)
            response = await self.token(auth_req_id)
            if response.json().get("error") == "slow_down":
                interval += 5
            elif response.json().get("error") != "authorization_pending":
                return response
            if loop.time() > deadline:
                raise AssertionError("still pending")

    async def claims(self, id_token: str) -> dict[str, Any]:
        """The verified claims of an ID token of this issuer."""
        async with self._http() as http:
            keys = KeySet.import_key_set((await http.get(f"{self.issuer}/jwks")).json())
        return dict(jwt.decode(id_token, keys, algorithms=["ES256", "RS256"]).claims)
