"""What the upstream CIBA provider answers, decoded strictly and with a size cap.

Every upstream answer is read at most ``MAX_BODY`` bytes and decoded into a
msgspec Struct; anything else is an ``UpstreamProtocolError``. Nothing here
decides what an answer means (connector.py does).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from ciba_gateway.connector import MAX_UPSTREAM_JSON_BYTES, decode_json

__all__ = [
    "MAX_BODY",
    "Answer",
    "BackchannelAnswer",
    "ErrorAnswer",
    "Metadata",
    "TokenAnswer",
    "UpstreamProtocolError",
    "decode",
    "error_of",
    "exchange",
]

MAX_BODY = 256 * 1024
"""Bytes read from any upstream answer (a JWKS with many RSA keys fits easily)."""

T = TypeVar("T")


class UpstreamProtocolError(Exception):
    """The upstream answered something that is not what the protocol says."""


class Metadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of OpenID discovery (with CIBA's metadata) the connector uses."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    backchannel_authentication_endpoint: str
    userinfo_endpoint: str | None = None
    backchannel_token_delivery_modes_supported: tuple[str, ...] = ()
    id_token_signing_alg_values_supported: tuple[str, ...] = ("RS256",)
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    """Empty when discovery does not say (OIDC Discovery's default is client_secret_basic,
    but many providers omit the list); then nothing is checked."""


class BackchannelAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A successful backchannel authentication response (CIBA Core 7.3)."""

    auth_req_id: str
    expires_in: int
    interval: int | None = None


class TokenAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A successful token response of the CIBA grant (CIBA Core 11)."""

    access_token: str
    token_type: str
    id_token: str
    expires_in: int | None = None


class ErrorAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An OAuth error response (RFC 6749 5.2)."""

    error: str
    error_description: str | None = None


class Answer(msgspec.Struct, frozen=True):
    """An upstream HTTP answer: status and at most ``MAX_BODY`` bytes of body."""

    status: int
    body: bytes


async def exchange(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Answer:
    """Send one request and read its answer, refusing bodies over ``MAX_BODY``."""
    async with client.stream(method, url, **kwargs) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_BODY:
                raise UpstreamProtocolError(f"answer larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        if response.status_code in {502, 503, 504}:
            # is_transient() recognizes these as worth another try.
            raise httpx.HTTPStatusError(
                "upstream unavailable", request=response.request, response=response
            )
        return Answer(response.status_code, b"".join(chunks))


def decode(body: bytes, type_: type[T]) -> T:
    """Decode a JSON answer into ``type_`` or raise ``UpstreamProtocolError``."""
    try:
        return decode_json(body, type=type_, max_bytes=MAX_UPSTREAM_JSON_BYTES)
    except msgspec.DecodeError as exc:
        raise UpstreamProtocolError(f"unexpected answer: {exc}") from None


def error_of(answer: Answer) -> ErrorAnswer:
    """The OAuth error of a non-2xx answer (``unknown`` when the body is not one)."""
    try:
        return decode_json(answer.body, type=ErrorAnswer, max_bytes=MAX_UPSTREAM_JSON_BYTES)
    except msgspec.DecodeError:
        return ErrorAnswer(error="unknown", error_description=f"HTTP {answer.status}")
