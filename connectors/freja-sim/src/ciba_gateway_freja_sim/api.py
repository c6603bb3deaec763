"""The Freja simulator's RP API: one call's bytes in, Freja's answer out (UPSTREAMS.md 2).

``RpApi.handle(operation, method, body)`` parses and checks a call the way Freja does,
applies the fault rules and hands the work to the ``Authentications`` model; the
Litestar app in ``app.py`` only moves bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from ciba_gateway_freja.wire import (
    ATTRIBUTES,
    ERROR_MESSAGES,
    LEVELS,
    PARAMETERS,
    AuthRefRequest,
    BodyError,
    Operation,
    ResultsRequest,
    SignRefRequest,
    decode_body,
    decode_ssn_user_info,
)

from ciba_gateway.connector import decode_json
from ciba_gateway_freja_sim.faults import MALLORY, DetailsSigner, FaultRules
from ciba_gateway_freja_sim.model import Auth, Authentications, InitRequest, Refusal
from ciba_gateway_freja_sim.settings import PHONE, SimulatorSettings, persona_key

__all__ = ["Reply", "RpApi"]

_INIT_FIELDS: Final = frozenset(
    {
        "userInfoType",
        "userInfo",
        "minRegistrationLevel",
        "attributesToReturn",
        "userConfirmationMethod",
        "orgIdIssuer",
        "originDeviceDetails",
        "useDynamicQrCode",
    }
)
_SIGN_OPS: Final = frozenset({"getOneSignResult", "cancelSignature"})
_SIGN_FIELDS: Final = frozenset(
    {"title", "pushNotification", "expiry", "dataToSignType", "dataToSign", "signatureType"}
)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, JSON body, or a dropped connection."""

    status: int
    body: bytes = b"{}"
    media_type: str = "application/json"
    drop: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()


