"""The connector contract suite: tests a connector author inherits and runs on a simulator.

Subclass ``ConnectorContract`` (and ``UpstreamContract`` when the connector talks HTTP
to an upstream) in a test module, set the class attributes, and provide a ``subject``
fixture returning a ``Subject`` wired to the connector's simulator; pytest collects
the inherited tests::

    class TestContract(ConnectorContract, UpstreamContract):
        outcomes = ("approved", "denied", "failed", "expired")
        refusals = {"unknown": UserNotFound}
        pii = (KARL, TOLVAN)

        @pytest.fixture
        def subject(self, connector, clock, upstream) -> Subject:
            return MySubject(connector, clock, upstream=upstream)

``IdentityContract`` checks that the person who approved is the person asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import msgspec
from structlog.testing import capture_logs

from ciba_gateway.connector.api import (
    IDENTITY_MISMATCH,
    Approved,
    ConnectorError,
    Denied,
    Expired,
    Failed,
    Identity,
    LoginHint,
    Pending,
    PollResult,
    Started,
    StartRequest,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ciba_gateway.connector.testing.fakes import FakeClock
from ciba_gateway.connector.testing.upstream import FAULTS, RecordingTransport

__all__ = [
    "EXAMPLE_DETAILS",
    "OUTCOMES",
    "ConnectorContract",
    "IdentityContract",
    "Settle",
    "Subject",
    "UpstreamContract",
    "names_the_hint",
]

OUTCOMES: Mapping[str, type] = {
    "approved": Approved,
    "denied": Denied,
    "failed": Failed,
    "expired": Expired,
}
"""The terminal cases a ``Subject`` can script, and the outcome each must end in."""

EXAMPLE_DETAILS: Mapping[str, dict[str, Any]] = {
    "payment_initiation": {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "SEK", "amount": "1500"},
        "creditorName": "Kiosk Nord",
        "creditorAccount": {"iban": "SE4550000000058398257466"},
        "remittanceInformationUnstructured": "Invoice 4711",
    },
    "approval": {
        "type": "approval",
        "title": "Release order 4711",
        "text": "The agent wants to order 3 laptops.",
        "fields": [{"label": "Supplier", "value": "Acme AB"}],
    },
}
"""A valid entry of each typed ``connector.details`` type, for a ``Subject.details``."""

UPSTREAM_ERRORS = (UpstreamUnavailable, UpstreamRejected)

Settle = Callable[..., Awaitable[PollResult]]
"""``await settle(impostor=False)``: the connector's final answer for one request."""


def names_the_hint(identity: Identity, hint: LoginHint) -> bool:
    """The identity carries the hinted value: subject, national id, e-mail or phone claim."""
    claims = identity.claims
    named = {
        identity.subject,
        identity.national_id,
        claims.get("email"),
        claims.get("phone_number"),
    }
    return hint.value in named


class Subject:
    """A connector under contract, wired to its simulator.

    Subclass it per connector: ``request(case)`` builds the StartRequest for a person
    the simulator scripts to end in ``case`` (a key of ``OUTCOMES``, ``"pending"``
    for a person who never decides, or a key of the contract's ``refusals``).
    ``settle`` drives the started request to its final answer; the default polls,
    moving the clock by each ``poll_after``, which fits a polling connector whose
    simulator decides on its own. Override it where a test must act for the person
    (a phone page, an admin hook) or the connector resolves by callback.

    ``hints`` holds, per declared login hint kind, the hint of a person who approves;
    ``details`` per declared authorization_details type an entry the connector
    accepts. ``upstream`` is the recording transport between connector and simulator.
    """

    hints: Mapping[str, LoginHint] = {}
    details: Mapping[str, dict[str, Any]] = {}
    max_polls = 60

    def __init__(
        self, connector: Any, clock: FakeClock, *, upstream: RecordingTransport | None = None
    ) -> None:
        self.connector = connector
        self.clock = clock
        self.upstream = upstream

    def request(self, case: str) -> StartRequest:
        raise NotImplementedError("a Subject builds the StartRequest of each case")

    async def settle(self, case: str, started: Started) -> PollResult:
        session = started.session
        self.clock.advance(started.poll_after or 0.0)
        for _ in range(self.max_polls):
            result = await self.connector.poll(session)
            if not isinstance(result, Pending):
                return result
            session = result.session or session
            self.clock.advance(max(result.poll_after, 0.5))
        raise AssertionError(f"{case}: still pending after {self.max_polls} polls")

    async def run(self, case: str, request: StartRequest | None = None) -> PollResult:
        """Start ``request`` (by default the case's) and settle it."""
        started = await self.connector.start(request or self.request(case))
        return await self.settle(case, started)


