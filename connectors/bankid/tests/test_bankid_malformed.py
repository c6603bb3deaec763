"""BankID answers that are not JSON: unavailable at start, failed when they persist."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from bankid_support import KARL, start_request
from ciba_gateway_bankid.connector import MAX_MALFORMED_COLLECTS, BankIDConnector

from ciba_gateway.connector import Failed, Pending, UpstreamUnavailable

ORDER = b'{"orderRef": "o-1", "autoStartToken": "a", "qrStartToken": "q", "qrStartSecret": "s"}'
PENDING = b'{"orderRef": "o-1", "status": "pending", "hintCode": "outstandingTransaction"}'
JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html; charset=utf-8"}


def scripted(collects: list[tuple[dict[str, str], bytes]], auth_headers: dict[str, str] = JSON):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/collect"):
            headers, body = collects.pop(0)
            return httpx.Response(200, headers=headers, content=body)
        return httpx.Response(200, headers=auth_headers, content=ORDER)

    return httpx.MockTransport(handler)


async def test_start_answered_as_html_is_unavailable(
    make_connector: Callable[..., BankIDConnector],
) -> None:
    """A 200 /auth answer that is not application/json is not trusted: temporarily unavailable."""
    connector = make_connector(transport=scripted([], auth_headers=HTML))
    with pytest.raises(UpstreamUnavailable):
        await connector.start(start_request(KARL))


async def test_malformed_collects_in_a_row_fail_the_request(
    make_connector: Callable[..., BankIDConnector],
) -> None:
    """Wrong content type or broken JSON stays pending a while, then fails (not until expiry)."""
    answers = [(HTML, PENDING), (JSON, b"{not json")] + [(HTML, b"<html>")] * 5
    connector = make_connector(transport=scripted(answers))
    session = (await connector.start(start_request(KARL))).session
    results = []
    for _ in range(MAX_MALFORMED_COLLECTS):
        result = await connector.poll(session)
        results.append(result)
        if isinstance(result, Pending) and result.session is not None:
            session = result.session
    assert [type(r) for r in results] == [Pending] * (MAX_MALFORMED_COLLECTS - 1) + [Failed]
    assert "malformed collects" in results[-1].reason  # type: ignore[union-attr]


async def test_a_good_collect_resets_the_count(
    make_connector: Callable[..., BankIDConnector],
) -> None:
    """Malformed answers separated by a good one never add up to the limit."""
    answers = [(HTML, b""), (HTML, b""), (JSON, PENDING), (HTML, b""), (HTML, b"")]
    connector = make_connector(transport=scripted(answers))
    session = (await connector.start(start_request(KARL))).session
    for _ in range(5):
        result = await connector.poll(session)
        assert isinstance(result, Pending)
        session = result.session if result.session is not None else session
    assert session["malformed"] == 2
