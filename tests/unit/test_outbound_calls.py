"""The shared shape of upstream calls: ``best_effort``, ``ErrorBoundary`` and the predicates."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from ciba_gateway.connector import (
    ConnectorError,
    ErrorBoundary,
    UpstreamRejected,
    UpstreamUnavailable,
    UserBusy,
    best_effort,
    never_sent,
    unavailable_status,
)

log = structlog.get_logger("test_best_effort")


class TestBestEffort:
    async def test_a_completed_call_is_true_and_logs_nothing(self) -> None:
        """The call ran to its end: True, and no event (the caller logs its success)."""
        calls = []

        async def cancel() -> None:
            calls.append("cancel")

        with capture_logs() as logs:
            done = await best_effort(cancel, log=log, event="acme_cancel")

        assert (done, calls, logs) == (True, ["cancel"], [])

    async def test_a_failure_is_swallowed_and_logged_masked(self) -> None:
        """An upstream error is one warning with its class and its text masked, never raised."""

        async def cancel() -> None:
            raise httpx.RemoteProtocolError("order of 199001011239 (+46701234567) is gone")

        with capture_logs() as logs:
            done = await best_effort(cancel, log=log, event="acme_cancel")

        assert done is False
        (event,) = logs
        assert (event["event"], event["log_level"]) == ("acme_cancel_failed", "warning")
        assert event["error"] == "RemoteProtocolError"
        assert "199001011239" not in event["reason"]
        assert "+46701234567" not in event["reason"]
        assert event["reason"].startswith("order of 19900101")

    async def test_a_connector_error_logs_its_description(self) -> None:
        """A translated failure logs the ConnectorError's client-safe description."""

        async def cancel() -> None:
            raise UpstreamRejected("Acme refused the request (badRef)")

        with capture_logs() as logs:
            await best_effort(cancel, log=log, event="acme_cancel")

        assert [(e["error"], e["reason"]) for e in logs] == [
            ("UpstreamRejected", "Acme refused the request (badRef)")
        ]

    async def test_not_pending_is_an_info_event(self) -> None:
        """The upstream had nothing left to cancel: ``{event}_not_pending`` at info, no warning."""

        async def cancel() -> None:
            raise LookupError("no such order")

        with capture_logs() as logs:
            done = await best_effort(
                cancel,
                log=log,
                event="acme_cancel",
                not_pending=lambda exc: isinstance(exc, LookupError),
            )

        assert done is False
        assert [(e["event"], e["log_level"]) for e in logs] == [("acme_cancel_not_pending", "info")]

    async def test_a_hung_call_is_given_up_at_the_deadline(self) -> None:
        """A call that never answers is abandoned after ``deadline`` seconds."""

        async def cancel() -> None:
            await asyncio.Event().wait()

        started = time.monotonic()
        with capture_logs() as logs:
            done = await best_effort(cancel, log=log, event="acme_cancel", deadline=0.05)

        assert done is False
        assert time.monotonic() - started < 2.0
        assert [(e["event"], e["error"], e["reason"]) for e in logs] == [
            ("acme_cancel_failed", "TimeoutError", "no answer within 0.05 s")
        ]

    async def test_task_cancellation_is_not_swallowed(self) -> None:
        """Stopping the task that runs the clean-up stops it (shutdown must not hang)."""
        entered = asyncio.Event()

        async def cancel() -> None:
            entered.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(best_effort(cancel, log=log, event="acme_cancel"))
        await entered.wait()
        task.cancel()

        with pytest.raises(asyncio.CancelledError):
            await task


class Boundary(ErrorBoundary):
    """Maps ``LookupError`` to UpstreamUnavailable and nothing else; records what it saw."""

    def __init__(self) -> None:
        self.seen: list[Exception] = []

    def translate(self, exc: Exception) -> ConnectorError | None:
        self.seen.append(exc)
        return UpstreamUnavailable("acme is down") if isinstance(exc, LookupError) else None


class TestErrorBoundary:
    def test_a_mapped_failure_is_raised_as_its_connector_error(self) -> None:
        """What ``translate`` maps is raised instead, chained to the upstream's exception."""
        original = LookupError("no route to acme")

        with pytest.raises(UpstreamUnavailable, match="acme is down") as raised, Boundary():
            raise original

        assert raised.value.__cause__ is original

    def test_an_unmapped_failure_passes_unchanged(self) -> None:
        """None from ``translate`` lets the exception through (a bug stays visible)."""
        boundary = Boundary()

        with pytest.raises(ZeroDivisionError), boundary:
            _ = 1 / 0

        assert [type(e) for e in boundary.seen] == [ZeroDivisionError]

    def test_a_connector_error_is_not_translated_again(self) -> None:
        """A ConnectorError raised inside (a refusal decided in the block) passes as it is."""
        boundary = Boundary()

        with pytest.raises(UserBusy), boundary:
            raise UserBusy("already in progress")

        assert boundary.seen == []

    def test_cancellation_is_not_translated(self) -> None:
        """BaseExceptions (task cancellation) are never seen by ``translate``."""
        boundary = Boundary()

        with pytest.raises(asyncio.CancelledError), boundary:
            raise asyncio.CancelledError

        assert boundary.seen == []

    def test_a_block_that_succeeds_is_untouched(self) -> None:
        """No exception: the block's work stands and ``translate`` is not called."""
        boundary = Boundary()

        with boundary:
            answer = "ok"

        assert (answer, boundary.seen) == ("ok", [])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ConnectTimeout("slow handshake"), True),
        (httpx.PoolTimeout("no free connection"), True),
        (httpx.ReadTimeout("sent, no answer"), False),
        (httpx.RemoteProtocolError("dropped mid-answer"), False),
        (ValueError("not an HTTP error"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_never_sent_only_for_connections_that_never_opened(
    error: Exception, expected: bool
) -> None:
    """A start may be sent again only when the upstream surely never received it."""
    assert never_sent(error) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, True), (503, True), (599, True), (408, True), (429, True), (400, False), (404, False)],
)
def test_unavailable_statuses(status: int, expected: bool) -> None:
    """5xx, 408 and 429 mean "later"; other 4xx are refusals."""
    assert unavailable_status(status) is expected
