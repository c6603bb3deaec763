"""Logging setup and the redaction processor (DESIGN.md section 8).

``configure_logging`` is called once at startup; modules only call
``structlog.get_logger()``. Every event passes ``redact`` before rendering:

- values under secret keys (``client_secret``, tokens, ``authorization``, upstream
  signature ``evidence`` / ``proof``, ...,
  and any key ending in ``_secret``, ``_token`` or ``password``; matched
  case-insensitively with ``-`` read as ``_``) become ``"[redacted]"``;
- ``login_hint`` is masked with ``mask_hint``, ``auth_req_id`` is replaced by
  ``auth_req_ref``, and a ``LoginHint`` anywhere is masked;
- in every other string, at any depth of dicts, lists and tuples: JWTs (compact
  JWS or JWE, recognised by their ``eyJ`` header so host names and versions are
  left alone) become ``"[jwt]"``, and email addresses, E.164 numbers and SE or NO
  personal numbers are masked by ``mask_text`` (the rules of
  ``ciba_gateway.connector.masking``: ``a***@example.com``, ``+46*******67``,
  ``19900101****``).

Exceptions are rendered to structured data before ``redact`` runs (JSON), so
their messages are scrubbed too; local variables are never shown.

A line written inside an open span (tracing enabled) carries its ``trace_id`` and
``span_id`` (``add_trace_ids``, after ``redact``: hex ids are not personal data).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sys
import threading
import time
from typing import Any, Literal

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ciba_gateway.connector.api import LoginHint
from ciba_gateway.connector.masking import mask_hint, mask_text
from ciba_gateway.tracing import current_ids

__all__ = [
    "REDACTED",
    "SECRET_KEYS",
    "Redactor",
    "add_trace_ids",
    "auth_req_ref",
    "configure_logging",
    "redact",
]

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "access_token",
        "authorization",
        "client_assertion",
        "client_notification_token",
        "client_secret",
        "code",
        "cookie",
        "evidence",
        "id_token",
        "id_token_hint",
        "login_hint_token",
        "password",
        "private_key",
        "proof",
        "proxy_authorization",
        "refresh_token",
        "request",
        "secret",
        "set_cookie",
        "user_code",
    }
)
_SECRET_SUFFIXES = ("_secret", "_token", "password")
_MAX_DEPTH = 12
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){2}(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?")


def auth_req_ref(auth_req_id: str) -> str:
    """A short, non-reversible reference to an auth_req_id for logs (12 hex of SHA-256)."""
    return hashlib.sha256(auth_req_id.encode()).hexdigest()[:12]


def _scrub_text(text: str) -> str:
    if "eyJ" in text:
        text = _JWT.sub("[jwt]", text)
    return mask_text(text)


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    # Cached: event keys come from the code, a small set seen on every log line.
    normalized = key.lower().replace("-", "_")
    return normalized in SECRET_KEYS or normalized.endswith(_SECRET_SUFFIXES)


def _scrub(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        if value < 10**9:
            return value
        text = str(value)
        scrubbed = _scrub_text(text)
        return value if scrubbed == text else scrubbed
    if depth >= _MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, dict):
        return {key: _scrub_item(key, item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item, depth + 1) for item in value]
    if isinstance(value, LoginHint):
        return mask_hint(value)
    if isinstance(value, msgspec.Struct):
        return _scrub(msgspec.to_builtins(value), depth + 1)
    return value


def _scrub_item(key: Any, value: Any, depth: int) -> Any:
    if not isinstance(key, str):
        return _scrub(value, depth)
    if key == "exc_info" and depth == 0:
        return value  # ConsoleRenderer needs the exception itself; JSON has rendered it already
    if _is_secret_key(key):
        return value if value is None else REDACTED
    if key == "login_hint" and isinstance(value, str | LoginHint):
        return mask_hint(value)
    if key == "auth_req_id" and isinstance(value, str):
        return auth_req_ref(value)
    return _scrub(value, depth)


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: remove secrets and mask personal data (see module docstring)."""
    for key, value in event_dict.items():
        event_dict[key] = _scrub_item(key, value, 0)
    return event_dict


class Redactor:
    """Processor: ``redact``, remembering the short strings it left alone under ordinary keys.

    Most values of a line repeat on every line (event names, methods, endpoints,
    tenant and client ids, and inside the audit event its tenant, client,
    connector, masked subject, outcome and acr) and hold nothing to mask; each is
    scrubbed once and then recognised by a set lookup, at any depth. Only strings
    ``redact`` returned unchanged are remembered (no personal data, no secrets),
    and the memo is used only where ``redact`` would scrub the string as free
    text: keys that are secret or masked (``login_hint``, ``auth_req_id``,
    ``exc_info``) always take the full path. The memo is bounded and per
    instance: ``configure_logging`` builds its own.
    """

    __slots__ = ("_clean", "_plain_keys")

    _MAX_ENTRIES = 2048
    _MAX_LENGTH = 64

    def __init__(self) -> None:
        self._clean: set[str] = set()
        self._plain_keys: set[str] = set()

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        clean = self._clean
        plain = self._plain_keys
        for key, value in event_dict.items():
            kind = value.__class__
            if key in plain and (
                (kind is str and value in clean) or kind is float or (kind is int and value < 10**9)
            ):
                continue  # the common cases, without a call
            event_dict[key] = self._item(key, value, 0)
        return event_dict

    def _item(self, key: Any, value: Any, depth: int) -> Any:
        # _scrub_item, with the memo for the values of plain keys.
        if key in self._plain_keys:
            return self._value(value, depth)
        if not _is_plain_key(key):
            return _scrub_item(key, value, depth)
        _bounded_add(self._plain_keys, key, self._MAX_ENTRIES)
        return self._value(value, depth)

    def _value(self, value: Any, depth: int) -> Any:
        # _scrub, with the memo for strings and for what containers hold.
        kind = value.__class__
        if kind is str:
            if value in self._clean:
                return value
            scrubbed = _scrub_text(value)
            if scrubbed == value and len(value) <= self._MAX_LENGTH:
                _bounded_add(self._clean, value, self._MAX_ENTRIES)
            return scrubbed
        if kind is float or value is None or kind is bool or (kind is int and value < 10**9):
            return value
        if depth >= _MAX_DEPTH:
            return _scrub(value, depth)
        if kind is dict:
            return {key: self._item(key, item, depth + 1) for key, item in value.items()}
        if kind is list or kind is tuple:
            return [self._value(item, depth + 1) for item in value]
        return _scrub(value, depth)


