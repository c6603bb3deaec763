"""A minimal connector: the worked example of connectors/README.md.

It "authenticates" anyone whose login hint is listed in its config: each
person approves, denies or stays pending. It keeps no upstream; ``poll``
answers from the session it returned in ``start``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import structlog

from ciba_gateway.connector import (
    Approved,
    BaseConnector,
    ConnectorDeps,
    Denied,
    Identity,
    LoginHint,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UserNotFound,
    identity_mismatch,
)


class Person(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One scripted person."""

    hint: str
    name: str
    outcome: Literal["approve", "deny", "pending"] = "approve"
    polls: int = 1
    """How many polls answer pending before the outcome."""
    user_code: str | None = None
    approves_as: str | None = None
    """Hint of the person the approval reports instead (an impostor, for the identity check)."""


class ExampleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """YAML: ``{type: example, people: [...], acr: ..., poll_after: ...}``."""

    people: tuple[Person, ...] = ()
    acr: str = "urn:example:acr:low"
    poll_after: float = 0.0
    """Seconds the driver waits before each poll (large: requests that need no polling)."""


def _same_person(session: dict[str, Any], identity: Identity) -> bool:
    """The approving identity is the hinted person the request was started for."""
    return f"{identity.scheme.removeprefix('example-')}:{identity.subject}" == session["hint"]


class ExampleConnector(BaseConnector):
    """Approves or denies the people of its config."""

    Config = ExampleConfig
    login_hint_kinds = frozenset({"ssn", "email", "tel"})
    authorization_details_types = frozenset({"example_payment", "payment_initiation", "approval"})

    def __init__(self, config: ExampleConfig, deps: ConnectorDeps) -> None:
        self.config = config
        self.deps = deps
        self.people = {p.hint: p for p in config.people}

    async def start(self, request: StartRequest) -> Started:
        person = self.people.get(str(request.login_hint))
        if person is None:
            raise UserNotFound("no such person")
        return Started(session={"hint": person.hint, "polls": 0}, poll_after=self.config.poll_after)

    async def poll(self, session: dict[str, Any]) -> PollResult:
        person = self.people[session["hint"]]
        polls = session["polls"] + 1
        if person.outcome == "pending" or polls <= person.polls:
            return Pending(poll_after=self.config.poll_after, session={**session, "polls": polls})
        if person.outcome == "deny":
            return Denied(reason="the person said no")
        identity = self._identity(person)
        if not _same_person(session, identity):
            return identity_mismatch(structlog.get_logger("ciba_gateway_example"), check="subject")
        return Approved(identity=identity)

    def _identity(self, person: Person) -> Identity:
        kind, _, value = (person.approves_as or person.hint).partition(":")
        return Identity(
            scheme=f"example-{kind}",
            subject=value,
            national_id=value if kind == "ssn" else None,
            country="SE" if kind == "ssn" else None,
            claims={"name": person.name, **({"email": value} if kind == "email" else {})},
            acr=self.config.acr,
            amr=("example",),
            auth_time=int(self.deps.clock()),
        )

    async def verify_user_code(self, hint: LoginHint, user_code: str) -> bool | None:
        person = self.people.get(str(hint))
        return person is not None and person.user_code is not None and person.user_code == user_code
