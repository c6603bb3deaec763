"""SMS sender plugins: the generic HTTP sender against MockTransport, outbox and console."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest
from ciba_gateway_smslink.senders import (
    ConsoleSender,
    HttpSender,
    HttpSenderConfig,
    OutboxSender,
    SenderDeps,
    SmsMessage,
    build_sender,
)

from ciba_gateway.connector import UpstreamRejected, UpstreamUnavailable
from ciba_gateway.connector.testing import FakeSleep

LINK = "https://gw.example/acme/sms/l/" + "x" * 43
MESSAGE = SmsMessage(
    to="+46701234567", text=f"Acme asks you to confirm: Pay. Open {LINK}", link=LINK, reference="r1"
)
TWILIO = {
    "type": "http",
    "url": "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json",
    "encoding": "form",
    "auth": {"type": "basic", "username": "AC123", "password": "twilio-token"},
    "fields": {"to": "To", "from": "From", "body": "Body"},
    "sender_id": "+15005550006",
    "success_statuses": [201],
    "id_field": "sid",
}
SINCH = {
    "type": "http",
    "url": "https://eu.sms.api.sinch.com/xms/v1/plan/batches",
    "encoding": "json",
    "auth": {"type": "bearer", "token": "sinch-token"},
    "sender_id": "Acme",
    "extra": {"type": "mt_text"},
    "id_field": "id",
}


class Recorder:
    """A MockTransport handler answering from a script and recording every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def make_sender(sleeps: FakeSleep) -> AsyncIterator[Callable[..., Any]]:
    made: list[Any] = []

    def factory(spec: dict[str, Any], recorder: Recorder) -> Any:
        sender = build_sender(
            spec, SenderDeps(transport=httpx.MockTransport(recorder), sleep=sleeps)
        )
        made.append(sender)
        return sender

    yield factory
    for sender in made:
        await sender.aclose()


async def test_twilio_shape_form_with_basic_auth(make_sender: Callable[..., Any]) -> None:
    """Twilio: a form POST with To/From/Body, basic auth, 201 and the sid as provider id."""
    recorder = Recorder(httpx.Response(201, json={"sid": "SM42", "status": "queued"}))
    sender = make_sender(TWILIO, recorder)

    receipt = await sender.send(MESSAGE)

    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == TWILIO["url"]
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(b"AC123:twilio-token").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    form = parse_qs(request.content.decode())
    assert form == {"To": ["+46701234567"], "From": ["+15005550006"], "Body": [MESSAGE.text]}
    assert receipt.provider_id == "SM42"


async def test_json_variant_with_bearer_and_extra_fields(make_sender: Callable[..., Any]) -> None:
    """JSON variant: default field names, constant extra fields, a bearer token."""
    recorder = Recorder(httpx.Response(200, json={"id": "batch-1"}))
    sender = make_sender(SINCH, recorder)

    receipt = await sender.send(MESSAGE)

    (request,) = recorder.requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer sinch-token"
    assert json.loads(request.content) == {
        "type": "mt_text",
        "to": "+46701234567",
        "from": "Acme",
        "body": MESSAGE.text,
    }
    assert receipt.provider_id == "batch-1"


async def test_retries_503_then_succeeds(
    make_sender: Callable[..., Any], sleeps: FakeSleep
) -> None:
    """A 503 is retried (with a backoff sleep) and the second answer counts."""
    recorder = Recorder(httpx.Response(503), httpx.Response(201, json={"sid": "SM43"}))
    sender = make_sender(TWILIO, recorder)

    receipt = await sender.send(MESSAGE)

    assert len(recorder.requests) == 2
    assert len(sleeps.calls) == 1
    assert receipt.provider_id == "SM43"


async def test_connection_error_is_retried(make_sender: Callable[..., Any]) -> None:
    """A connection that never opened is retried: nothing was sent yet."""
    recorder = Recorder(httpx.ConnectError("refused"), httpx.Response(201, json={"sid": "SM44"}))
    sender = make_sender(TWILIO, recorder)

    receipt = await sender.send(MESSAGE)

    assert len(recorder.requests) == 2
    assert receipt.provider_id == "SM44"


