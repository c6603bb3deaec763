"""The behaviour of the Freja eID simulator, without HTTP framework: personas, timing, faults.

``FrejaSimulator.handle(operation, method, body)`` answers one RP API call the way
Freja does (UPSTREAMS.md section 2); the Litestar app in ``simulator.py`` only moves
bytes. Statuses are worked out lazily from the injected clock, so tests move time
by hand instead of sleeping. Choices where Freja's behaviour is not documented are
marked "simulator choice" here and in README.md.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from ciba_gateway.connector import decode_json
from ciba_gateway_freja.signing import SigningMaterial, b64url, generate, unsigned_token
from ciba_gateway_freja.wire import (
    ATTRIBUTES,
    ERROR_MESSAGES,
    FINAL_STATUSES,
    LEVELS,
    PARAMETERS,
    AuthRefRequest,
    BodyError,
    Level,
    Operation,
    ResultsRequest,
    SignRefRequest,
    decode_body,
    decode_ssn_user_info,
    level_rank,
)

__all__ = [
    "DEFAULT_PERSONAS",
    "Auth",
    "Fault",
    "FaultControl",
    "FrejaSimulator",
    "PendingView",
    "Persona",
    "PersonaAttributes",
    "Reply",
    "SimulatorSettings",
    "persona_upi",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

NETWORK_FAULTS: Final = frozenset({"http500", "http503", "drop"})
JWS_FAULTS: Final = frozenset(
    {
        "tamper_payload",
        "wrong_key",
        "alg_none",
        "alg_hs256",
        "other_auth_ref",
        "stale_timestamp",
        "unsigned_attributes",
        "other_user",
    }
)
FaultKind = Literal[
    "none",
    "http500",
    "http503",
    "drop",
    "tamper_payload",
    "wrong_key",
    "alg_none",
    "alg_hs256",
    "other_auth_ref",
    "stale_timestamp",
    "unsigned_attributes",
    "other_user",
]
Seconds = Annotated[float, Meta(ge=0, le=86400)]
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PHONE = re.compile(r"\+?[0-9]{6,15}")
_LOA = {"BASIC": "LOA1", "EXTENDED": "LOA2", "PLUS": "LOA3"}
_MALLORY = {"name": "Mallory", "surname": "Attacker"}
_MALLORY_SSN = {"country": "SE", "ssn": "197001019876"}


def _other_user(user_info: Any) -> Any:
    """Another person's ``userInfo`` in the same shape (an SSN object or JSON string)."""
    if isinstance(user_info, dict):
        return _MALLORY_SSN
    if isinstance(user_info, str) and user_info.startswith("{"):
        return msgspec.json.encode(_MALLORY_SSN).decode()
    return "mallory@example.com" if "@" in str(user_info) else "+46700000666"


# --- settings -----------------------------------------------------------------------


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A fault rule: what goes wrong, on which operations, how many times."""

    kind: FaultKind = "none"
    latency: Seconds = 0.0
    """Seconds added before answering each matching call."""
    endpoints: tuple[Operation, ...] = ()
    """Operations it applies to; empty means all."""
    times: Annotated[int, Meta(ge=1)] | None = None
    """How many calls (JWS kinds: approved results) it affects; None means every one."""


class FaultControl(Fault, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /control/faults``: a Fault for one persona (its ``user_info``) or ``*``."""

    user: str = "*"


class PersonaAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What Freja knows about a persona (identity parts need EXTENDED or PLUS)."""

    name: str | None = None
    """Given name (Freja's ``basicUserInfo.name``)."""
    surname: str | None = None
    email: str | None = None
    phone: str | None = None
    date_of_birth: Annotated[str, Meta(pattern=_DATE)] | None = None
    ssn: Annotated[str, Meta(pattern=r"^[0-9]{6,14}$")] | None = None
    """The national id of a persona looked up by email or phone (country: ``country``)."""
    gender: Literal["MALE", "FEMALE", "UNSPECIFIED"] | None = None
    upi: str | None = None
    """Unique personal identifier; derived from ``user_info`` when absent."""
    relying_party_user_id: str | None = None
    """Derived from ``user_info`` when absent."""


class Persona(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A scripted Freja eID user."""

    user_info_type: Literal["SSN", "EMAIL", "PHONE"] = "SSN"
    user_info: Annotated[str, Meta(min_length=1, max_length=256)]
    """SSN digits, email address or phone number (E.164)."""
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] = "SE"
    outcome: Literal["approve", "reject", "cancel", "ignore"] = "ignore"
    delay: Seconds = 0.0
    """Seconds after the start before the outcome happens."""
    registration_level: Level = "EXTENDED"
    attributes: PersonaAttributes = msgspec.field(default_factory=PersonaAttributes)
    service_disabled: bool = False
    """The person has turned our service off: initAuthentication answers 1005."""
    fault: Fault | None = None

    def __post_init__(self) -> None:
        if self.user_info_type == "SSN" and not (
            self.user_info.isascii() and self.user_info.isdigit()
        ):
            raise ValueError("an SSN persona's user_info must be digits")
        if self.user_info_type == "EMAIL" and "@" not in self.user_info:
            raise ValueError("an EMAIL persona's user_info must be an email address")
        if self.user_info_type == "PHONE" and not _PHONE.fullmatch(self.user_info):
            raise ValueError("a PHONE persona's user_info must be a phone number (+46...)")

    @property
    def ssn(self) -> str | None:
        """The persona's national id, if it has one."""
        return self.user_info if self.user_info_type == "SSN" else self.attributes.ssn

    @property
    def email(self) -> str | None:
        """The persona's email address, if any."""
        return self.user_info if self.user_info_type == "EMAIL" else self.attributes.email

    @property
    def phone(self) -> str | None:
        """The persona's phone number, if any."""
        return self.user_info if self.user_info_type == "PHONE" else self.attributes.phone

    @property
    def label(self) -> str:
        """A name for pages: the full name, else ``user_info``."""
        parts = [p for p in (self.attributes.name, self.attributes.surname) if p]
        return " ".join(parts) or self.user_info


DEFAULT_PERSONAS: Final[tuple[Persona, ...]] = (
    Persona(
        user_info="199001011239",
        outcome="approve",
        delay=4,
        registration_level="PLUS",
        attributes=PersonaAttributes(
            name="Karl",
            surname="Karlsson",
            email="karl.karlsson@example.com",
            phone="+46701234567",
            date_of_birth="1990-01-01",
        ),
    ),
    Persona(
        user_info="191212121212",
        registration_level="EXTENDED",
        attributes=PersonaAttributes(
            name="Tolvan", surname="Tolvansson", date_of_birth="1912-12-12"
        ),
    ),
    Persona(
        user_info_type="EMAIL",
        user_info="anna.andersson@example.com",
        outcome="approve",
        delay=3,
        attributes=PersonaAttributes(
            name="Anna", surname="Andersson", ssn="198505051014", date_of_birth="1985-05-05"
        ),
    ),
    Persona(
        user_info_type="PHONE",
        user_info="+46709876543",
        outcome="approve",
        delay=3,
        registration_level="BASIC",
        attributes=PersonaAttributes(email="basic.bengt@example.com"),
    ),
    Persona(
        user_info="198112289874",
        outcome="cancel",
        delay=3,
        attributes=PersonaAttributes(name="Nils", surname="Nej", date_of_birth="1981-12-28"),
    ),
)


class SimulatorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The simulator's settings (``simulators: [{type: freja, settings: ...}]``)."""

    personas: tuple[Persona, ...] = DEFAULT_PERSONAS
    auth_lifetime: Annotated[float, Meta(gt=0, le=86400)] = 120.0
    """Seconds the user has to answer before EXPIRED (Freja: 2 minutes)."""
    delivery_delay: Seconds = 1.0
    """Seconds an authentication is STARTED before DELIVERED_TO_MOBILE."""
    rejection_cooldown: Seconds = 30.0
    """After two concurrent starts for one user, seconds in which a start answers 2000."""
    result_retention: Annotated[float, Meta(gt=0, le=86400)] = 600.0
    """Seconds a final result stays readable; then its authRef answers 1100."""
    details_user_info: Literal["string", "object"] = "string"
    """How the signed payload carries an SSN ``userInfo``: a JSON string or an object."""
    relying_party_ids: tuple[str, ...] = ()
    """Accepted ``relyingPartyId`` values; empty accepts any."""
    key_dir: str | None = None
    """Directory holding ``key.pem`` + ``cert.pem``, written on first start."""
    signing_key_file: str | None = None
    signing_cert_file: str | None = None

    def __post_init__(self) -> None:
        if (self.signing_key_file is None) != (self.signing_cert_file is None):
            raise ValueError("signing_key_file and signing_cert_file go together")
        if self.key_dir is not None and self.signing_key_file is not None:
            raise ValueError("use key_dir or signing_key_file/signing_cert_file, not both")
        keys = [_persona_key(p.user_info_type, p.user_info, p.country) for p in self.personas]
        if len(set(keys)) != len(keys):
            raise ValueError("two personas have the same user_info")


# --- runtime state ---------------------------------------------------------------------


@dataclass
class Auth:
    """One authentication the simulator holds."""

    auth_ref: str
    persona: Persona
    user_info_type: str
    user_info: str
    """As received (for SSN: the base64 JSON)."""
    min_level: Level
    attributes: tuple[str, ...]
    relying_party_id: str | None
    created_at: float
    status: str = "STARTED"
    ended_at: float | None = None
    payload: dict[str, Any] | None = None
    """The signed payload of an APPROVED result."""
    sign_text: str | None = None
    """A signature request: the text the person is asked to sign (exactly as received)."""
    sign_title: str | None = None

    @property
    def ref_key(self) -> str:
        """``signRef`` for a signature, ``authRef`` for an authentication."""
        return "authRef" if self.sign_text is None else "signRef"


@dataclass
class _Rule:
    target: str
    fault: Fault
    remaining: int | None


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, JSON body, or a dropped connection."""

    status: int
    body: bytes = b"{}"
    media_type: str = "application/json"
    drop: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True)
class PendingView:
    """An authentication waiting on a person's phone."""

    auth_ref: str
    label: str
    user_info: str
    user_info_type: str
    required_level: str
    persona_level: str
    can_approve: bool
    seconds_left: int
    relying_party_id: str | None
    sign_text: str | None = None
    sign_title: str | None = None


class _Refusal(Exception):
    def __init__(self, code: int, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


def _error(code: int, status: int) -> Reply:
    return Reply(status, msgspec.json.encode({"code": code, "message": ERROR_MESSAGES[code]}))


def _persona_key(user_info_type: str, value: str, country: str = "SE") -> tuple[str, str]:
    if user_info_type == "SSN":
        return ("SSN", f"{country}:{value}")
    if user_info_type == "EMAIL":
        return ("EMAIL", value.casefold())
    return (user_info_type, value)


def _derived(persona: Persona, purpose: str) -> str:
    return hashlib.sha256(f"{purpose}:{persona.user_info}".encode()).hexdigest()


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


@dataclass
class _InitRequest:
    user_info_type: str
    user_info: str
    key: tuple[str, str]
    min_level: Level
    attributes: tuple[str, ...]


class FrejaSimulator:
    """The state and rules of a simulated Freja eID authentication service."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        signing: SigningMaterial,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.settings = settings
        self.signing = signing
        self.clock = clock
        self._sleep = sleep
        self.personas: dict[tuple[str, str], Persona] = {}
        for persona in settings.personas:
            for key in self._keys_of(persona):
                self.personas.setdefault(key, persona)
        self.auths: dict[str, Auth] = {}
        self.calls: Counter[str] = Counter()
        self.received: deque[dict[str, Any]] = deque(maxlen=500)
        """Decoded requests, newest last: ``{"operation", "request", "relyingPartyId"}``."""
        self._rules: list[_Rule] = []
        self._cooldown: dict[str, float] = {}
        self._other_key: SigningMaterial | None = None
        self.reset()

    @staticmethod
    def _keys_of(persona: Persona) -> list[tuple[str, str]]:
        keys = [_persona_key(persona.user_info_type, persona.user_info, persona.country)]
        if persona.ssn:
            keys.append(_persona_key("SSN", persona.ssn, persona.country))
        if persona.email:
            keys.append(_persona_key("EMAIL", persona.email))
        if persona.phone:
            keys.append(_persona_key("PHONE", persona.phone))
        keys.append(("UPI", persona.attributes.upi or persona_upi(persona)))
        return keys

    # --- controls ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget authentications, counters, cooldowns and runtime faults."""
        self.auths.clear()
        self.calls.clear()
        self.received.clear()
        self._cooldown.clear()
        self._rules = [
            _Rule(p.user_info, p.fault, p.fault.times)
            for p in self.settings.personas
            if p.fault is not None
        ]

    def set_fault(self, control: FaultControl) -> None:
        """Add a runtime fault rule ahead of the others; ``kind: none`` without latency clears."""
        self._rules = [r for r in self._rules if r.target != control.user]
        if control.kind == "none" and control.latency == 0:
            return
        fault = Fault(
            kind=control.kind,
            latency=control.latency,
            endpoints=control.endpoints,
            times=control.times,
        )
        self._rules.insert(0, _Rule(control.user, fault, control.times))

    def stats(self) -> dict[str, Any]:
        """Calls per operation, the requests received and the authentications held."""
        now = self.clock()
        for auth in self.auths.values():
            self._advance(auth, now)
        return {
            "calls": dict(self.calls),
            "received": list(self.received),
            "auths": [
                {
                    a.ref_key: a.auth_ref,
                    "status": a.status,
                    "user": a.persona.user_info,
                    "text": a.sign_text,
                }
                for a in self.auths.values()
            ],
            "x5t": self.signing.x5t,
        }

    # --- the phone ---------------------------------------------------------------

    def pending(self) -> list[PendingView]:
        """Authentications waiting for an answer, oldest first."""
        now = self.clock()
        views = []
        for auth in self.auths.values():
            self._advance(auth, now)
            if auth.status in FINAL_STATUSES:
                continue
            views.append(
                PendingView(
                    auth_ref=auth.auth_ref,
                    label=auth.persona.label,
                    user_info=auth.persona.user_info,
                    user_info_type=auth.persona.user_info_type,
                    required_level=auth.min_level,
                    persona_level=auth.persona.registration_level,
                    can_approve=self._can_act(auth),
                    seconds_left=max(0, int(auth.created_at + self.settings.auth_lifetime - now)),
                    relying_party_id=auth.relying_party_id,
                    sign_text=auth.sign_text,
                    sign_title=auth.sign_title,
                )
            )
        return views

    def decide(self, auth_ref: str, *, approve: bool) -> bool:
        """The person approves or rejects in the app; False when that is not possible now."""
        auth = self.auths.get(auth_ref)
        if auth is None:
            return False
        now = self.clock()
        self._advance(auth, now)
        if auth.status in FINAL_STATUSES or (approve and not self._can_act(auth)):
            return False
        self._settle(auth, "APPROVED" if approve else "CANCELED", now)
        return True

    # --- the RP API ----------------------------------------------------------------

    async def handle(self, operation: str, method: str, body: bytes) -> Reply:
        """Answer one call of ``/authentication/1.0/<operation>``."""
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
        except _Refusal as refusal:
            return _error(refusal.code, refusal.status)
        fault = self._network_fault(op, target)
        if fault is not None and fault.latency:
            await self._sleep(fault.latency)
        if fault is not None and fault.kind == "http500":
            return _error(0, 500)
        if fault is not None and fault.kind == "http503":
            return Reply(503, b"Service Unavailable", media_type="text/plain; charset=utf-8")
        try:
            reply = self._process(op, request, relying_party_id)
        except _Refusal as refusal:
            reply = _error(refusal.code, refusal.status)
        if fault is not None and fault.kind == "drop":
            return Reply(200, reply.body, drop=True)
        return reply

    def _parse(self, op: Operation, body: bytes) -> tuple[dict[str, Any], str | None]:
        try:
            parsed = decode_body(body)
        except BodyError:
            raise _Refusal(1000) from None
        if parsed.parameter != PARAMETERS[op]:
            raise _Refusal(1000)
        try:
            request = decode_json(parsed.json)
        except msgspec.DecodeError:
            raise _Refusal(1010) from None
        if not isinstance(request, dict):
            raise _Refusal(1010)
        if self.settings.relying_party_ids and parsed.relying_party_id is not None:
            if parsed.relying_party_id not in self.settings.relying_party_ids:
                raise _Refusal(1011)
        self.received.append(
            {"operation": op, "request": request, "relyingPartyId": parsed.relying_party_id}
        )
        return request, parsed.relying_party_id

    def _target(self, op: Operation, request: dict[str, Any]) -> str | None:
        """The persona (``user_info``) a call concerns, for per-persona faults."""
        if op in ("initAuthentication", "initSignature"):
            try:
                init = self._init_request(_auth_part(request))
            except _Refusal:
                return None
            persona = self.personas.get(init.key)
            return persona.user_info if persona else None
        auth = self.auths.get(str(request.get("signRef" if op in _SIGN_OPS else "authRef")))
        return auth.persona.user_info if auth else None

    def _matching(self, op: Operation, target: str | None, kinds: frozenset[str]) -> _Rule | None:
        for rule in self._rules:
            if rule.target not in ("*", target):
                continue
            if rule.fault.endpoints and op not in rule.fault.endpoints:
                continue
            if rule.fault.kind in kinds:
                return rule
        return None

    def _consume(self, rule: _Rule) -> None:
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                self._rules.remove(rule)

    def _network_fault(self, op: Operation, target: str | None) -> Fault | None:
        rule = self._matching(op, target, NETWORK_FAULTS | {"none"})
        if rule is None:
            latency = self._matching(op, target, JWS_FAULTS)
            return latency.fault if latency is not None and latency.fault.latency else None
        self._consume(rule)
        return rule.fault

    def _process(
        self, op: Operation, request: dict[str, Any], relying_party_id: str | None
    ) -> Reply:
        if op == "initAuthentication":
            return self._init(request, relying_party_id)
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
            raise _Refusal(1000) from None
        auth = self._live(auth_ref)
        if signing != (auth.sign_text is not None):
            raise _Refusal(1100, 422)  # a signRef on the authentication API, or the reverse
        if op in ("cancel", "cancelSignature"):
            if auth.status in FINAL_STATUSES:
                # Simulator choice: an authentication that already ended cannot be cancelled.
                raise _Refusal(1100, 422)
            self._settle(auth, "RP_CANCELED", self.clock())
            return Reply(200, b"{}")
        return Reply(200, msgspec.json.encode(self._render(op, auth)))

    def _live(self, auth_ref: str) -> Auth:
        now = self.clock()
        auth = self.auths.get(auth_ref)
        if auth is None:
            raise _Refusal(1100, 422)
        self._advance(auth, now)
        if auth.ended_at is not None and now > auth.ended_at + self.settings.result_retention:
            raise _Refusal(1100, 422)
        return auth

    # --- initAuthentication -------------------------------------------------------

    def _init_request(self, request: dict[str, Any]) -> _InitRequest:
        if not set(request) <= _INIT_FIELDS:
            raise _Refusal(1000)
        user_info_type = request.get("userInfoType")
        if user_info_type not in ("SSN", "EMAIL", "PHONE", "UPI"):
            # INFERRED (QR code) and ORG_ID (org-ID service) are not simulated.
            raise _Refusal(1001)
        user_info = request.get("userInfo")
        if not isinstance(user_info, str) or not 0 < len(user_info) <= 256:
            raise _Refusal(1002)
        if user_info_type == "SSN":
            try:
                country, ssn = decode_ssn_user_info(user_info)
            except ValueError:
                raise _Refusal(1002) from None
            if not (ssn.isascii() and ssn.isdigit() and re.fullmatch(r"[A-Z]{2}", country)):
                raise _Refusal(1002)
            key = _persona_key("SSN", ssn, country)
        elif user_info_type == "EMAIL":
            if "@" not in user_info:
                raise _Refusal(1002)
            key = _persona_key("EMAIL", user_info)
        elif user_info_type == "PHONE":
            if not _PHONE.fullmatch(user_info):
                raise _Refusal(1002)
            key = _persona_key("PHONE", user_info)
        else:
            key = ("UPI", user_info)
        level = request.get("minRegistrationLevel", "BASIC")
        if level not in LEVELS:
            raise _Refusal(1007)
        attributes = request.get("attributesToReturn", [])
        if not isinstance(attributes, list) or not all(
            isinstance(a, dict) and set(a) == {"attribute"} and a["attribute"] in ATTRIBUTES
            for a in attributes
        ):
            raise _Refusal(2002)
        method = request.get("userConfirmationMethod", "DEFAULT")
        if method not in ("DEFAULT", "DEFAULT_AND_FACE"):
            raise _Refusal(1000)
        return _InitRequest(
            user_info_type=user_info_type,
            user_info=user_info,
            key=key,
            min_level=level,
            attributes=tuple(a["attribute"] for a in attributes),
        )

    def _init_sign(self, request: dict[str, Any], relying_party_id: str | None) -> Reply:
        """initSignature: a SIMPLE signature of SIMPLE_UTF8_TEXT (UPSTREAMS.md 2.7)."""
        if request.get("dataToSignType") != "SIMPLE_UTF8_TEXT":
            raise _Refusal(1000)  # EXTENDED_UTF8_TEXT (binary data) is not simulated
        if request.get("signatureType") != "SIMPLE":
            raise _Refusal(1000)
        data = request.get("dataToSign")
        if not isinstance(data, dict) or set(data) != {"text"} or not isinstance(data["text"], str):
            raise _Refusal(1000)
        try:
            text = base64.b64decode(data["text"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _Refusal(1000) from None
        title = request.get("title")
        expiry = request.get("expiry")
        if title is not None and not isinstance(title, str):
            raise _Refusal(1000)
        if expiry is not None and (
            not isinstance(expiry, int) or expiry < (self.clock() + 119) * 1000
        ):
            raise _Refusal(1000)  # simulator choice: below Freja's 2-minute minimum
        return self._init(_auth_part(request), relying_party_id, sign_text=text, sign_title=title)

    def _init(
        self,
        request: dict[str, Any],
        relying_party_id: str | None,
        *,
        sign_text: str | None = None,
        sign_title: str | None = None,
    ) -> Reply:
        init = self._init_request(request)
        persona = self.personas.get(init.key)
        if persona is None:
            raise _Refusal(1012, 422)
        if persona.service_disabled:
            raise _Refusal(1005, 422)
        now = self.clock()
        user = persona.user_info
        if now < self._cooldown.get(user, float("-inf")):
            raise _Refusal(2000, 422)
        auth = Auth(
            auth_ref=secrets.token_urlsafe(24),
            persona=persona,
            user_info_type=init.user_info_type,
            user_info=init.user_info,
            min_level=init.min_level,
            attributes=init.attributes,
            relying_party_id=relying_party_id,
            created_at=now,
            sign_text=sign_text,
            sign_title=sign_title,
        )
        active = [a for a in self.auths.values() if a.persona is persona]
        for other in active:
            self._advance(other, now)
        active = [a for a in active if a.status not in FINAL_STATUSES]
        if active:
            # Freja: one active authentication per user; a second cancels both. Simulator
            # choice: both end REJECTED and starts answer 2000 for rejection_cooldown.
            for other in active:
                self._settle(other, "REJECTED", now)
            self._settle(auth, "REJECTED", now)
            self._cooldown[user] = now + self.settings.rejection_cooldown
        self.auths[auth.auth_ref] = auth
        return Reply(200, msgspec.json.encode({auth.ref_key: auth.auth_ref}))

    # --- results ----------------------------------------------------------------------

    def _results(self, request: dict[str, Any], relying_party_id: str | None) -> Reply:
        try:
            include = msgspec.convert(request, ResultsRequest).include_previous
        except msgspec.ValidationError:
            raise _Refusal(1200) from None
        if include != "ALL":
            raise _Refusal(1200)
        now = self.clock()
        results = []
        for auth in self.auths.values():
            self._advance(auth, now)
            if auth.relying_party_id != relying_party_id:
                continue
            if auth.ended_at is not None and now > auth.ended_at + self.settings.result_retention:
                continue
            results.append(self._render("getResults", auth))
        return Reply(200, msgspec.json.encode({"authenticationResults": results}))

    def _can_act(self, auth: Auth) -> bool:
        # Freja: minRegistrationLevel is the level needed to approve. Simulator choice:
        # a person below it cannot approve, so the request waits until it expires.
        return level_rank(auth.persona.registration_level) >= level_rank(auth.min_level)

    def _advance(self, auth: Auth, now: float) -> None:
        """Bring ``auth`` up to ``now``: scripted outcome, delivery, expiry."""
        if auth.status in FINAL_STATUSES:
            return
        persona = auth.persona
        expires_at = auth.created_at + self.settings.auth_lifetime
        if persona.outcome != "ignore" and (persona.outcome != "approve" or self._can_act(auth)):
            at = auth.created_at + persona.delay
            if at < expires_at and now >= at:
                status = {"approve": "APPROVED", "reject": "REJECTED", "cancel": "CANCELED"}
                self._settle(auth, status[persona.outcome], at)
                return
        if now >= expires_at:
            self._settle(auth, "EXPIRED", expires_at)
        elif now >= auth.created_at + self.settings.delivery_delay:
            auth.status = "DELIVERED_TO_MOBILE"

    def _settle(self, auth: Auth, status: str, at: float) -> None:
        auth.status = status
        auth.ended_at = at
        if status == "APPROVED":
            auth.payload = self._payload(auth, at)

    def _payload(self, auth: Auth, at: float) -> dict[str, Any]:
        user_info: Any = auth.user_info
        if auth.user_info_type == "SSN":
            country, ssn = decode_ssn_user_info(auth.user_info)
            value = {"country": country, "ssn": ssn}
            if self.settings.details_user_info == "string":
                user_info = msgspec.json.encode(value).decode()
            else:
                user_info = value
        payload = {
            auth.ref_key: auth.auth_ref,
            "status": "APPROVED",
            "userInfoType": auth.user_info_type,
            "userInfo": user_info,
            "minRegistrationLevel": auth.min_level,
            "requestedAttributes": self._attributes(auth, at),
            "timestamp": int(at * 1000),
        }
        if auth.sign_text is not None:
            # Simulator choice: the "user's" signature is a JWS over the text by the
            # simulator's own key; Freja signs with the user's key and adds OCSP data.
            user_signature = self.signing.sign(
                auth.sign_text.encode(), {"alg": "RS256", "x5t": self.signing.x5t}
            )
            payload["signatureType"] = "SIMPLE"
            payload["signatureData"] = {
                "userSignature": user_signature,
                "certificateStatus": base64.b64encode(b"simulated OCSP").decode(),
            }
        return payload

    def _attributes(self, auth: Auth, at: float) -> dict[str, Any]:
        """``requestedAttributes``: what was asked for and the persona has.

        Simulator choice: a BASIC persona has no verified identity, so names, SSN, date
        of birth, age and gender are left out for it.
        """
        persona, info = auth.persona, auth.persona.attributes
        identified = persona.registration_level != "BASIC"
        out: dict[str, Any] = {}
        for name in auth.attributes:
            if name == "BASIC_USER_INFO" and identified and (info.name or info.surname):
                out["basicUserInfo"] = {"name": info.name or "", "surname": info.surname or ""}
            elif name == "EMAIL_ADDRESS" and persona.email:
                out["emailAddress"] = persona.email
            elif name == "ALL_EMAIL_ADDRESSES" and persona.email:
                out["allEmailAddresses"] = [{"emailAddress": persona.email}]
            elif name == "ALL_PHONE_NUMBERS" and persona.phone:
                out["allPhoneNumbers"] = [{"phoneNumber": persona.phone}]
            elif name == "DATE_OF_BIRTH" and identified and info.date_of_birth:
                out["dateOfBirth"] = info.date_of_birth
            elif name == "AGE" and identified and info.date_of_birth:
                out["age"] = _age(info.date_of_birth, at)
            elif name == "SSN" and identified and persona.ssn:
                out["ssn"] = {"ssn": persona.ssn, "country": persona.country}
            elif name == "GENDER" and identified and info.gender:
                out["gender"] = info.gender
            elif name == "REGISTRATION_LEVEL":
                out["registrationLevel"] = persona.registration_level
            elif name == "LOA_LEVEL":
                out["loaLevel"] = _LOA[persona.registration_level]
            elif name == "RELYING_PARTY_USER_ID":
                out["relyingPartyUserId"] = info.relying_party_user_id or _derived(
                    persona, "rp-user-id"
                )
            elif name == "UNIQUE_PERSONAL_IDENTIFIER":
                out["uniquePersonalIdentifier"] = info.upi or persona_upi(persona)
        return out

    def _render(self, op: Operation, auth: Auth) -> dict[str, Any]:
        result: dict[str, Any] = {auth.ref_key: auth.auth_ref, "status": auth.status}
        if auth.status != "APPROVED" or auth.payload is None:
            return result
        rule = self._matching(op, auth.persona.user_info, JWS_FAULTS)
        kind = None
        if rule is not None:
            kind = rule.fault.kind
            self._consume(rule)
        payload = auth.payload
        result["details"] = self._details(payload, kind)
        attributes = payload["requestedAttributes"]
        if kind == "unsigned_attributes":
            attributes = {**attributes, "basicUserInfo": _MALLORY}
        result["requestedAttributes"] = attributes
        return result

    def _details(self, payload: dict[str, Any], kind: str | None) -> str:
        """The ``details`` JWS: signed properly, or forged the way ``kind`` says."""
        header = {"x5t": self.signing.x5t, "alg": "RS256"}
        if kind == "other_auth_ref":
            ref_key = "signRef" if "signRef" in payload else "authRef"
            payload = {**payload, ref_key: secrets.token_urlsafe(24)}
        elif kind == "stale_timestamp":
            payload = {**payload, "timestamp": payload["timestamp"] - 3_600_000}
        elif kind == "other_user":
            payload = {**payload, "userInfo": _other_user(payload["userInfo"])}
        data = msgspec.json.encode(payload)
        if kind == "alg_none":
            return unsigned_token({"x5t": self.signing.x5t, "alg": "none"}, data)
        if kind == "alg_hs256":
            # Key confusion: HMAC keyed with the public certificate a verifier holds.
            forged = {"x5t": self.signing.x5t, "alg": "HS256"}
            token = unsigned_token(forged, data)
            signing_input = token.rsplit(".", 1)[0].encode()
            mac = hmac.new(self.signing.cert_pem(), signing_input, hashlib.sha256).digest()
            return f"{signing_input.decode()}.{b64url(mac)}"
        if kind == "wrong_key":
            if self._other_key is None:
                self._other_key = generate(self.clock())
            return self._other_key.sign(data, header)
        token = self.signing.sign(data, header)
        if kind == "tamper_payload":
            changed = {
                **payload,
                "requestedAttributes": {
                    **payload["requestedAttributes"],
                    "basicUserInfo": _MALLORY,
                },
            }
            head, _, signature = token.split(".")
            return f"{head}.{b64url(msgspec.json.encode(changed))}.{signature}"
        return token


_SIGN_OPS: Final = frozenset({"getOneSignResult", "cancelSignature"})
_SIGN_FIELDS: Final = frozenset(
    {"title", "pushNotification", "expiry", "dataToSignType", "dataToSign", "signatureType"}
)


def _auth_part(request: dict[str, Any]) -> dict[str, Any]:
    """An initSignRequest without its signature fields: what initAuthentication also takes."""
    return {k: v for k, v in request.items() if k not in _SIGN_FIELDS}


def persona_upi(persona: Persona) -> str:
    """A stable made-up unique personal identifier (``NNNN-NNNNNN-NNNN``) for a persona."""
    digits = str(int(_derived(persona, "upi"), 16))[:14].rjust(14, "0")
    return f"{digits[:4]}-{digits[4:10]}-{digits[10:]}"


def _age(date_of_birth: str, at: float) -> int:
    born = dt.date.fromisoformat(date_of_birth)
    today = dt.datetime.fromtimestamp(at, dt.UTC).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
