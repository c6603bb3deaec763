"""``call_with_retries``, the one retry helper: bounded tries, doubling waits, a predicate."""

from __future__ import annotations

import httpx
import pytest

from ciba_gateway.connector import call_with_retries


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then answers ``"ok"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize(
    ("attempts", "failures", "max_wait", "waits"),
    [
        (3, 2, 2.0, [0.1, 0.2]),
        (5, 4, 0.3, [0.1, 0.2, 0.3, 0.3]),
        (6, 5, 10.0, [0.1, 0.2, 0.4, 0.8, 1.6]),
    ],
)
async def test_waits_double_from_a_tenth_up_to_max_wait(
    attempts: int, failures: int, max_wait: float, waits: list[float]
) -> None:
    """A call that succeeds on the last try waits 0.1 s, then twice as long each time."""
    sleeps = Sleeps()
    call = Flaky(failures, httpx.ConnectError("refused"))
    answer = await call_with_retries(call, attempts, max_wait=max_wait, sleep=sleeps)
    assert (answer, call.calls) == ("ok", attempts)
    assert sleeps.waits == pytest.approx(waits)


async def test_one_attempt_never_retries() -> None:
    """``attempts=1`` is a single call, even for a retryable error."""
    sleeps = Sleeps()
    call = Flaky(1, httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        await call_with_retries(call, 1, sleep=sleeps)
    assert (call.calls, sleeps.waits) == (1, [])


async def test_gives_up_after_the_last_try_with_its_error() -> None:
    """Every try failing: ``attempts`` calls, then the last error is raised."""
    call = Flaky(10, httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        await call_with_retries(call, 3, sleep=Sleeps())
    assert call.calls == 3


async def test_an_error_the_predicate_refuses_is_raised_at_once() -> None:
    """No retry, no wait, for an error that is not retryable."""
    sleeps = Sleeps()
    call = Flaky(1, ValueError("bad answer"))
    with pytest.raises(ValueError, match="bad answer"):
        await call_with_retries(call, 3, sleep=sleeps)
    assert (call.calls, sleeps.waits) == (1, [])
