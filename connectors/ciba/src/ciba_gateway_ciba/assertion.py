"""Client authentication at the upstream: ``client_secret_basic``, ``_post``, ``private_key_jwt``.

``ClientCredentials.apply`` returns the headers and form fields one request
needs. A ``private_key_jwt`` assertion (RFC 7523, OIDC Core 9) is signed fresh
for every request, with a random ``jti`` and the upstream's issuer as ``aud``,
which CIBA Core 7.1 and OIDC Core 9 oblige the OP to accept at every endpoint.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from joserfc import jwt
from joserfc.jwk import Key, import_key

from ciba_gateway_ciba.config import ClientAuth

__all__ = ["ClientCredentials"]

_KEY_TYPES = {"ES256": "EC", "ES384": "EC", "RS256": "RSA", "PS256": "RSA", "EdDSA": "OKP"}


class ClientCredentials:
    """Signs or attaches the gateway's credentials as a client of the upstream."""

    def __init__(self, client_id: str, auth: ClientAuth, clock: Callable[[], float]) -> None:
        self.client_id = client_id
        self.auth = auth
        self._clock = clock
        self._key: Key | None = None
        self._alg = auth.alg or "ES256"
        if auth.method == "private_key_jwt":
            assert auth.key_file is not None  # Config checks it
            data = json.loads(Path(auth.key_file).read_text())
            self._key = import_key(data)
            self._alg = auth.alg or data.get("alg") or "ES256"
            if _KEY_TYPES.get(self._alg) != self._key.key_type:
                kind = self._key.key_type
                raise ValueError(f"key_file holds a {kind} key, not one for {self._alg}")

    def apply(self, audience: str) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and form fields that authenticate one request to ``audience``."""
        method = self.auth.method
        if method == "client_secret_basic":
            # RFC 6749 2.3.1: both parts form-urlencoded before base64.
            user = quote(self.client_id, safe="")
            password = quote(self.auth.secret or "", safe="")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {token}"}, {}
        if method == "client_secret_post":
            return {}, {"client_id": self.client_id, "client_secret": self.auth.secret or ""}
        return {}, {
            "client_id": self.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self._assertion(audience),
        }

    def _assertion(self, audience: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + self.auth.assertion_lifetime,
        }
        assert self._key is not None
        header = {"alg": self._alg, "typ": "JWT"}
        kid = self._key.kid
        if kid:
            header["kid"] = kid
        return jwt.encode(header, claims, self._key, algorithms=[self._alg])