def _with(request: StartRequest, **changes: Any) -> StartRequest:
    return msgspec.structs.replace(request, **changes)


class ConnectorContract:
    """Start -> pending -> outcome, refusals, cancel, declared hint kinds and details types.

    Class attributes: ``outcomes`` the terminal cases the simulator can script (at
    least ``approved``), ``refusals`` case -> the ``ConnectorError`` its start raises,
    ``pii`` the identifiers of the test people (no log event may carry them).
    """

    outcomes: ClassVar[tuple[str, ...]] = ("approved",)
    refusals: ClassVar[Mapping[str, type[ConnectorError]]] = {}
    pii: ClassVar[tuple[str, ...]] = ()

    def test_declares_what_it_serves(self, subject: Subject) -> None:
        """Hint kinds are declared; the subject has an example for each declared kind and type."""
        connector = subject.connector
        assert "approved" in self.outcomes
        assert set(self.outcomes) <= set(OUTCOMES), self.outcomes
        assert connector.login_hint_kinds, "declare login_hint_kinds"
        # A connector whose config narrows the kinds (an upstream configured for some)
        # shows each kind its test instance serves.
        assert subject.hints, "give a hint of an approving person per served kind"
        assert set(subject.hints) <= set(connector.login_hint_kinds)
        assert set(subject.details) == set(connector.authorization_details_types)
        assert self.refusals, "set refusals: the start errors the simulator can provoke"
        assert self.pii, "set pii to the test people's identifiers"

    async def test_each_outcome(self, subject: Subject) -> None:
        """Each scripted case ends in its outcome; no log event carries a person's identifier."""
        with capture_logs() as logs:
            for case in self.outcomes:
                result = await subject.run(case)
                assert isinstance(result, OUTCOMES[case]), (case, result)
        _no_pii(logs, self.pii)

    async def test_pending_until_decided(self, subject: Subject) -> None:
        """A person who has not decided yet is Pending, and the session survives JSON."""
        started = await subject.connector.start(subject.request("pending"))
        assert isinstance(started, Started)
        session = msgspec.json.decode(msgspec.json.encode(started.session))
        assert session == started.session
        assert isinstance(await subject.connector.poll(session), Pending)

    async def test_refusals_are_documented_errors(self, subject: Subject) -> None:
        """Each refused start raises its documented ConnectorError, with no PII in the text."""
        for case, error in self.refusals.items():
            try:
                await subject.connector.start(subject.request(case))
            except ConnectorError as exc:
                assert type(exc) is error, (case, exc)
                assert exc.description
                assert not [v for v in self.pii if v in exc.description]
            else:
                raise AssertionError(f"{case}: start did not raise {error.__name__}")

    async def test_cancel_is_best_effort(self, subject: Subject) -> None:
        """Cancel of a pending request never raises, not even twice; it is not approved after."""
        started = await subject.connector.start(subject.request("pending"))
        await subject.connector.cancel(started.session)
        await subject.connector.cancel(started.session)
        await subject.connector.cancel({})
        try:
            after = await subject.connector.poll(started.session)
        except UPSTREAM_ERRORS:
            return
        assert not isinstance(after, Approved), after

    async def test_each_declared_hint_kind(self, subject: Subject) -> None:
        """A person of every declared hint kind is approved as the person the hint names."""
        for kind, hint in subject.hints.items():
            assert hint.kind == kind
            result = await subject.run(
                "approved", _with(subject.request("approved"), login_hint=hint)
            )
            assert isinstance(result, Approved), (kind, result)
            assert names_the_hint(result.identity, hint), kind

    async def test_each_declared_details_type(self, subject: Subject) -> None:
        """A request carrying an entry of every declared authorization_details type is approved."""
        for kind, entry in subject.details.items():
            assert entry["type"] == kind
            request = _with(subject.request("approved"), authorization_details=(entry,))
            result = await subject.run("approved", request)
            assert isinstance(result, Approved), (kind, result)


