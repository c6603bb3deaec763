"""The simulated BankID service itself, framework-free: personas, orders, faults.

``BankIDSimulator.handle`` answers one RP API v6.0 call (UPSTREAMS.md section 1)
from its endpoint, method, Content-Type and body; ``simulator.py`` puts it behind
HTTP. Order transitions are applied lazily from the injected clock, so a test
moves time instead of waiting.

Behaviour per order: a persona's ``outcome`` happens ``delay`` seconds after the
start (``ignore``: never, the phone page decides); until then successive collects
show the persona's ``hints`` (default: the usual app progression). A pending order
expires (``expiredTransaction``) after ``order_lifetime``. A number no persona
matches is a person without BankID: ``outstandingTransaction`` until
``startFailed`` after ``start_timeout``. A second order for a person with one
pending fails with ``alreadyInProgress`` and cancels the first (``cancelled``).
Finished orders stay collectable for ``complete_retention`` / ``failed_retention``.

Cost per call is constant, whatever the number of orders held (the gateway's
benchmarks keep 10k orders pending): an order is brought up to date when it is
touched, pending orders are indexed by personal number, and the sweep that
forgets old orders runs at most once a second of the clock. Listings (the phone
page, ``stats``) sweep first, so what they show is exact.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta

from ciba_gateway.connector import decode_json
from ciba_gateway_bankid.personnummer import is_valid
from ciba_gateway_bankid.phone_page import PersonRow
from ciba_gateway_bankid.pki import SimulatedPki
from ciba_gateway_bankid.wire import (
    AuthRequest,
    CollectResponse,
    CompletionData,
    Device,
    ErrorResponse,
    OrderRef,
    OrderResponse,
    PhoneAuthRequest,
    PhoneSignRequest,
    SignRequest,
    User,
)

__all__ = [
    "BankIDSimulator",
    "FaultControl",
    "Order",
    "Persona",
    "Reply",
    "SimulatorSettings",
]

Outcome = Literal[
    "approve",
    "deny",
    "ignore",
    "userCancel",
    "userDeclinedCall",
    "expiredTransaction",
    "certificateErr",
    "startFailed",
    "cancelled",
    "notSupportedByUserApp",
    "transactionRiskBlocked",
]
Fault = Literal["none", "http500", "http503", "drop"]
Kind = Literal["auth", "sign", "phone/auth", "phone/sign"]

_SWEEP_EVERY = 1.0
"""Clock seconds between two sweeps of the whole order table from the RP API calls."""

_DEFAULT_HINTS: Mapping[str, tuple[str, ...]] = {
    "auth": ("outstandingTransaction", "outstandingTransaction", "started", "started", "userSign"),
    "sign": ("outstandingTransaction", "outstandingTransaction", "started", "started", "userSign"),
    "phone/auth": ("outstandingTransaction", "userCallConfirm", "userSign"),
    "phone/sign": ("outstandingTransaction", "userCallConfirm", "userSign"),
}


# --- settings ---------------------------------------------------------------


class Persona(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A scripted person: who they are and what they do with an order."""

    personal_number: Annotated[str, Meta(pattern=r"^[0-9]{12}$")]
    given_name: str = "Test"
    surname: str = "Person"
    name: str | None = None
    """Full name; defaults to ``given_name surname``."""
    outcome: Outcome = "ignore"
    """approve | deny (= userCancel) | ignore (wait for the phone page) | a failed hintCode."""
    delay: Annotated[float, Meta(ge=0)] = 0.0
    """Seconds after the start before the outcome happens (0 = at once)."""
    hints: tuple[str, ...] = ()
    """Pending hintCodes the successive collects show before the outcome (last one repeats)."""
    latency: Annotated[float, Meta(ge=0)] = 0.0
    """Seconds added to every RP API answer about this person."""
    fault: Fault = "none"
    """none | http500 | http503 | drop (answer lost after the request was processed)."""
    bankid_issue_date: str = "2023-05-17"
    """``completionData.bankIdIssueDate``."""
    completes_as: Annotated[str, Meta(pattern=r"^[0-9]{12}$")] | None = None
    """Report this personal number in ``completionData`` instead (an impostor: tests
    that a relying party checks who approved)."""

    @property
    def full_name(self) -> str:
        """The name BankID reports."""
        return self.name or f"{self.given_name} {self.surname}"


