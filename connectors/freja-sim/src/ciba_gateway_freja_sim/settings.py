"""The Freja simulator's settings: personas, fault rules and timing, msgspec-validated.

What ``simulators: [{type: freja, settings: ...}]`` holds (README.md lists every field).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Final, Literal

import msgspec
from ciba_gateway_freja.wire import Level, Operation
from msgspec import Meta

__all__ = [
    "DEFAULT_PERSONAS",
    "JWS_FAULTS",
    "NETWORK_FAULTS",
    "PHONE",
    "Fault",
    "FaultControl",
    "Persona",
    "PersonaAttributes",
    "SimulatorSettings",
    "derived",
    "persona_key",
    "persona_upi",
]

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
PHONE = re.compile(r"\+?[0-9]{6,15}")


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
        if self.user_info_type == "PHONE" and not PHONE.fullmatch(self.user_info):
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
        keys = [persona_key(p.user_info_type, p.user_info, p.country) for p in self.personas]
        if len(set(keys)) != len(keys):
            raise ValueError("two personas have the same user_info")


def persona_key(user_info_type: str, value: str, country: str = "SE") -> tuple[str, str]:
    """The key a persona is found by: SSNs per country, email addresses case-folded."""
    if user_info_type == "SSN":
        return ("SSN", f"{country}:{value}")
    if user_info_type == "EMAIL":
        return ("EMAIL", value.casefold())
    return (user_info_type, value)


def derived(persona: Persona, purpose: str) -> str:
    """A stable made-up value of ``persona`` for ``purpose`` (hex SHA-256)."""
    return hashlib.sha256(f"{purpose}:{persona.user_info}".encode()).hexdigest()


def persona_upi(persona: Persona) -> str:
    """A stable made-up unique personal identifier (``NNNN-NNNNNN-NNNN``) for a persona."""
    digits = str(int(derived(persona, "upi"), 16))[:14].rjust(14, "0")
    return f"{digits[:4]}-{digits[4:10]}-{digits[10:]}"
