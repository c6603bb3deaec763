"""The BankID simulator's settings: personas, fault rules and timing, msgspec-validated.

What ``simulators: [{type: bankid, settings: ...}]`` holds (README.md lists every field).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["Fault", "FaultControl", "Kind", "Outcome", "Persona", "SimulatorSettings", "behaviour"]

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


def behaviour(persona: Persona) -> str:
    """What the persona does with an order, in words (the phone index)."""
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
