"""Complete CIBA poll flows run by panva's openid-client (node), for ``flow_cost``.

``bench/node/flows.mjs`` does the flows (discovery once, bc-authorize, one pending
poll at once, then the library's own poll loop; the ID token validated by the
library, its signature too). This module installs the pinned package when it is
missing (``npm ci`` in ``bench/node``, node from ``scripts/prepare.d/node.sh``),
starts the script, lets it discover, and starts the flows when the caller's
counters are ready.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"
_PREPARE_NODE = NODE_DIR.parents[1] / "scripts" / "prepare.d" / "node.sh"


def ensure_openid_client() -> str:
    """The node binary, with bench/node's pinned openid-client installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        subprocess.run(["bash", str(_PREPARE_NODE)], check=True)  # noqa: S603, S607
    if not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607
            cwd=NODE_DIR,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed and could not be installed")
    return node


class NodeFlows:
    """One openid-client process: discovered on start, runs its flows on ``go``."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        secret: str,
        *,
        alg: str,
        hint: str,
        acr: str,
        flows: int,
        concurrency: int,
    ) -> None:
        args = [issuer, client_id, secret, alg, hint, acr, str(flows), str(concurrency)]
        self.proc = subprocess.Popen(  # noqa: S603
            [ensure_openid_client(), str(NODE_DIR / "flows.mjs"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def go(self) -> None:
        """Start the flows (the script waits for this line after discovery)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 600) -> dict[str, Any]:
        """``{flows, errors, seconds, token_requests, client_cpu}`` once every flow ended."""
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"openid-client flows failed ({self.proc.returncode}): {err[-800:]}")
        return json.loads(out.strip().splitlines()[-1])
