"""The approval page through the real app: rendering, headers, CSRF, single use, outcomes."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets

import pytest
from smslink_support import CLIENT_NAME, KNOWN, NAMED, Harness, csrf_of


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert('x')</script>",
        '"><img src=x onerror=alert(1)>',
        "Pay 5 & </p><b>more</b>",
    ],
)
async def test_page_escapes_binding_message_and_masks_number(
    harness: Harness, payload: str
) -> None:
    """The page shows the escaped binding message and client name, a masked number, no ids."""
    auth_req_id, link = await harness.start(binding_message=payload)

    response = await harness.open(link)

    assert response.status_code == 200
    body = response.text
    assert html.escape(payload) in body
    assert payload not in body
    assert html.escape(CLIENT_NAME) in body
    assert CLIENT_NAME not in body
    assert "+46*******67" in body
    assert KNOWN not in body and KNOWN[1:] not in body
    assert auth_req_id not in body


async def test_page_sends_security_headers(harness: Harness) -> None:
    """CSP (no scripts, hashed inline style, self-only forms, no framing) and no-store headers."""
    _, link = await harness.start()

    response = await harness.open(link)

    headers = response.headers
    csp = {
        part.split(" ", 1)[0]: part.split(" ", 1)[1]
        for part in headers["content-security-policy"].split("; ")
    }
    assert csp["default-src"] == "'none'"
    assert csp["form-action"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "script-src" not in csp
    style = re.search(r"<style>(.*?)</style>", response.text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert csp["style-src"] == f"'sha256-{digest}'"
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"] == "text/html; charset=utf-8"  # one charset, not two
    assert "<script" not in response.text


async def test_get_is_side_effect_free(harness: Harness) -> None:
    """Opening the page (a link previewer) twice decides nothing and leaves the link usable."""
    auth_req_id, link = await harness.start()

    first = await harness.open(link)
    second = await harness.open(link)
    pending = await harness.token(auth_req_id)

    assert first.status_code == second.status_code == 200
    assert pending.json()["error"] == "authorization_pending"
    assert (await harness.submit(link, "approve")).status_code == 200


@pytest.mark.parametrize("csrf", ["", "forged", "A" * 43])
async def test_post_without_valid_csrf_is_refused(harness: Harness, csrf: str) -> None:
    """A POST with a missing or wrong form token changes nothing and keeps the link usable."""
    auth_req_id, link = await harness.start()

    refused = await harness.submit(link, "approve", csrf=csrf)

    assert refused.status_code == 403
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"
    assert (await harness.open(link)).status_code == 200


async def test_post_without_any_form_is_refused(harness: Harness) -> None:
    """A bare POST (no form body at all) is refused like a forged one."""
    auth_req_id, link = await harness.start()

    refused = await harness.client.post(link)

    assert refused.status_code == 403
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
    ],
)
async def test_cross_site_post_is_refused_even_with_token(
    harness: Harness, headers: dict[str, str]
) -> None:
    """Fetch metadata or an Origin of another site refuse the POST despite a valid token."""
    auth_req_id, link = await harness.start()

    refused = await harness.submit(link, "approve", headers=headers)

    assert refused.status_code == 403
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"


async def test_same_origin_browser_headers_are_accepted(harness: Harness) -> None:
    """The headers a browser sends from the page itself (Origin null under no-referrer) pass."""
    auth_req_id, link = await harness.start()

    answer = await harness.submit(
        link, "approve", headers={"sec-fetch-site": "same-origin", "origin": "null"}
    )

    assert answer.status_code == 200
    assert "access_token" in (await harness.token(auth_req_id)).json()


async def test_unknown_decision_is_refused(harness: Harness) -> None:
    """A form with neither approve nor decline is a 400 and leaves the request pending."""
    auth_req_id, link = await harness.start()

    answer = await harness.submit(link, "maybe")

    assert answer.status_code == 400
    assert (await harness.token(auth_req_id)).json()["error"] == "authorization_pending"


async def test_approve_issues_tokens_with_phone_claims(harness: Harness) -> None:
    """Approve resolves the request: the token endpoint issues an ID token for the number."""
    auth_req_id, link = await harness.start()

    answer = await harness.submit(link, "approve")
    tokens = await harness.token(auth_req_id)

    assert answer.status_code == 200 and "You approved" in answer.text
    assert tokens.status_code == 200
    claims = await harness.claims(tokens.json()["id_token"])
    assert claims["phone_number"] == KNOWN
    assert claims["phone_number_verified"] is True
    assert claims["acr"] == "urn:ciba-gateway:acr:sms-link"
    assert claims["amr"] == ["sms"]
    assert KNOWN[1:] not in claims["sub"]


async def test_directory_name_becomes_name_claim(harness: Harness) -> None:
    """A name from the allow-list directory is released under the profile scope."""
    auth_req_id, link = await harness.start(NAMED)

    await harness.submit(link, "approve")
    tokens = await harness.token(auth_req_id)

    claims = await harness.claims(tokens.json()["id_token"])
    assert claims["name"] == "Greta Gustafsson"
    assert claims["phone_number"] == NAMED


async def test_decline_gives_access_denied(harness: Harness) -> None:
    """Decline resolves the request as denied: the client gets access_denied."""
    auth_req_id, link = await harness.start()

    answer = await harness.submit(link, "decline")
    tokens = await harness.token(auth_req_id)

    assert answer.status_code == 200 and "You declined" in answer.text
    assert tokens.status_code == 400
    assert tokens.json()["error"] == "access_denied"


@pytest.mark.parametrize("decision", ["approve", "decline"])
async def test_second_open_after_decision_says_already_used(
    harness: Harness, decision: str
) -> None:
    """After a decision the link is spent: GET and POST show "already used" and change nothing."""
    auth_req_id, link = await harness.start()
    csrf = csrf_of((await harness.open(link)).text)
    await harness.submit(link, decision, csrf=csrf)

    again = await harness.open(link)
    replay = await harness.submit(link, "approve", csrf=csrf)

    assert again.status_code == replay.status_code == 410
    assert "already used" in again.text and "already used" in replay.text
    assert 'name="decision"' not in again.text
    first = await harness.token(auth_req_id)
    assert ("access_token" in first.json()) == (decision == "approve")


async def test_unknown_and_expired_links_show_the_same_page(
    harness: Harness,
) -> None:
    """Unknown, malformed and expired links get byte-identical 404 pages."""
    _, link = await harness.start()
    base = link.rsplit("/", 1)[0]
    unknown = await harness.open(f"{base}/{secrets.token_urlsafe(32)}")
    malformed = await harness.open(f"{base}/short")

    harness.clock.advance(121)
    expired = await harness.open(link)
    expired_post = await harness.client.post(link, data={"csrf": "x", "decision": "approve"})

    assert unknown.status_code == malformed.status_code == expired.status_code == 404
    assert expired_post.status_code == 404
    assert unknown.text == malformed.text == expired.text == expired_post.text
    assert "not valid" in unknown.text
    assert unknown.headers["cache-control"] == "no-store"
