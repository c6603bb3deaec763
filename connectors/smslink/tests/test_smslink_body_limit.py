"""The link route refuses oversized bodies while reading them, not after buffering them."""

from __future__ import annotations

from typing import Any

from smslink_support import Harness

from ciba_gateway.web.callbacks import MAX_CALLBACK_BODY

CHUNK = 64 * 1024
CHUNKS = 160  # 10 MiB if it were all read


async def post_raw(
    harness: Harness, path: str, *, content_length: int | None = None
) -> tuple[int, dict[str, str], bytes, int]:
    """POST a 10 MiB body straight through ASGI; returns status, headers, body, chunks read."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": pulled < CHUNKS}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"testserver.local"), (b"content-type", b"application/octet-stream")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
        "state": {},
    }
    await harness.app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], answer_headers, body, pulled


async def test_streamed_oversized_body_is_refused_as_soon_as_it_passes_the_cap(
    harness: Harness,
) -> None:
    """A 10 MiB POST to a well-formed link is refused after about 64 KiB, as JSON 413."""
    path = "/acme/sms/l/" + "A" * 43
    status, headers, body, pulled = await post_raw(harness, path)
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert b'"error":"invalid_request"' in body
    assert pulled <= MAX_CALLBACK_BODY // CHUNK + 1 < CHUNKS


async def test_announced_oversized_body_is_refused_before_reading(harness: Harness) -> None:
    """A Content-Length over the cap is refused without reading the body at all."""
    path = "/acme/sms/l/" + "A" * 43
    status, _, _, pulled = await post_raw(harness, path, content_length=CHUNK * CHUNKS)
    assert status == 413
    assert pulled == 0


async def test_unknown_callback_path_is_a_json_404(harness: Harness) -> None:
    """A path no route of the connector serves is a JSON 404, and its body is not read."""
    status, headers, _, pulled = await post_raw(harness, "/acme/sms/nothing/here")
    assert status == 404
    assert headers["content-type"].startswith("application/json")
    assert pulled == 0
