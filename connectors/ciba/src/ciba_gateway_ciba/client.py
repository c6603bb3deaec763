"""The upstream CIBA provider as its client sees it: discovery, keys and the two endpoints.

Discovery metadata and the JWKS are cached for their TTLs. A failed call to an
endpoint (transport error, 404) drops the cached metadata so the next call reads
discovery again (the provider may have moved an endpoint); a ``kid`` missing from
the cached JWKS triggers one immediate re-fetch (the provider rotated its keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ciba_gateway.connector import (
    MAX_UPSTREAM_JSON_BYTES,
    HttpSettings,
    build_client,
    call_with_retries,
    decode_json,
    never_sent,
)
from ciba_gateway_ciba.assertion import ClientCredentials
from ciba_gateway_ciba.config import Config
from ciba_gateway_ciba.wire import (
    Answer,
    Metadata,
    UpstreamProtocolError,
    decode,
    exchange,
)

__all__ = ["CIBA_GRANT", "Provider"]

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
_FORM = {"Accept": "application/json"}


class Provider:
    """One upstream OP: cached discovery and JWKS, client-authenticated POSTs."""

    def __init__(
        self,
        config: Config,
        credentials: ClientCredentials,
        clock: Callable[[], float],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self._clock = clock
        self._http: HttpSettings = config.http
        self._client = build_client("", config.http, transport=transport, headers=_FORM)
        self._metadata: tuple[float, Metadata] | None = None
        self._keys: tuple[float, KeySet] | None = None

    # --- discovery and keys ---------------------------------------------------

    async def metadata(self) -> Metadata:
        """Discovery metadata, from cache while fresh; checked against the configured issuer."""
        now = self._clock()
        if self._metadata is not None and now - self._metadata[0] < self.config.discovery_ttl:
            return self._metadata[1]
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        answer = await self._get(url)
        metadata = decode(answer.body, Metadata)
        # OpenID Connect Discovery 4.3: the issuer must be identical to the one asked for.
        if metadata.issuer != self.config.issuer:
            raise UpstreamProtocolError("discovery names another issuer")
        self._metadata = (now, metadata)
        return metadata

    def forget_metadata(self) -> None:
        """Read discovery again on the next call (an endpoint failed)."""
        self._metadata = None

    async def keys(self, kid: str | None) -> KeySet:
        """The upstream JWKS; fetched again at once when it lacks ``kid``."""
        now = self._clock()
        cached = self._keys
        if cached is not None and now - cached[0] < self.config.jwks_ttl:
            if kid is None or any(key.kid == kid for key in cached[1].keys):
                return cached[1]
        metadata = await self.metadata()
        answer = await self._get(metadata.jwks_uri)
        try:
            keys = KeySet.import_key_set(
                decode_json(answer.body, max_bytes=MAX_UPSTREAM_JSON_BYTES)
            )
        except (msgspec.DecodeError, JoseError, ValueError, TypeError, KeyError) as exc:
            raise UpstreamProtocolError(f"unusable JWKS: {type(exc).__name__}") from None
        self._keys = (now, keys)
        return keys

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo claims for ``access_token`` (OIDC Core 5.3; JSON answers only)."""
        metadata = await self.metadata()
        if not metadata.userinfo_endpoint:
            raise UpstreamProtocolError("discovery names no userinfo_endpoint")
        headers = {"Authorization": f"Bearer {access_token}"}
        answer = await self._get(metadata.userinfo_endpoint, headers=headers)
        claims = decode(answer.body, dict[str, Any])
        return claims

    async def _get(self, url: str, headers: dict[str, str] | None = None) -> Answer:
        answer = await call_with_retries(
            lambda: exchange(self._client, "GET", url, headers=headers), self._http.retries
        )
        if answer.status != 200:
            raise UpstreamProtocolError(f"GET {url} answered {answer.status}")
        return answer

    # --- the CIBA endpoints ---------------------------------------------------

    async def backchannel(self, form: dict[str, str]) -> Answer:
        """POST a backchannel authentication request (retried only when surely not sent)."""
        metadata = await self.metadata()
        return await self._post(metadata.backchannel_authentication_endpoint, form)

    async def token(self, auth_req_id: str) -> Answer:
        """POST the CIBA grant for ``auth_req_id`` (retried only when surely not sent)."""
        metadata = await self.metadata()
        form = {"grant_type": CIBA_GRANT, "auth_req_id": auth_req_id}
        return await self._post(metadata.token_endpoint, form)

    async def _post(self, url: str, form: dict[str, str]) -> Answer:
        # A read timeout may come after the upstream acted (started an authentication,
        # consumed a grant): only a request that surely never went out is sent again.
        async def send() -> Answer:
            headers, fields = self.credentials.apply(self.config.issuer)
            data = {**form, **fields}
            return await exchange(self._client, "POST", url, data=data, headers=headers)

        try:
            answer = await call_with_retries(send, self._http.retries, predicate=never_sent)
        except httpx.HTTPError:
            self.forget_metadata()
            raise
        if answer.status == 404:
            self.forget_metadata()
        return answer

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