async def test_persistent_503_is_upstream_unavailable(make_sender: Callable[..., Any]) -> None:
    """After the retry budget (3 attempts) a provider answering 503 is UpstreamUnavailable."""
    recorder = Recorder(httpx.Response(503))
    sender = make_sender(TWILIO, recorder)

    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        await sender.send(MESSAGE)

    assert len(recorder.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_5xx_that_may_have_sent_is_not_retried(
    make_sender: Callable[..., Any], status: int
) -> None:
    """After a 500, 502 or 504 the text may be on its way: no second send, UpstreamUnavailable."""
    recorder = Recorder(httpx.Response(status), httpx.Response(201, json={"sid": "SM45"}))
    sender = make_sender(TWILIO, recorder)

    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}"):
        await sender.send(MESSAGE)

    assert len(recorder.requests) == 1


async def test_read_timeout_is_not_retried(make_sender: Callable[..., Any]) -> None:
    """A read timeout may mean the text is on its way: no second send, UpstreamUnavailable."""
    recorder = Recorder(httpx.ReadTimeout("slow"))
    sender = make_sender(TWILIO, recorder)

    with pytest.raises(UpstreamUnavailable):
        await sender.send(MESSAGE)

    assert len(recorder.requests) == 1


async def test_4xx_is_rejected_without_retry(make_sender: Callable[..., Any]) -> None:
    """A 4xx is a clear refusal (UpstreamRejected, with the provider's code), never retried."""
    error = {
        "code": 21211,
        "message": "The 'To' number +46701234567 is not a valid phone number.",
        "status": 400,
    }
    recorder = Recorder(httpx.Response(400, json=error))
    sender = make_sender(TWILIO, recorder)

    with pytest.raises(UpstreamRejected) as caught:
        await sender.send(MESSAGE)

    assert len(recorder.requests) == 1
    assert "HTTP 400, code 21211" in caught.value.description
    assert "+46701234567" not in caught.value.description


async def test_an_auth_failure_is_rejected_once(make_sender: Callable[..., Any]) -> None:
    """A 401 is a refusal after exactly one request."""
    recorder = Recorder(httpx.Response(401, text="nope"))
    sender = make_sender(TWILIO, recorder)

    with pytest.raises(UpstreamRejected, match="HTTP 401"):
        await sender.send(MESSAGE)

    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [408, 429])
async def test_throttling_is_unavailable_once(make_sender: Callable[..., Any], status: int) -> None:
    """Throttling and a request timeout pass with time: UpstreamUnavailable, one request."""
    recorder = Recorder(httpx.Response(status, text="slow down"))
    sender = make_sender(TWILIO, recorder)

    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}"):
        await sender.send(MESSAGE)

    assert len(recorder.requests) == 1


async def test_outbox_in_memory() -> None:
    """Without a path the outbox keeps messages on the instance, in order."""
    sender = build_sender({"type": "outbox"}, SenderDeps())
    second = msgspec.structs.replace(MESSAGE, reference="r2")

    await sender.send(MESSAGE)
    await sender.send(second)

    assert isinstance(sender, OutboxSender)
    assert sender.messages == [MESSAGE, second]


async def test_outbox_appends_json_lines(tmp_path: Path) -> None:
    """With a path the outbox appends one JSON object per message."""
    path = tmp_path / "outbox.jsonl"
    sender = build_sender({"type": "outbox", "path": str(path)}, SenderDeps())

    await sender.send(MESSAGE)
    await sender.send(MESSAGE)

    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == msgspec.to_builtins(MESSAGE)
    assert isinstance(sender, OutboxSender) and sender.messages == []


async def test_console_prints_the_text_with_a_masked_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo sender prints the link (by design) but not the full number."""
    sender = build_sender({"type": "console"}, SenderDeps())

    receipt = await sender.send(MESSAGE)

    out = capsys.readouterr().out
    assert isinstance(sender, ConsoleSender)
    assert LINK in out
    assert "+46*******67" in out and "+46701234567" not in out
    assert receipt.provider_id == "r1"


def test_unknown_sender_type_lists_installed() -> None:
    """An unknown sender type names the installed plugins."""
    with pytest.raises(ValueError, match="installed: console, http, outbox"):
        build_sender({"type": "pigeon"}, SenderDeps())


def test_http_sender_config_rejects_bad_values() -> None:
    """The HTTP sender's Config refuses a non-http URL and unknown keys."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"url": "ftp://x"}, HttpSenderConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"url": "https://x", "passwd": "x"}, HttpSenderConfig)


async def test_builtin_senders_are_registered() -> None:
    """The three built-in senders come from the plugin entry-point group."""
    sender = build_sender({"type": "http", "url": "https://x"}, SenderDeps())

    assert type(sender) is HttpSender
    await sender.aclose()
