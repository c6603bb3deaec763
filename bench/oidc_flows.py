"""Complete CIBA poll flows run by a real OIDC client library (authlib), for ``flow_cost``.

Each flow: discovery and JWKS once per client, then bc-authorize, a first token
poll at once (``authorization_pending``: the connector's first collect is half a
second away), a second poll after the interval (tokens), and the ID token
validated as a relying party must: signature against the tenant's ``jwks_uri``
(joserfc, as authlib's own OpenID mixin does), then authlib's ``IDToken`` claims
check (iss, aud, exp, iat, sub). A flow whose ID token fails validation is an error.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import httpx

with warnings.catch_warnings():  # authlib 1.9 warns of httpx on import
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import IDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

CIBA_GRANT = "urn:openid:params:grant-type:ciba"


class RelyingParty:
    """One CIBA client of one tenant: authlib for the token endpoint, ID tokens validated."""

    def __init__(self, base: str, tenant: str, client_id: str, secret: str, size: int) -> None:
        self.base = base
        self.tenant = tenant
        self.client_id = client_id
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self.oauth = AsyncOAuth2Client(
            client_id,
            secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            limits=limits,
            timeout=30,
        )
        self.metadata: dict[str, Any] = {}
        self.keys: KeySet | None = None
        self.registry: JWSRegistry | None = None

    async def discover(self) -> None:
        url = f"{self.base}/{self.tenant}/.well-known/openid-configuration"
        self.metadata = (
            (await self.oauth.request("GET", url, withhold_token=True)).raise_for_status().json()
        )
        jwks = await self.oauth.request("GET", self.metadata["jwks_uri"], withhold_token=True)
        self.keys = KeySet.import_key_set(jwks.raise_for_status().json())
        algs = self.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        self.registry = JWSRegistry(algorithms=algs)

    async def flow(self, hint: str, acr: str, interval: float) -> int:
        """One complete flow; returns the number of token polls it took."""
        response = await self.oauth.request(
            "POST",
            self.metadata["backchannel_authentication_endpoint"],
            data={"scope": "openid profile", "login_hint": hint, "acr_values": acr},
            auth=(self.client_id, self.oauth.client_secret),
            withhold_token=True,
        )
        response.raise_for_status()
        auth_req_id = response.json()["auth_req_id"]
        polls = 0
        while True:
            polls += 1
            try:
                token = await self.oauth.fetch_token(
                    self.metadata["token_endpoint"], grant_type=CIBA_GRANT, auth_req_id=auth_req_id
                )
                break
            except OAuthError as exc:
                if exc.error != "authorization_pending":
                    raise
            await asyncio.sleep(interval)
        self.validate(token["id_token"])
        return polls

    def validate(self, id_token: str) -> None:
        assert self.keys is not None and self.registry is not None
        decoded = jwt.decode(id_token, self.keys, registry=self.registry)
        claims = IDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"essential": True, "value": self.metadata["issuer"]}},
            {"client_id": self.client_id},
        )
        claims.validate(now=int(time.time()), leeway=5)
        if self.client_id not in (
            [claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"]
        ):
            raise ValueError("the ID token is not for this client")

    async def close(self) -> None:
        await self.oauth.aclose()


async def run_flows(
    port: int,
    tenant: str,
    client_id: str,
    secret: str,
    *,
    hint: str,
    acr: str,
    flows: int,
    concurrency: int,
    interval: float = 1.0,
) -> dict[str, Any]:
    """``flows`` complete flows, ``concurrency`` at a time; polls per flow and errors."""
    rp = RelyingParty(f"http://127.0.0.1:{port}", tenant, client_id, secret, concurrency)
    await rp.discover()
    polls: list[int] = []
    errors: list[str] = []
    remaining = flows

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                polls.append(await rp.flow(hint, acr, interval))
            except Exception as exc:  # counted and shown by the bench
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await rp.close()
    return {"polls": polls, "errors": errors, "seconds": time.perf_counter() - started}
