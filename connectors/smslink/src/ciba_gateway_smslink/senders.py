"""SMS sender plugins: how the one-time link reaches the phone.

A sender is a class registered under the entry-point group
``ciba_gateway_smslink.senders``; the connector's ``sender: {type: NAME, ...}``
picks it and the remaining keys are decoded into the class's ``Config`` Struct.
The class is constructed as ``cls(config, SenderDeps(...))`` once per connector
instance and must provide ``async send(SmsMessage) -> SendReceipt`` and
``async aclose()``. ``send`` raises ``UpstreamRejected`` for a refusal that
retrying will not fix and ``UpstreamUnavailable`` for an outage.

Senders must never log the message text or the link: both carry the secret.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx
import msgspec
from msgspec import Meta

from ciba_gateway.connector import (
    MAX_UPSTREAM_JSON_BYTES,
    ConnectorError,
    ErrorBoundary,
    HttpSettings,
    UpstreamRejected,
    UpstreamUnavailable,
    build_client,
    call_with_retries,
    decode_json,
    mask_phone,
    never_sent,
    unavailable_status,
)

__all__ = [
    "SENDER_GROUP",
    "BasicAuth",
    "BearerAuth",
    "ConsoleSender",
    "ConsoleSenderConfig",
    "FieldNames",
    "HttpSender",
    "HttpSenderConfig",
    "OutboxSender",
    "OutboxSenderConfig",
    "SendReceipt",
    "Sender",
    "SenderDeps",
    "SmsMessage",
    "build_sender",
    "check_sender_spec",
]

SENDER_GROUP = "ciba_gateway_smslink.senders"

Sleep = Callable[[float], Awaitable[None]]

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<rest>[^`]*)`)?$", re.S)


class SmsMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One text to send. ``text`` already contains ``link``; both are secret."""

    to: str
    """E.164 number."""
    text: str
    link: str
    reference: str
    """A non-secret id of this link, for correlating provider logs and ours."""


class SendReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What a sender reports back; ``provider_id`` is the provider's message id when known."""

    provider_id: str | None = None


class SenderDeps(msgspec.Struct, frozen=True, kw_only=True):
    """What a sender receives besides its config: injection points for tests."""

    transport: httpx.AsyncBaseTransport | None = None
    """Replaces the network for HTTP senders (``httpx.MockTransport`` in tests)."""
    sleep: Sleep | None = None
    """Replaces ``asyncio.sleep`` between retries."""


@runtime_checkable
class Sender(Protocol):
    """What a sender class must provide (plus a ``Config`` Struct class attribute)."""

    Config: ClassVar[type[msgspec.Struct]]

    async def send(self, message: SmsMessage) -> SendReceipt:
        """Hand ``message`` to the provider; raise a ConnectorError on failure."""

    async def aclose(self) -> None:
        """Release resources."""


def _sender_class(kind: str) -> type[Sender]:
    found = entry_points(group=SENDER_GROUP, name=kind)
    if not found:
        installed = sorted(ep.name for ep in entry_points(group=SENDER_GROUP))
        raise ValueError(f"unknown sender type {kind!r}; installed: {', '.join(installed)}")
    cls = next(iter(found)).load()
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, msgspec.Struct)):
        raise ValueError(f"sender {kind!r}: Config must be a msgspec.Struct class")
    return cls  # type: ignore[no-any-return]


def _split_spec(spec: Mapping[str, Any]) -> tuple[type[Sender], msgspec.Struct]:
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise ValueError("sender needs a type (console, outbox, http or an installed plugin)")
    cls = _sender_class(kind)
    settings = {k: v for k, v in spec.items() if k != "type"}
    try:
        return cls, msgspec.convert(settings, cls.Config)
    except msgspec.ValidationError as exc:
        # Re-root msgspec's "- at `$.auth`" at the sender, so check-config names the key.
        found = _AT.match(str(exc))
        message, where = (found["msg"], found["rest"] or "") if found else (str(exc), "")
        raise ValueError(f"sender ({kind}): {message} - at `$.sender{where}`") from None


