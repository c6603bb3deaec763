"""A thin async client of the Freja eID authentication and signature APIs: one method each.

It encodes bodies (``wire.encode_body``), decodes answers into Structs and turns
error answers into exceptions; it neither retries nor maps errors to outcomes
(the connector does both)::

    FrejaError           400/422/5xx with a {"code", "message"} body
    FrejaProtocolError   a 2xx answer we cannot read
    httpx.HTTPStatusError   any other non-2xx answer (e.g. a proxy's 503 page)
    httpx.TransportError    timeouts, refused or dropped connections
"""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from ciba_gateway.connector import MAX_UPSTREAM_JSON_BYTES, decode_json
from ciba_gateway_freja.wire import (
    PATHS,
    AuthRefRequest,
    AuthResult,
    ErrorBody,
    InitAuthRequest,
    InitAuthResponse,
    InitSignRequest,
    InitSignResponse,
    Operation,
    SignRefRequest,
    SignResult,
    encode_body,
)

__all__ = ["FrejaClient", "FrejaError", "FrejaProtocolError"]

_T = TypeVar("_T")

# The official Java client labels the body application/json although it is not JSON;
# we do the same so that we look like it to the service and to proxies.
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class FrejaError(Exception):
    """Freja answered an error body ``{"code", "message"}`` with HTTP ``status``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"HTTP {status}, code {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class FrejaProtocolError(Exception):
    """A success answer that does not have the documented shape."""


class FrejaClient:
    """Calls the authentication operations over an ``httpx.AsyncClient`` built by the caller."""

    def __init__(self, http: httpx.AsyncClient, relying_party_id: str | None = None) -> None:
        self._http = http
        self._relying_party_id = relying_party_id

    async def init_authentication(self, request: InitAuthRequest) -> InitAuthResponse:
        """Start an authentication; the answer carries its ``authRef``."""
        content = await self._call("initAuthentication", request)
        return self._decode(content, InitAuthResponse)

    async def get_one_result(self, auth_ref: str) -> AuthResult:
        """The current result of one authentication."""
        content = await self._call("getOneResult", AuthRefRequest(auth_ref=auth_ref))
        return self._decode(content, AuthResult)

    async def cancel(self, auth_ref: str) -> None:
        """Cancel an authentication that is still in progress."""
        await self._call("cancel", AuthRefRequest(auth_ref=auth_ref))

    async def init_signature(self, request: InitSignRequest) -> InitSignResponse:
        """Start a signature of a text; the answer carries its ``signRef``."""
        content = await self._call("initSignature", request)
        return self._decode(content, InitSignResponse)

    async def get_one_sign_result(self, sign_ref: str) -> AuthResult:
        """The current result of one signature, in the shape of an authentication result."""
        content = await self._call("getOneSignResult", SignRefRequest(sign_ref=sign_ref))
        return self._decode(content, SignResult).as_auth_result()

    async def cancel_signature(self, sign_ref: str) -> None:
        """Cancel a signature that is still in progress."""
        await self._call("cancelSignature", SignRefRequest(sign_ref=sign_ref))

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._http.aclose()

    async def _call(self, operation: Operation, payload: msgspec.Struct) -> bytes:
        body = encode_body(operation, payload, self._relying_party_id)
        path = PATHS[operation].lstrip("/")  # relative, so a base URL path prefix is kept
        response = await self._http.post(path, content=body, headers=_HEADERS)
        if response.status_code in (200, 204):
            return response.content
        if response.status_code >= 400:
            try:
                error = decode_json(
                    response.content, type=ErrorBody, max_bytes=MAX_UPSTREAM_JSON_BYTES
                )
            except msgspec.DecodeError:
                pass
            else:
                raise FrejaError(response.status_code, error.code, error.message)
        response.raise_for_status()
        raise FrejaProtocolError(f"unexpected HTTP status {response.status_code}")

    @staticmethod
    def _decode(content: bytes, kind: type[_T]) -> _T:
        try:
            return decode_json(content, type=kind, max_bytes=MAX_UPSTREAM_JSON_BYTES)
        except msgspec.DecodeError as exc:
            raise FrejaProtocolError(f"unreadable {kind.__name__}") from exc
