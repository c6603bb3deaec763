"""``call_with_retries`` keeps the tries and waits of ``retrying``, first try outside tenacity."""

from __future__ import annotations

import httpx
import pytest

from ciba_gateway.connector import call_with_retries, retrying


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


async def waits_of_retrying(attempts: int, failures: int, max_wait: float) -> list[float]:
    sleeps = Sleeps()
    call = Flaky(failures, httpx.ConnectError("refused"))
    async for attempt in retrying(attempts, max_wait=max_wait, sleep=sleeps):
        with attempt:
            await call()
    return sleeps.waits


@pytest.mark.parametrize(("attempts", "failures", "max_wait"), [(3, 2, 2.0), (5, 4, 0.3)])
async def test_same_tries_and_waits_as_retrying(
    attempts: int, failures: int, max_wait: float
) -> None:
    """A call that succeeds on the last try waits exactly as under ``retrying``."""
    sleeps = Sleeps()
    call = Flaky(failures, httpx.ConnectError("refused"))
    answer = await call_with_retries(call, attempts, max_wait=max_wait, sleep=sleeps)
    assert (answer, call.calls) == ("ok", attempts)
    assert sleeps.waits == await waits_of_retrying(attempts, failures, max_wait)


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