def check_sender_spec(spec: Mapping[str, Any]) -> None:
    """Validate ``sender: {type: ..., ...}`` against the installed plugin's Config."""
    _split_spec(spec)


def build_sender(spec: Mapping[str, Any], deps: SenderDeps) -> Sender:
    """Construct the sender plugin named by ``spec['type']`` with the rest as its Config."""
    cls, config = _split_spec(spec)
    return cls(config, deps)  # type: ignore[call-arg]


# --- console: the demo ------------------------------------------------------


class ConsoleSenderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``{type: console}``: no settings."""


class ConsoleSender:
    """Prints each text (with its link) to standard output: for the demo only."""

    Config = ConsoleSenderConfig

    def __init__(self, config: ConsoleSenderConfig, deps: SenderDeps) -> None:
        self.config = config

    async def send(self, message: SmsMessage) -> SendReceipt:
        # Printing the link is the point of this sender; it is not a log line.
        print(f"[sms to {mask_phone(message.to)}] {message.text}", flush=True)
        return SendReceipt(provider_id=message.reference)

    async def aclose(self) -> None:
        return None


# --- outbox: tests and local development ------------------------------------


class OutboxSenderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``{type: outbox, path: ...}``."""

    path: str | None = None
    """JSON-lines file to append to; None keeps the messages in memory (``messages``)."""


class OutboxSender:
    """Appends each message to a JSON-lines file, or to its own ``messages`` list."""

    Config = OutboxSenderConfig

    def __init__(self, config: OutboxSenderConfig, deps: SenderDeps) -> None:
        self.config = config
        self.messages: list[SmsMessage] = []

    async def send(self, message: SmsMessage) -> SendReceipt:
        if self.config.path is None:
            self.messages.append(message)
        else:
            await asyncio.to_thread(self._append, Path(self.config.path), message)
        return SendReceipt(provider_id=message.reference)

    @staticmethod
    def _append(path: Path, message: SmsMessage) -> None:
        with path.open("ab") as out:
            out.write(msgspec.json.encode(message) + b"\n")

    async def aclose(self) -> None:
        return None


# --- http: real providers ---------------------------------------------------


class BasicAuth(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="basic"):
    """HTTP Basic (Twilio: AccountSid / AuthToken; 46elks: API user / password)."""

    username: str
    password: str


class BearerAuth(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="bearer"
):
    """``Authorization: Bearer <token>`` (Sinch)."""

    token: str


class FieldNames(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Names of the request fields that carry the recipient, the sender id and the text."""

    to: str = "to"
    from_: str = msgspec.field(default="from", name="from")
    body: str = "body"


class HttpSenderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``{type: http, ...}``: one POST per message, form- or JSON-encoded."""

    url: Annotated[str, Meta(pattern=r"^https?://")]
    encoding: Literal["form", "json"] = "form"
    auth: BasicAuth | BearerAuth | None = msgspec.field(default=None)
    fields: FieldNames = msgspec.field(default_factory=FieldNames)
    sender_id: str | None = None
    """Value of the ``from`` field (a number or an alphanumeric id); None omits it."""
    extra: dict[str, str] = msgspec.field(default_factory=dict)
    """Constant fields added to every request (``MessagingServiceSid``, ``dontlog``)."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    success_statuses: tuple[Annotated[int, Meta(ge=200, le=299)], ...] = (200, 201, 202)
    id_field: str | None = None
    """Top-level JSON field of the answer holding the provider's message id (``sid``, ``id``)."""
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)

    def __post_init__(self) -> None:
        if not self.success_statuses:
            raise ValueError("success_statuses must not be empty")