class RpApi:
    """Answers the authentication and signature API calls of relying parties."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        model: Authentications,
        faults: FaultRules,
        signer: DetailsSigner,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.model = model
        self.faults = faults
        self.signer = signer
        self._sleep = sleep
        self.calls: Counter[str] = Counter()
        self.received: deque[dict[str, Any]] = deque(maxlen=500)
        """Decoded requests, newest last: ``{"operation", "request", "relyingPartyId"}``."""

    def reset(self) -> None:
        """Forget the counters and the requests received."""
        self.calls.clear()
        self.received.clear()

    async def handle(self, operation: str, method: str, body: bytes) -> Reply:
        """Answer one call of ``/authentication/1.0/<operation>`` (or ``/sign/1.0``)."""
        if operation not in PARAMETERS:
            return Reply(404, msgspec.json.encode({"code": 1000, "message": "Unknown method."}))
        if method != "POST":
            return Reply(
                405,
                msgspec.json.encode({"code": 1000, "message": "Method not allowed."}),
                headers=((b"allow", b"POST"),),
            )
        op: Operation = operation  # type: ignore[assignment]
        self.calls[op] += 1
        try:
            request, relying_party_id = self._parse(op, body)
            target = self._target(op, request)
        except Refusal as refusal:
            return _error(refusal.code, refusal.status)
        fault = self.faults.network(op, target)
        if fault is not None and fault.latency:
            await self._sleep(fault.latency)
        if fault is not None and fault.kind == "http500":
            return _error(0, 500)
        if fault is not None and fault.kind == "http503":
            return Reply(503, b"Service Unavailable", media_type="text/plain; charset=utf-8")
        try:
            reply = self._process(op, request, relying_party_id)
        except Refusal as refusal:
            reply = _error(refusal.code, refusal.status)
        if fault is not None and fault.kind == "drop":
            return Reply(200, reply.body, drop=True)
        return reply

    def _parse(self, op: Operation, body: bytes) -> tuple[dict[str, Any], str | None]:
        try:
            parsed = decode_body(body)
        except BodyError:
            raise Refusal(1000) from None
        if parsed.parameter != PARAMETERS[op]:
            raise Refusal(1000)
        try:
            request = decode_json(parsed.json)
        except msgspec.DecodeError:
            raise Refusal(1010) from None
        if not isinstance(request, dict):
            raise Refusal(1010)
        if self.settings.relying_party_ids and parsed.relying_party_id is not None:
            if parsed.relying_party_id not in self.settings.relying_party_ids:
                raise Refusal(1011)
        self.received.append(
            {"operation": op, "request": request, "relyingPartyId": parsed.relying_party_id}
        )
        return request, parsed.relying_party_id

    def _target(self, op: Operation, request: dict[str, Any]) -> str | None:
        """The persona (``user_info``) a call concerns, for per-persona faults."""
        if op in ("initAuthentication", "initSignature"):
            try:
                init = _init_request(_auth_part(request))
            except Refusal:
                return None
            persona = self.model.personas.get(init.key)
            return persona.user_info if persona else None
        auth = self.model.auths.get(str(request.get("signRef" if op in _SIGN_OPS else "authRef")))
        return auth.persona.user_info if auth else None

    def _process(
        self, op: Operation, request: dict[str, Any], relying_party_id: str | None
    ) -> Reply:
        if op == "initAuthentication":
            auth = self.model.start(_init_request(request), relying_party_id)
            return Reply(200, msgspec.json.encode({auth.ref_key: auth.auth_ref}))
        if op == "initSignature":
            return self._init_sign(request, relying_party_id)
        if op == "getResults":
            return self._results(request, relying_party_id)
        signing = op in _SIGN_OPS
        try:
            if signing:
                auth_ref = msgspec.convert(request, SignRefRequest).sign_ref
            else:
                auth_ref = msgspec.convert(request, AuthRefRequest).auth_ref
        except msgspec.ValidationError:
            raise Refusal(1000) from None
        auth = self.model.live(auth_ref)
        if signing != (auth.sign_text is not None):
            raise Refusal(1100, 422)  # a signRef on the authentication API, or the reverse
        if op in ("cancel", "cancelSignature"):
            self.model.cancel(auth)
            return Reply(200, b"{}")
        return Reply(200, msgspec.json.encode(self._render(op, auth)))

    def _init_sign(self, request: dict[str, Any], relying_party_id: str | None) -> Reply:
        """initSignature: a SIMPLE signature of SIMPLE_UTF8_TEXT (UPSTREAMS.md 2.7)."""
        if request.get("dataToSignType") != "SIMPLE_UTF8_TEXT":
            raise Refusal(1000)  # EXTENDED_UTF8_TEXT (binary data) is not simulated
        if request.get("signatureType") != "SIMPLE":
            raise Refusal(1000)
        data = request.get("dataToSign")
        if not isinstance(data, dict) or set(data) != {"text"} or not isinstance(data["text"], str):
            raise Refusal(1000)
        try:
            text = base64.b64decode(data["text"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Refusal(1000) from None
        title = request.get("title")
        expiry = request.get("expiry")
        if title is not None and not isinstance(title, str):
            raise Refusal(1000)
        if expiry is not None and (
            not isinstance(expiry, int) or expiry < (self.model.clock() + 119) * 1000
        ):
            raise Refusal(1000)  # simulator choice: below Freja's 2-minute minimum
        init = _init_request(_auth_part(request))
        auth = self.model.start(init, relying_party_id, sign_text=text, sign_title=title)
        return Reply(200, msgspec.json.encode({auth.ref_key: auth.auth_ref}))

    def _results(self, request: dict[str, Any], relying_party_id: str | None) -> Reply:
        try:
            include = msgspec.convert(request, ResultsRequest).include_previous
        except msgspec.ValidationError:
            raise Refusal(1200) from None
        if include != "ALL":
            raise Refusal(1200)
        results = [self._render("getResults", a) for a in self.model.readable(relying_party_id)]
        return Reply(200, msgspec.json.encode({"authenticationResults": results}))

    def _render(self, op: Operation, auth: Auth) -> dict[str, Any]:
        result: dict[str, Any] = {auth.ref_key: auth.auth_ref, "status": auth.status}
        if auth.status != "APPROVED" or auth.payload is None:
            return result
        kind = self.faults.jws(op, auth.persona.user_info)
        payload = auth.payload
        result["details"] = self.signer.sign(payload, kind)
        attributes = payload["requestedAttributes"]
        if kind == "unsigned_attributes":
            attributes = {**attributes, "basicUserInfo": MALLORY}
        result["requestedAttributes"] = attributes
        return result


def _error(code: int, status: int) -> Reply:
    return Reply(status, msgspec.json.encode({"code": code, "message": ERROR_MESSAGES[code]}))


def _auth_part(request: dict[str, Any]) -> dict[str, Any]:
    """An initSignRequest without its signature fields: what initAuthentication also takes."""
    return {k: v for k, v in request.items() if k not in _SIGN_FIELDS}


def _init_request(request: dict[str, Any]) -> InitRequest:
    """The start an ``initAuthRequest`` asks for, checked field by field."""
    if not set(request) <= _INIT_FIELDS:
        raise Refusal(1000)
    user_info_type = request.get("userInfoType")
    if user_info_type not in ("SSN", "EMAIL", "PHONE", "UPI"):
        # INFERRED (QR code) and ORG_ID (org-ID service) are not simulated.
        raise Refusal(1001)
    user_info = request.get("userInfo")
    if not isinstance(user_info, str) or not 0 < len(user_info) <= 256:
        raise Refusal(1002)
    if user_info_type == "SSN":
        try:
            country, ssn = decode_ssn_user_info(user_info)
        except ValueError:
            raise Refusal(1002) from None
        if not (ssn.isascii() and ssn.isdigit() and re.fullmatch(r"[A-Z]{2}", country)):
            raise Refusal(1002)
        key = persona_key("SSN", ssn, country)
    elif user_info_type == "EMAIL":
        if "@" not in user_info:
            raise Refusal(1002)
        key = persona_key("EMAIL", user_info)
    elif user_info_type == "PHONE":
        if not PHONE.fullmatch(user_info):
            raise Refusal(1002)
        key = persona_key("PHONE", user_info)
    else:
        key = ("UPI", user_info)
    level = request.get("minRegistrationLevel", "BASIC")
    if level not in LEVELS:
        raise Refusal(1007)
    attributes = request.get("attributesToReturn", [])
    if not isinstance(attributes, list) or not all(
        isinstance(a, dict) and set(a) == {"attribute"} and a["attribute"] in ATTRIBUTES
        for a in attributes
    ):
        raise Refusal(2002)
    method = request.get("userConfirmationMethod", "DEFAULT")
    if method not in ("DEFAULT", "DEFAULT_AND_FACE"):
        raise Refusal(1000)
    return InitRequest(
        user_info_type=user_info_type,
        user_info=user_info,
        key=key,
        min_level=level,
        attributes=tuple(a["attribute"] for a in attributes),
    )
