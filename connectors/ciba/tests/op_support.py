"""panva's oidc-provider (node, connectors/ciba/tests/op) as a real upstream CIBA provider.

``TestOp`` writes the provider's config (signing keys made here, so tests can
also sign tokens the provider never would), starts ``node op.mjs`` on a free
port and drives its test-only admin hook in place of the person's device.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ciba_gateway.tokens.keys import generate_private_jwk

OP_DIR = Path(__file__).parent / "op"

# Two Norwegian test identities (11 digits, both mod-11 check digits valid).
OLA = "24068545672"
KARI = "01129911189"
KARI_EMAIL = "kari@example.no"
LIAR = "15077512052"  # the provider answers for this hint with OLA's national id


def public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}


@dataclass
class TestOp:
    """One oidc-provider process and its admin hook."""

    __test__ = False

    directory: Path
    port: int
    clients: list[dict[str, Any]]
    keys: list[dict[str, Any]] = field(
        default_factory=lambda: [generate_private_jwk("RS256", "op-rs-1")]
    )
    process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accounts(self) -> dict[str, dict[str, Any]]:
        person = {"name": "Ola Nordmann", "given_name": "Ola", "family_name": "Nordmann"}
        return {
            OLA: {"sub": "op-sub-ola", "nnin": OLA, "birthdate": "1985-06-24", **person},
            KARI: {"sub": "op-sub-kari", "nnin": KARI, "name": "Kari Nordmann"},
            KARI_EMAIL: {"sub": "op-sub-kari", "nnin": KARI, "email": KARI_EMAIL},
            LIAR: {"sub": "op-sub-liar", "nnin": OLA, "name": "Not The One Asked For"},
        }

    def start(self, env: dict[str, str] | None = None) -> None:
        node = shutil.which("node")
        if node is None or not (OP_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("node or oidc-provider missing: run scripts/prepare.sh")
        path = self.directory / "op-config.json"
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "jwks": {"keys": self.keys},
            "clients": self.clients,
            "accounts": self.accounts(),
        }
        path.write_text(json.dumps(config))
        self.process = subprocess.Popen(
            [node, str(OP_DIR / "op.mjs"), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"oidc-provider did not start: {line!r}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
            self.process = None

    async def _admin(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with httpx.AsyncClient(base_url=self.issuer, timeout=30) as http:
            response = await http.request(method, f"/admin/{path}", json=body)
        assert response.status_code == expect, response.text
        return response.json()

    async def pending(self) -> list[dict[str, Any]]:
        """The requests waiting for the person's decision."""
        return list(await self._admin("GET", "pending"))

    async def wait_pending(self) -> dict[str, Any]:
        """The first pending request, once there is one (at most 20 s)."""
        async with asyncio.timeout(20):
            while not (waiting := await self.pending()):  # noqa: ASYNC110 - polls another process
                await asyncio.sleep(0.05)
        return waiting[0]

    async def reset(self) -> None:
        """Forget the pending list, so the next test sees only its own requests."""
        await self._admin("POST", "reset")

    async def decide(self, auth_req_id: str, decision: str, expect: int = 200) -> Any:
        """The person approves or denies on their device (500: the provider's ping failed)."""
        body = {"auth_req_id": auth_req_id, "decision": decision}
        return await self._admin("POST", "decide", body, expect)

    async def rotate(self) -> dict[str, Any]:
        """Sign with a fresh key from now on (the old one is no longer published)."""
        key = generate_private_jwk("RS256", f"op-rs-{len(self.keys) + 1}")
        self.keys = [key]
        await self._admin("POST", "rotate", {"jwks": {"keys": self.keys}})
        return key


def ciba_client(client_id: str, **metadata: Any) -> dict[str, Any]:
    """Client metadata of a CIBA client at the provider (poll, client_secret_basic by default)."""
    return {
        "client_id": client_id,
        "grant_types": ["urn:openid:params:grant-type:ciba"],
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "backchannel_token_delivery_mode": "poll",
        **metadata,
    }