def _bounded_add(memo: set[str], item: str, limit: int) -> None:
    if len(memo) >= limit:
        memo.clear()  # relearning the few hot entries costs one line each
    memo.add(item)


def _is_plain_key(key: Any) -> bool:
    # A key whose value _scrub_item passes to _scrub unchanged in meaning.
    return (
        key.__class__ is str
        and key not in ("exc_info", "login_hint", "auth_req_id")
        and not _is_secret_key(key)
    )


def add_trace_ids(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``trace_id`` and ``span_id`` of the open span, if any."""
    ids = current_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


def _json(obj: Any, **_: Any) -> str:
    # msgspec instead of json.dumps: the stdlib handler's formatter needs a str.
    return msgspec.json.encode(obj, enc_hook=repr).decode()


def _render_json(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> bytes:
    # The same bytes as JSONRenderer(serializer=_json), not decoded: _LineWriter takes bytes.
    return msgspec.json.encode(event_dict, enc_hook=repr)


class _Exceptions:
    """Processor: ``ExceptionRenderer``, called only for events that carry ``exc_info``."""

    __slots__ = ("_render",)

    def __init__(self) -> None:
        self._render = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if "exc_info" not in event_dict:
            return event_dict  # what ExceptionRenderer does then, without its calls
        return self._render(logger, method_name, event_dict)


class _LineWriter:
    """Logger: writes each line to the current ``sys.stdout`` and flushes it at once.

    What ``PrintLogger`` did (one line, then a flush: nothing waits in a user-space
    buffer after the call), but JSON lines arrive as bytes and go straight to the
    stream's binary buffer, without a decode and a re-encode.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def msg(self, message: str | bytes) -> None:
        """Write ``message`` and a newline, then flush."""
        stream = sys.stdout
        if stream is None:
            return  # no stdout at all (pythonw): print wrote nowhere too
        raw = getattr(stream, "buffer", None)
        with self._lock:
            if message.__class__ is bytes and raw is not None:
                stream.flush()  # text written before this line stays before it
                raw.write(message + b"\n")
                raw.flush()
            else:
                if isinstance(message, bytes):
                    message = message.decode()
                stream.write(message + "\n")
                stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _UtcTimestamp:
    """Processor: ``timestamp`` in ISO 8601 UTC with microseconds.

    The date part is formatted once a second; each ``configure_logging`` call
    builds its own instance, so the cache is not module state.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        whole, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if whole != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole))
            self._second = whole
        event_dict["timestamp"] = f"{self._prefix}{micros:06d}Z"
        return event_dict


def _one(writer: _LineWriter, *_: Any) -> _LineWriter:
    # The logger factory: every logger writes through the one writer (and its lock).
    return writer


def configure_logging(format: Literal["json", "console"] = "json", level: str = "info") -> None:
    """Configure structlog for the process: call once at startup.

    ``json`` writes one JSON object per line to stdout; ``console`` is for humans.

    Raises:
        ValueError: unknown format or level name.
    """
    min_level = logging.getLevelNamesMapping().get(level.upper())
    if min_level is None:
        raise ValueError(f"unknown log level: {level!r}")
    renderer: Processor
    line_renderer: Processor
    if format == "json":
        exceptions: list[Processor] = [_Exceptions()]
        renderer = structlog.processors.JSONRenderer(serializer=_json)
        line_renderer = _render_json
    elif format == "console":
        # ConsoleRenderer formats exc_info itself; plain_traceback shows no locals.
        exceptions = []
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stdout.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        line_renderer = renderer
    else:
        raise ValueError(f"unknown log format: {format!r} (expected json or console)")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *exceptions,
            Redactor(),
            add_trace_ids,
            _UtcTimestamp(),  # after redact: our own clock needs no scrubbing
            line_renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=functools.partial(_one, _LineWriter()),
        cache_logger_on_first_use=True,
    )
    # Lines of other libraries (the ASGI server's own, say) go through the stdlib:
    # one root handler renders them with the same processors, so there is one format.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                _UtcTimestamp(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                Redactor(),
                add_trace_ids,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(min_level)
    # httpx logs every request at INFO through the stdlib, unredacted and not as
    # JSON; our own events already cover outbound calls.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