def _default_personas() -> tuple[Persona, ...]:
    return (
        Persona(
            personal_number="199001011239", given_name="Karl", surname="Karlsson",
            outcome="approve",
        ),
        Persona(
            personal_number="191212121212", given_name="Tolvan", surname="Tolvansson",
            outcome="ignore",
        ),
        Persona(
            personal_number="198505051014", given_name="Anna", surname="Andersson",
            outcome="approve", delay=6.0,
        ),
        Persona(
            personal_number="197203152348", given_name="Bertil", surname="Berg",
            outcome="userCancel", delay=4.0,
        ),
        Persona(
            personal_number="199507223452", given_name="Cecilia", surname="Carlsson",
            outcome="certificateErr", delay=2.0,
        ),
    )  # fmt: skip


class SimulatorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``create_simulator`` accepts (documented in README.md)."""

    personas: tuple[Persona, ...] = msgspec.field(default_factory=_default_personas)
    order_lifetime: Annotated[float, Meta(gt=0)] = 180.0
    """Seconds a picked-up order stays pending before ``expiredTransaction``."""
    start_timeout: Annotated[float, Meta(gt=0)] = 30.0
    """Seconds before an order nobody picks up fails ``startFailed``."""
    complete_retention: Annotated[float, Meta(ge=0)] = 180.0
    """Seconds a complete order can still be collected."""
    failed_retention: Annotated[float, Meta(ge=0)] = 300.0
    """Seconds a failed order can still be collected."""
    pki_dir: Annotated[str, Meta(min_length=1)] | None = None
    """Directory that receives ``root.pem`` of the simulator's PKI at start (None: nowhere)."""

    def __post_init__(self) -> None:
        numbers = [p.personal_number for p in self.personas]
        if len(set(numbers)) != len(numbers):
            raise ValueError("personas: each personal_number may appear only once")