class _NotSent(Exception):
    """An answer with a status outside ``success_statuses``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.status = response.status_code
        self.response = response


_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def _retryable(exc: BaseException) -> bool:
    """A send that surely did not go out: no connection, or a 503 (the request was not handled).

    After a read timeout, a 500, 502 or 504 the text may be on its way: it is not sent twice.
    """
    return never_sent(exc) or (isinstance(exc, _NotSent) and exc.status == 503)


class _ProviderErrors(ErrorBoundary):
    """The HTTP sender's one error-translation boundary: provider failures to ConnectorErrors.

    5xx, 408, 429 and transport errors are ``UpstreamUnavailable``; any other
    status outside ``success_statuses`` is a refusal (``UpstreamRejected``, with the
    provider's error code when it is a short token, never its message).
    """

    __slots__ = ()

    def translate(self, exc: Exception) -> ConnectorError | None:
        if isinstance(exc, _NotSent):
            if unavailable_status(exc.status):
                return UpstreamUnavailable(f"the SMS provider failed (HTTP {exc.status})")
            code = _error_code(exc.response)
            detail = f"HTTP {exc.status}" + (f", code {code}" if code else "")
            return UpstreamRejected(f"the SMS provider refused the message ({detail})")
        if isinstance(exc, httpx.TransportError):
            return UpstreamUnavailable("the SMS provider could not be reached")
        return None


_provider_errors = _ProviderErrors()


def _error_code(response: httpx.Response) -> str | None:
    """The provider's error code (Twilio ``code``) when it is a short token; never its message."""
    try:
        body = decode_json(response.content, max_bytes=MAX_UPSTREAM_JSON_BYTES)
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, int | str) and _SAFE_CODE.match(str(code)):
        return str(code)
    return None


class HttpSender:
    """A generic HTTP SMS provider client (Twilio, 46elks, Sinch-like APIs).

    Retries only what surely sent nothing (no connection, a 503) with the
    ``http.retries`` budget; 5xx, 408 and 429 are ``UpstreamUnavailable``, another
    4xx is a refusal (``UpstreamRejected``).
    """

    Config = HttpSenderConfig

    def __init__(self, config: HttpSenderConfig, deps: SenderDeps) -> None:
        self.config = config
        self._sleep = deps.sleep
        headers = dict(config.headers)
        if isinstance(config.auth, BearerAuth):
            headers["Authorization"] = f"Bearer {config.auth.token}"
        self._auth = (
            httpx.BasicAuth(config.auth.username, config.auth.password)
            if isinstance(config.auth, BasicAuth)
            else None
        )
        self._client = build_client("", config.http, transport=deps.transport, headers=headers)

    def _payload(self, message: SmsMessage) -> dict[str, Any]:
        names = self.config.fields
        payload: dict[str, Any] = dict(self.config.extra)
        payload[names.to] = message.to
        if self.config.sender_id is not None:
            payload[names.from_] = self.config.sender_id
        payload[names.body] = message.text
        return payload

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        kwargs: dict[str, Any] = (
            {"json": payload} if self.config.encoding == "json" else {"data": payload}
        )
        if self._auth is not None:
            kwargs["auth"] = self._auth
        response = await self._client.post(self.config.url, **kwargs)
        if response.status_code not in self.config.success_statuses:
            raise _NotSent(response)
        return response

    async def send(self, message: SmsMessage) -> SendReceipt:
        payload = self._payload(message)
        with _provider_errors:
            response = await call_with_retries(
                lambda: self._post(payload),
                self.config.http.retries,
                predicate=_retryable,
                sleep=self._sleep,
            )
        return SendReceipt(provider_id=self._provider_id(response))

    def _provider_id(self, response: httpx.Response) -> str | None:
        if self.config.id_field is None:
            return None
        try:
            body = decode_json(response.content, max_bytes=MAX_UPSTREAM_JSON_BYTES)
        except ValueError:
            return None
        value = body.get(self.config.id_field) if isinstance(body, dict) else None
        return str(value) if isinstance(value, str | int) else None

    async def aclose(self) -> None:
        await self._client.aclose()
