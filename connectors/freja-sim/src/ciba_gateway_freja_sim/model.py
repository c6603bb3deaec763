"""The authentications the Freja simulator holds: start, the clock-driven lifecycle, results.

Statuses are worked out lazily from the injected clock, so tests move time by hand
instead of sleeping. Choices where Freja's behaviour is not documented are marked
"simulator choice" here and in README.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from ciba_gateway_freja.wire import FINAL_STATUSES, Level, decode_ssn_user_info, level_rank

from ciba_gateway_freja_sim.settings import (
    Persona,
    SimulatorSettings,
    derived,
    persona_key,
    persona_upi,
)
from ciba_gateway_freja_sim.signing import SigningMaterial

__all__ = ["Auth", "Authentications", "InitRequest", "PendingView", "Refusal"]

_LOA: Final = {"BASIC": "LOA1", "EXTENDED": "LOA2", "PLUS": "LOA3"}
_OUTCOME_STATUS: Final = {"approve": "APPROVED", "reject": "REJECTED", "cancel": "CANCELED"}


class Refusal(Exception):
    """Freja refuses the call with error ``code`` (answered with HTTP ``status``)."""

    def __init__(self, code: int, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass
class InitRequest:
    """A well-formed start: who, at which level, which attributes."""

    user_info_type: str
    user_info: str
    key: tuple[str, str]
    min_level: Level
    attributes: tuple[str, ...]


@dataclass
class Auth:
    """One authentication (or signature) the simulator holds."""

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


class Authentications:
    """The personas, the authentications started for them and the rules they follow."""

    def __init__(
        self, settings: SimulatorSettings, *, signing: SigningMaterial, clock: Callable[[], float]
    ) -> None:
        self.settings = settings
        self.signing = signing
        self.clock = clock
        self.personas: dict[tuple[str, str], Persona] = {}
        for persona in settings.personas:
            for key in _keys_of(persona):
                self.personas.setdefault(key, persona)
        self.auths: dict[str, Auth] = {}
        self._cooldown: dict[str, float] = {}

    def reset(self) -> None:
        """Forget every authentication and cooldown."""
        self.auths.clear()
        self._cooldown.clear()

    def start(
        self,
        init: InitRequest,
        relying_party_id: str | None,
        *,
        sign_text: str | None = None,
        sign_title: str | None = None,
    ) -> Auth:
        """A new authentication for the persona ``init`` names.

        Raises:
            Refusal: no such persona (1012), service turned off (1005), cooldown (2000).
        """
        persona = self.personas.get(init.key)
        if persona is None:
            raise Refusal(1012, 422)
        if persona.service_disabled:
            raise Refusal(1005, 422)
        now = self.clock()
        user = persona.user_info
        if now < self._cooldown.get(user, float("-inf")):
            raise Refusal(2000, 422)
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
        return auth

    def live(self, auth_ref: str) -> Auth:
        """The authentication ``auth_ref``, brought up to now.

        Raises:
            Refusal: unknown, or ended longer than ``result_retention`` ago (1100).
        """
        now = self.clock()
        auth = self.auths.get(auth_ref)
        if auth is None:
            raise Refusal(1100, 422)
        self._advance(auth, now)
        if auth.ended_at is not None and now > auth.ended_at + self.settings.result_retention:
            raise Refusal(1100, 422)
        return auth

    def cancel(self, auth: Auth) -> None:
        """The relying party cancels ``auth``.

        Raises:
            Refusal: it has already ended (1100; simulator choice).
        """
        if auth.status in FINAL_STATUSES:
            raise Refusal(1100, 422)
        self._settle(auth, "RP_CANCELED", self.clock())

    def readable(self, relying_party_id: str | None) -> list[Auth]:
        """What ``getResults`` lists for ``relying_party_id``: its results still retained."""
        now = self.clock()
        found = []
        for auth in self.advanced(now):
            if auth.relying_party_id != relying_party_id:
                continue
            if auth.ended_at is not None and now > auth.ended_at + self.settings.result_retention:
                continue
            found.append(auth)
        return found

    def advanced(self, now: float) -> list[Auth]:
        """Every authentication, each brought up to ``now``."""
        for auth in self.auths.values():
            self._advance(auth, now)
        return list(self.auths.values())

    # --- the phone ---------------------------------------------------------------

    def pending(self) -> list[PendingView]:
        """Authentications waiting for an answer, oldest first."""
        now = self.clock()
        return [
            PendingView(
                auth_ref=auth.auth_ref,
                label=auth.persona.label,
                user_info=auth.persona.user_info,
                user_info_type=auth.persona.user_info_type,
                required_level=auth.min_level,
                persona_level=auth.persona.registration_level,
                can_approve=_can_act(auth),
                seconds_left=max(0, int(auth.created_at + self.settings.auth_lifetime - now)),
                relying_party_id=auth.relying_party_id,
                sign_text=auth.sign_text,
                sign_title=auth.sign_title,
            )
            for auth in self.advanced(now)
            if auth.status not in FINAL_STATUSES
        ]

    def decide(self, auth_ref: str, *, approve: bool) -> bool:
        """The person approves or rejects in the app; False when that is not possible now."""
        auth = self.auths.get(auth_ref)
        if auth is None:
            return False
        now = self.clock()
        self._advance(auth, now)
        if auth.status in FINAL_STATUSES or (approve and not _can_act(auth)):
            return False
        self._settle(auth, "APPROVED" if approve else "CANCELED", now)
        return True

    # --- the lifecycle -------------------------------------------------------------

    def _advance(self, auth: Auth, now: float) -> None:
        """Bring ``auth`` up to ``now``: scripted outcome, delivery, expiry."""
        if auth.status in FINAL_STATUSES:
            return
        persona = auth.persona
        expires_at = auth.created_at + self.settings.auth_lifetime
        if persona.outcome != "ignore" and (persona.outcome != "approve" or _can_act(auth)):
            at = auth.created_at + persona.delay
            if at < expires_at and now >= at:
                self._settle(auth, _OUTCOME_STATUS[persona.outcome], at)
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
            "requestedAttributes": _attributes(auth, at),
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


def _keys_of(persona: Persona) -> list[tuple[str, str]]:
    keys = [persona_key(persona.user_info_type, persona.user_info, persona.country)]
    if persona.ssn:
        keys.append(persona_key("SSN", persona.ssn, persona.country))
    if persona.email:
        keys.append(persona_key("EMAIL", persona.email))
    if persona.phone:
        keys.append(persona_key("PHONE", persona.phone))
    keys.append(("UPI", persona.attributes.upi or persona_upi(persona)))
    return keys


def _can_act(auth: Auth) -> bool:
    # Freja: minRegistrationLevel is the level needed to approve. Simulator choice:
    # a person below it cannot approve, so the request waits until it expires.
    return level_rank(auth.persona.registration_level) >= level_rank(auth.min_level)


def _attributes(auth: Auth, at: float) -> dict[str, Any]:
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
            out["relyingPartyUserId"] = info.relying_party_user_id or derived(persona, "rp-user-id")
        elif name == "UNIQUE_PERSONAL_IDENTIFIER":
            out["uniquePersonalIdentifier"] = info.upi or persona_upi(persona)
    return out


def _age(date_of_birth: str, at: float) -> int:
    born = dt.date.fromisoformat(date_of_birth)
    today = dt.datetime.fromtimestamp(at, dt.UTC).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