class FaultControl(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /control/faults``."""

    personal_number: Annotated[str, Meta(pattern=r"^([0-9]{12}|\*)$")]
    """The person the rule applies to, or ``*`` for every RP API call."""
    fault: Fault = "none"
    """none | http500 | http503 | drop; none with no latency removes the rule."""
    latency: Annotated[float, Meta(ge=0)] = 0.0
    """Seconds added before answering."""
    times: Annotated[int, Meta(ge=1)] | None = None
    """Number of calls the rule applies to; None = until reset."""


# --- state --------------------------------------------------------------------


@dataclass
class _Rule:
    fault: Fault
    latency: float
    remaining: int | None = None


@dataclass
class Order:
    """One order held by the simulator."""

    order_ref: str
    kind: Kind
    personal_number: str | None
    created_at: float
    text: str | None = None
    """userVisibleData as received, decoded to text."""
    call_initiator: str | None = None
    end_user_ip: str | None = None
    text_format: str | None = None
    """userVisibleDataFormat as received (``simpleMarkdownV1`` or None)."""
    visible_data: str | None = None
    non_visible_data: str | None = None
    """userVisibleData / userNonVisibleData exactly as received (base64)."""
    status: Literal["pending", "complete", "failed"] = "pending"
    hint_code: str = "outstandingTransaction"
    finished_at: float | None = None
    completion: CompletionData | None = None
    collects: int = 0


class Reply(NamedTuple):
    """An RP API answer; ``drop`` means close the connection instead."""

    status: int
    body: bytes
    drop: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()


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


def _text_or_base64(value: str | None) -> str | None:
    """Decoded userNonVisibleData when it is UTF-8 text, else the base64 as received."""
    try:
        return _decode_text(value, "userNonVisibleData")
    except ValueError:
        return value


def _check_base64(value: str | None, field: str) -> None:
    if value is None:
        return
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"{field} is not base64") from None


class BankIDSimulator:
    """The simulated upstream: orders, personas, faults and call counters."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.personas = {p.personal_number: p for p in settings.personas}
        self.orders: dict[str, Order] = {}
        self._pending_by_pnr: dict[str, set[str]] = {}
        self._next_sweep = float("-inf")
        self.calls: Counter[str] = Counter()
        self.faults: dict[str, _Rule] = {}
        self.pki = SimulatedPki()
        """Root, issuing CA, signers and OCSP responder: new for every simulator."""
        self.reset()

    def reset(self) -> None:
        """Forget orders, counters and runtime faults; personas' own faults apply again."""
        self.orders.clear()
        self._pending_by_pnr.clear()
        self.calls.clear()
        self.faults = {
            p.personal_number: _Rule(p.fault, p.latency)
            for p in self.settings.personas
            if p.fault != "none" or p.latency
        }

    def set_fault(self, control: FaultControl) -> None:
        """Install (or with fault none and no latency, remove) a fault rule."""
        if control.fault == "none" and not control.latency:
            self.faults.pop(control.personal_number, None)
        else:
            self.faults[control.personal_number] = _Rule(
                control.fault, control.latency, control.times
            )

    # --- the RP API -----------------------------------------------------------

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
        rule = self._rule_for(self._person_of(request))
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
            order = self.orders.get(request.order_ref)
            return order.personal_number if order else None
        if isinstance(request, PhoneAuthRequest | PhoneSignRequest):
            return request.personal_number
        requirement = request.requirement
        return requirement.personal_number if requirement else None

    def _rule_for(self, pnr: str | None) -> _Rule | None:
        key = pnr if pnr is not None and pnr in self.faults else "*"
        rule = self.faults.get(key)
        if rule is not None and rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self.faults[key]
        return rule

    def _auth(self, request: AuthRequest | SignRequest) -> Reply:
        try:
            ipaddress.ip_address(request.end_user_ip)
        except ValueError:
            raise ValueError("endUserIp is not an IP address") from None
        text = _decode_text(request.user_visible_data, "userVisibleData")
        _check_base64(request.user_non_visible_data, "userNonVisibleData")
        pnr = request.requirement.personal_number if request.requirement else None
        kind: Kind = "sign" if isinstance(request, SignRequest) else "auth"
        return self._start(kind, pnr, text, request, end_user_ip=request.end_user_ip)

    def _phone(self, request: PhoneAuthRequest | PhoneSignRequest) -> Reply:
        text = _decode_text(request.user_visible_data, "userVisibleData")
        _check_base64(request.user_non_visible_data, "userNonVisibleData")
        kind: Kind = "phone/sign" if isinstance(request, PhoneSignRequest) else "phone/auth"
        return self._start(
            kind, request.personal_number, text, request, call_initiator=request.call_initiator
        )

    def _start(
        self,
        kind: Kind,
        pnr: str | None,
        text: str | None,
        request: AuthRequest | SignRequest | PhoneAuthRequest | PhoneSignRequest,
        *,
        end_user_ip: str | None = None,
        call_initiator: str | None = None,
    ) -> Reply:
        if pnr is not None and not is_valid(pnr):
            raise ValueError("personalNumber is not a valid personal identity number")
        now = self.clock()
        self._tidy(now)
        if pnr is not None:
            for ref in list(self._pending_by_pnr.get(pnr, ())):
                order = self._current(ref, now)
                if order is not None and order.status == "pending":
                    # BankID aborts both: the running order and the new one.
                    self._finish(order, "failed", "cancelled", now)
                    return _error(400, "alreadyInProgress", "Order already in progress for pno.")
        order = Order(
            order_ref=str(uuid.uuid4()),
            kind=kind,
            personal_number=pnr,
            created_at=now,
            text=text,
            call_initiator=call_initiator,
            end_user_ip=end_user_ip,
            text_format=request.user_visible_data_format,
            visible_data=request.user_visible_data,
            non_visible_data=request.user_non_visible_data,
        )
        self.orders[order.order_ref] = order
        if pnr is not None:
            self._pending_by_pnr.setdefault(pnr, set()).add(order.order_ref)
        if kind.startswith("phone/"):
            return _ok(OrderResponse(order_ref=order.order_ref))
        return _ok(
            OrderResponse(
                order_ref=order.order_ref,
                auto_start_token=str(uuid.uuid4()),
                qr_start_token=str(uuid.uuid4()),
                qr_start_secret=str(uuid.uuid4()),
            )
        )

    def _collect(self, request: OrderRef) -> Reply:
        now = self.clock()
        self._tidy(now)
        order = self._current(request.order_ref, now)
        if order is None:
            raise ValueError("No such order.")
        if order.status == "pending":
            order.hint_code = self._pending_hint(order)
            order.collects += 1
        return _ok(
            CollectResponse(
                order_ref=order.order_ref,
                status=order.status,
                hint_code=None if order.status == "complete" else order.hint_code,
                completion_data=order.completion,
            )
        )

    def _cancel(self, request: OrderRef) -> Reply:
        now = self.clock()
        self._tidy(now)
        order = self._current(request.order_ref, now)
        if order is None or order.status != "pending":
            raise ValueError("No such pending order.")
        self._unindex(order)
        del self.orders[order.order_ref]
        return _ok({})

    # --- order life -----------------------------------------------------------

    def _housekeeping(self, now: float) -> None:
        """Apply due transitions and forget orders whose collect window has passed."""
        for order in list(self.orders.values()):
            self._advance(order, now)
            if self._expired(order, now):
                del self.orders[order.order_ref]
        self._next_sweep = now + _SWEEP_EVERY

    def _tidy(self, now: float) -> None:
        """The sweep of ``_housekeeping``, at most once per ``_SWEEP_EVERY``."""
        if now >= self._next_sweep:
            self._housekeeping(now)

    def _current(self, order_ref: str, now: float) -> Order | None:
        """The order brought up to ``now``; None when unknown or past its retention."""
        order = self.orders.get(order_ref)
        if order is None:
            return None
        self._advance(order, now)
        if self._expired(order, now):
            del self.orders[order_ref]
            return None
        return order

    def _expired(self, order: Order, now: float) -> bool:
        if order.finished_at is None:
            return False
        keep = (
            self.settings.complete_retention
            if order.status == "complete"
            else self.settings.failed_retention
        )
        return now >= order.finished_at + keep

    def _unindex(self, order: Order) -> None:
        refs = self._pending_by_pnr.get(order.personal_number or "")
        if refs is not None:
            refs.discard(order.order_ref)
            if not refs:
                del self._pending_by_pnr[order.personal_number or ""]

    def _advance(self, order: Order, now: float) -> None:
        if order.status != "pending":
            return
        persona = self.personas.get(order.personal_number or "")
        if persona is None:
            deadline = order.created_at + self.settings.start_timeout
            if now >= deadline:
                self._finish(order, "failed", "startFailed", deadline)
            return
        expiry = order.created_at + self.settings.order_lifetime
        due = order.created_at + persona.delay
        if persona.outcome != "ignore" and due < expiry and now >= due:
            self._apply(order, persona.outcome, due)
        elif now >= expiry:
            self._finish(order, "failed", "expiredTransaction", expiry)

    def _apply(self, order: Order, outcome: str, at: float) -> None:
        if outcome == "approve":
            self._complete(order, at)
        elif outcome == "deny":
            self._finish(order, "failed", "userCancel", at)
        else:
            self._finish(order, "failed", outcome, at)

    def _finish(
        self, order: Order, status: Literal["complete", "failed"], hint: str, at: float
    ) -> None:
        if order.status == "pending":
            self._unindex(order)
        order.status = status
        order.hint_code = hint
        order.finished_at = at

    def _complete(self, order: Order, at: float) -> None:
        pnr = order.personal_number or "190001019999"
        persona = self.personas.get(pnr)
        if persona is not None and persona.completes_as is not None:
            pnr = persona.completes_as
        user = User(
            personal_number=pnr,
            name=persona.full_name if persona else "Test Person",
            given_name=persona.given_name if persona else "Test",
            surname=persona.surname if persona else "Person",
        )
        func = "Signing" if order.kind.endswith("sign") else "Identification"
        signer = self.pki.signer(pnr, user.name)
        signature = self.pki.signature(
            signer, order.visible_data or "", order.non_visible_data, func
        )
        order.completion = CompletionData(
            user=user,
            device=Device(
                ip_address=order.end_user_ip or "192.0.2.10",
                uhi=hashlib.sha256(f"uhi:{pnr}".encode()).hexdigest()[:40],
            ),
            bank_id_issue_date=persona.bankid_issue_date if persona else "2023-05-17",
            signature=base64.b64encode(signature).decode(),
            ocsp_response=base64.b64encode(self.pki.ocsp_response(signer.cert)).decode(),
        )
        self._finish(order, "complete", "", at)

    def _pending_hint(self, order: Order) -> str:
        persona = self.personas.get(order.personal_number or "")
        if persona is None:
            return "outstandingTransaction"
        hints = persona.hints or _DEFAULT_HINTS[order.kind]
        return hints[min(order.collects, len(hints) - 1)]

    # --- the phone --------------------------------------------------------------

    def pending(self, pnr: str) -> list[Order]:
        """The person's pending orders, oldest first."""
        self._housekeeping(self.clock())
        return [
            o for o in self.orders.values() if o.personal_number == pnr and o.status == "pending"
        ]

    def decide(self, pnr: str, order_ref: str, *, approve: bool) -> bool:
        """Approve (complete) or deny (userCancel) a pending order; False if it is not pending."""
        now = self.clock()
        self._housekeeping(now)
        order = self.orders.get(order_ref)
        if order is None or order.personal_number != pnr or order.status != "pending":
            return False
        if approve:
            self._complete(order, now)
        else:
            self._finish(order, "failed", "userCancel", now)
        return True

    def people(self) -> list[PersonRow]:
        """Personas and other numbers with pending orders, for the phone index."""
        self._housekeeping(self.clock())
        counts = Counter(
            o.personal_number
            for o in self.orders.values()
            if o.status == "pending" and o.personal_number
        )
        rows = [
            PersonRow(p.personal_number, p.full_name, _behaviour(p), counts[p.personal_number])
            for p in self.settings.personas
        ]
        rows += [
            PersonRow(
                pnr, "Unknown person (no BankID)", "no persona: startFailed after the timeout", n
            )
            for pnr, n in sorted(counts.items())
            if pnr not in self.personas
        ]
        return rows

    def stats(self) -> dict[str, Any]:
        """Call counters and orders, for tests and curious humans."""
        self._housekeeping(self.clock())
        return {
            "calls": dict(self.calls),
            "orders": [
                {
                    "orderRef": o.order_ref,
                    "kind": o.kind,
                    "personalNumber": o.personal_number,
                    "status": o.status,
                    "hintCode": o.hint_code,
                    "text": o.text,
                    "textFormat": o.text_format,
                    "nonVisibleData": _text_or_base64(o.non_visible_data),
                }
                for o in self.orders.values()
            ],
        }


def _behaviour(persona: Persona) -> str:
    if persona.outcome == "ignore":
        what = "waits for you to decide here"
    elif persona.outcome == "approve":
        what = "approves"
    elif persona.outcome == "deny":
        what = "denies (userCancel)"
    else:
        what = f"fails ({persona.outcome})"
    if persona.outcome != "ignore":
        what += f" after {persona.delay:g} s" if persona.delay else " at once"
    if persona.fault != "none":
        what += f", fault {persona.fault}"
    return what


_HANDLERS: Mapping[str, tuple[type, Callable[[BankIDSimulator, Any], Reply]]] = {
    "auth": (AuthRequest, BankIDSimulator._auth),
    "sign": (SignRequest, BankIDSimulator._auth),
    "phone/auth": (PhoneAuthRequest, BankIDSimulator._phone),
    "phone/sign": (PhoneSignRequest, BankIDSimulator._phone),
    "collect": (OrderRef, BankIDSimulator._collect),
    "cancel": (OrderRef, BankIDSimulator._cancel),
}