class UpstreamContract:
    """Upstream faults surface as ``UpstreamUnavailable`` or ``UpstreamRejected``, never else.

    The ``subject`` must have an ``upstream`` (a ``RecordingTransport``) between the
    connector and its simulator.
    """

    async def test_start_faults_are_upstream_errors(self, subject: Subject) -> None:
        """Timeouts, refused and reset connections, 5xx and malformed answers during start."""
        upstream = _upstream(subject)
        for fault in FAULTS:
            with upstream.failing(fault):
                try:
                    await subject.connector.start(subject.request("approved"))
                except UPSTREAM_ERRORS:
                    continue
                except Exception as exc:
                    raise AssertionError(f"{fault}: start raised {exc!r}") from exc
            raise AssertionError(f"{fault}: start succeeded against a failing upstream")

    async def test_poll_faults_are_upstream_errors(self, subject: Subject) -> None:
        """The same faults during poll: an Upstream* error or a non-approving result."""
        upstream = _upstream(subject)
        started = await subject.connector.start(subject.request("pending"))
        for fault in FAULTS:
            with upstream.failing(fault):
                try:
                    result = await subject.connector.poll(started.session)
                except UPSTREAM_ERRORS:
                    continue
                except Exception as exc:
                    raise AssertionError(f"{fault}: poll raised {exc!r}") from exc
            assert not isinstance(result, Approved), (fault, result)

    async def test_cancel_survives_faults(self, subject: Subject) -> None:
        """Cancel against a failing upstream logs and returns; it never raises."""
        upstream = _upstream(subject)
        started = await subject.connector.start(subject.request("pending"))
        for fault in FAULTS:
            with upstream.failing(fault):
                await subject.connector.cancel(started.session)

    async def test_requests_reach_the_upstream(self, subject: Subject) -> None:
        """Control for the fault tests: a start goes through the recording transport."""
        upstream = _upstream(subject)
        before = len(upstream.requests)
        await subject.connector.start(subject.request("pending"))
        assert len(upstream.requests) > before


def _upstream(subject: Subject) -> RecordingTransport:
    assert subject.upstream is not None, "wire the connector through a RecordingTransport"
    return subject.upstream


def _no_pii(logs: list[dict[str, Any]], pii: tuple[str, ...]) -> None:
    text = repr(logs)
    leaked = [value for value in pii if value in text]
    assert not leaked, f"log events carry {len(leaked)} identifier(s)"


class IdentityContract:
    """A connector never approves a request for someone other than the person it was asked for.

    Provide a ``settle`` fixture (a ``Settle``): it starts a request for one person
    against the connector's simulator, makes the simulator approve it, as that person
    or (``impostor=True``) reporting another person, and returns the connector's
    final answer: what ``poll`` returned, or the outcome it passed to
    ``ConnectorDeps.resolve``. Set ``pii`` to the identifiers of both people
    (personal numbers, phones, e-mails) so the check can prove no log carries them.
    """

    pii: tuple[str, ...] = ()

    async def test_the_person_asked_is_approved(self, settle: Settle) -> None:
        """Control: when the asked person approves, the outcome is Approved."""
        outcome = await settle(impostor=False)
        assert isinstance(outcome, Approved), outcome

    async def test_another_person_fails_the_request(self, settle: Settle) -> None:
        """An approval reporting another person is Failed, logged as a security event."""
        with capture_logs() as logs:
            outcome = await settle(impostor=True)
        assert isinstance(outcome, Failed), outcome
        events = [e for e in logs if e.get("event") == IDENTITY_MISMATCH]
        assert len(events) == 1, logs
        assert events[0]["log_level"] == "warning"
        assert events[0]["security_event"] is True

    async def test_no_identifier_reaches_the_log(self, settle: Settle) -> None:
        """Neither person's identifier appears in any log event of the mismatch."""
        assert self.pii, "set pii to the identifiers of both people"
        with capture_logs() as logs:
            await settle(impostor=True)
        _no_pii(logs, self.pii)
