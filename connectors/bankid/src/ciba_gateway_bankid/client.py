"""A thin async client of the BankID RP API v6.0: one method per endpoint.

It encodes requests, checks answers and raises; it neither retries nor maps
errors to the gateway's terms (``connector.py`` decides both)::

    httpx.HTTPError
    +-- httpx.TransportError      timeouts, refused or dropped connections (from httpx)
    +-- httpx.HTTPStatusError
        +-- BankIDError           a non-2xx answer, with errorCode and details
    BankIDProtocolError           a 2xx answer we cannot read
"""

from __future__ import annotations

from typing import TypeVar

import httpx
import msgspec

from ciba_gateway.connector import MAX_UPSTREAM_JSON_BYTES, Answer, decode_json, exchange
from ciba_gateway_bankid.wire import (
    AuthRequest,
    CollectResponse,
    ErrorResponse,
    OrderRef,
    OrderResponse,
    PhoneAuthRequest,
    PhoneSignRequest,
    SignRequest,
)

__all__ = ["BankIDClient", "BankIDError", "BankIDProtocolError"]

T = TypeVar("T")

# Exactly this value: BankID answers 415 when a charset parameter is added.
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_PATHS = ("auth", "sign", "phone/auth", "phone/sign", "collect", "cancel")


class BankIDError(httpx.HTTPStatusError):
    """A non-2xx answer; ``error_code`` is lower-cased for matching, ``details`` is free text."""

    def __init__(self, url: httpx.URL, answer: Answer) -> None:
        try:
            body = decode_json(
                answer.content, type=ErrorResponse, max_bytes=MAX_UPSTREAM_JSON_BYTES
            )
            code, details = body.error_code, body.details
        except msgspec.MsgspecError:
            code, details = "", ""
        request = httpx.Request("POST", url)
        super().__init__(
            f"BankID answered {answer.status} {code or '(no errorCode)'}",
            request=request,
            response=httpx.Response(answer.status, content=answer.content, request=request),
        )
        self.status = answer.status
        self.error_code = code.lower()
        self.raw_error_code = code
        self.details = details


class BankIDProtocolError(Exception):
    """A 2xx answer that is not the documented JSON."""


class BankIDClient:
    """Calls the RP API under ``base_url`` (e.g. ``.../rp/v6.0``) through ``transport``.

    Requests go to the transport through ``exchange``: ``httpx.AsyncClient``'s request
    building, cookie jar and redirect logic, and on the default transport httpx's
    Request and Response objects too, cost more than the rest of a collect
    (BENCHMARKS.md), and a BankID call needs none of them.
    """

    def __init__(
        self, base_url: str, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout
    ) -> None:
        base = httpx.URL(base_url.rstrip("/") + "/")
        self._urls = {path: base.join(path) for path in _PATHS}
        self._transport = transport
        self._timeout = timeout

    async def auth(self, body: AuthRequest) -> OrderResponse:
        """``POST /auth``: start an authentication order."""
        return await self._post("auth", body, OrderResponse)

    async def phone_auth(self, body: PhoneAuthRequest) -> OrderResponse:
        """``POST /phone/auth``: start an authentication order for a caller on the phone."""
        return await self._post("phone/auth", body, OrderResponse)

    async def sign(self, body: SignRequest) -> OrderResponse:
        """``POST /sign``: start a signing order (the person signs userVisibleData)."""
        return await self._post("sign", body, OrderResponse)

    async def phone_sign(self, body: PhoneSignRequest) -> OrderResponse:
        """``POST /phone/sign``: start a signing order for a caller on the phone."""
        return await self._post("phone/sign", body, OrderResponse)

    async def start(
        self, body: AuthRequest | PhoneAuthRequest | SignRequest | PhoneSignRequest
    ) -> OrderResponse:
        """The start call that fits ``body``'s type."""
        if isinstance(body, SignRequest):
            return await self.sign(body)
        if isinstance(body, PhoneSignRequest):
            return await self.phone_sign(body)
        if isinstance(body, PhoneAuthRequest):
            return await self.phone_auth(body)
        return await self.auth(body)

    async def collect(self, order_ref: str) -> CollectResponse:
        """``POST /collect``: the order's status, hint code or completion data."""
        return await self._post("collect", OrderRef(order_ref=order_ref), CollectResponse)

    async def cancel(self, order_ref: str) -> None:
        """``POST /cancel``: cancel a pending order."""
        await self._post("cancel", OrderRef(order_ref=order_ref), None)

    async def aclose(self) -> None:
        """Close the transport's connections."""
        await self._transport.aclose()

    async def _post(self, path: str, body: msgspec.Struct, answer: type[T] | None) -> T:
        url = self._urls[path]
        reply = await exchange(
            self._transport,
            "POST",
            url,
            content=msgspec.json.encode(body),
            headers=_HEADERS,
            timeouts=self._timeout,
        )
        if not 200 <= reply.status < 300:
            raise BankIDError(url, reply)
        if answer is None:
            return None  # type: ignore[return-value]
        media_type = reply.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            raise BankIDProtocolError(f"/{path} answered {media_type[:40] or 'no content type'}")
        try:
            return decode_json(reply.content, type=answer, max_bytes=MAX_UPSTREAM_JSON_BYTES)
        except msgspec.MsgspecError as exc:
            raise BankIDProtocolError(f"unreadable answer from /{path}: {exc}") from exc
