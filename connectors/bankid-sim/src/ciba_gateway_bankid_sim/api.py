"""The BankID simulator's RP API v6.0: one call's bytes in, BankID's answer out.

``RpApi.handle(endpoint, method, content_type, body)`` checks a call the way BankID
does (UPSTREAMS.md section 1), applies the fault rules and hands the work to the
``Orders`` model; the Litestar app in ``app.py`` only moves bytes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple
from uuid import uuid4

import msgspec
from ciba_gateway_bankid.personnummer import is_valid
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

from ciba_gateway.connector import decode_json
from ciba_gateway_bankid_sim.faults import FaultRules
from ciba_gateway_bankid_sim.model import AlreadyInProgress, Orders
from ciba_gateway_bankid_sim.settings import Kind

__all__ = ["Reply", "RpApi"]


class Reply(NamedTuple):
    """An RP API answer; ``drop`` means close the connection instead."""

    status: int
    body: bytes
    drop: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()


class RpApi:
    """Answers the relying parties' calls: auth, sign, phone/auth, phone/sign, collect, cancel."""

    def __init__(
        self, orders: Orders, faults: FaultRules, *, sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self.orders = orders
        self.faults = faults
        self.sleep = sleep
        self.calls: Counter[str] = Counter()

    async def handle(
        self, endpoint: str, method: str, content_type: str | None, body: bytes
    ) -> Reply:
        """Answer one RP API call the way BankID would."""
        self.calls[endpoint] += 1
        handler = _HANDLERS.get(endpoint)
        if handler is None:
            return _error(404, "notFound", "No such endpoint.")
        request_type, action = handler
        if method != "POST":
            return _error(
                405, "methodNotAllowed", "Only POST is allowed.", headers=((b"allow", b"POST"),)
            )
        if (content_type or "").strip().lower() != "application/json":
            return _error(415, "unsupportedMediaType", "Content-Type must be application/json.")
        try:
            request = decode_json(body, type=request_type)
        except msgspec.MsgspecError as exc:
            return _error(400, "invalidParameters", str(exc))
        rule = self.faults.take(self._person_of(request))
        if rule is not None:
            if rule.latency:
                await self.sleep(rule.latency)
            if rule.fault == "http500":
                return _error(500, "internalError", "Simulated internal error.")
            if rule.fault == "http503":
                return _error(503, "maintenance", "Simulated maintenance.")
        try:
            reply = action(self, request)
        except ValueError as exc:
            return _error(400, "invalidParameters", str(exc))
        if rule is not None and rule.fault == "drop":
            return Reply(reply.status, b"", drop=True)
        return reply

    def _person_of(self, request: Any) -> str | None:
        if isinstance(request, OrderRef):
            order = self.orders.orders.get(request.order_ref)
            return order.personal_number if order else None
        if isinstance(request, PhoneAuthRequest | PhoneSignRequest):
            return request.personal_number
        requirement = request.requirement
        return requirement.personal_number if requirement else None

    def _auth(self, request: AuthRequest | SignRequest) -> Reply:
        try:
            ipaddress.ip_address(request.end_user_ip)
        except ValueError:
            raise ValueError("endUserIp is not an IP address") from None
        pnr = request.requirement.personal_number if request.requirement else None
        kind: Kind = "sign" if isinstance(request, SignRequest) else "auth"
        return self._start(kind, pnr, request, end_user_ip=request.end_user_ip)

    def _phone(self, request: PhoneAuthRequest | PhoneSignRequest) -> Reply:
        kind: Kind = "phone/sign" if isinstance(request, PhoneSignRequest) else "phone/auth"
        return self._start(
            kind, request.personal_number, request, call_initiator=request.call_initiator
        )

    def _start(
        self,
        kind: Kind,
        pnr: str | None,
        request: AuthRequest | SignRequest | PhoneAuthRequest | PhoneSignRequest,
        *,
        end_user_ip: str | None = None,
        call_initiator: str | None = None,
    ) -> Reply:
        text = _decode_text(request.user_visible_data, "userVisibleData")
        _check_base64(request.user_non_visible_data, "userNonVisibleData")
        if pnr is not None and not is_valid(pnr):
            raise ValueError("personalNumber is not a valid personal identity number")
        order = self.orders.new(
            kind,
            pnr,
            text=text,
            call_initiator=call_initiator,
            end_user_ip=end_user_ip,
            text_format=request.user_visible_data_format,
            visible_data=request.user_visible_data,
            non_visible_data=request.user_non_visible_data,
        )
        try:
            self.orders.start(order)
        except AlreadyInProgress:
            return _error(400, "alreadyInProgress", "Order already in progress for pno.")
        if kind.startswith("phone/"):
            return _ok(OrderResponse(order_ref=order.order_ref))
        return _ok(
            OrderResponse(
                order_ref=order.order_ref,
                auto_start_token=str(uuid4()),
                qr_start_token=str(uuid4()),
                qr_start_secret=str(uuid4()),
            )
        )

    def _collect(self, request: OrderRef) -> Reply:
        order = self.orders.collect(request.order_ref)
        if order is None:
            raise ValueError("No such order.")
        return _ok(
            CollectResponse(
                order_ref=order.order_ref,
                status=order.status,
                hint_code=None if order.status == "complete" else order.hint_code,
                completion_data=order.completion,
            )
        )

    def _cancel(self, request: OrderRef) -> Reply:
        if not self.orders.cancel(request.order_ref):
            raise ValueError("No such pending order.")
        return _ok({})


def _error(status: int, code: str, details: str, **kw: Any) -> Reply:
    body = msgspec.json.encode(ErrorResponse(error_code=code, details=details))
    return Reply(status, body, **kw)


def _ok(body: msgspec.Struct | dict[str, Any]) -> Reply:
    return Reply(200, msgspec.json.encode(body))


def _decode_text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{field} is not base64 of UTF-8 text") from None


def _check_base64(value: str | None, field: str) -> None:
    if value is None:
        return
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"{field} is not base64") from None


def text_or_base64(value: str | None) -> str | None:
    """Decoded userNonVisibleData when it is UTF-8 text, else the base64 as received."""
    try:
        return _decode_text(value, "userNonVisibleData")
    except ValueError:
        return value


_HANDLERS: Mapping[str, tuple[type, Callable[[RpApi, Any], Reply]]] = {
    "auth": (AuthRequest, RpApi._auth),
    "sign": (SignRequest, RpApi._auth),
    "phone/auth": (PhoneAuthRequest, RpApi._phone),
    "phone/sign": (PhoneSignRequest, RpApi._phone),
    "collect": (OrderRef, RpApi._collect),
    "cancel": (OrderRef, RpApi._cancel),
}
