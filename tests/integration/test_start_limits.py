"""bc-authorize over a start limit: 429 slow_down with Retry-After, nothing started."""

from __future__ import annotations

from tests.integration.conftest import Harness
from tests.integration.test_backchannel_errors import BASE


async def test_start_limit_answers_429_slow_down_with_retry_after(harness: Harness) -> None:
    """The default per-login-hint limit (5 per 5 minutes): the 6th start is refused as JSON."""
    engine = harness.app.state.gateway.engine
    for _ in range(5):
        assert (await harness.bc_authorize(BASE)).status_code == 200
    pending = await engine.store.count_pending()
    response = await harness.bc_authorize(BASE)
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "slow_down"
    assert response.headers["content-type"].startswith("application/json")
    assert 1 <= int(response.headers["retry-after"]) <= 300
    assert await engine.store.count_pending() == pending  # nothing started or stored
