"""JSON from outside, decoded with a size and a nesting cap.

Both JSON decoders at hand (msgspec and the stdlib) recurse per nesting level, so
``[[[[...`` a few thousand deep raises ``RecursionError``, not a decode error.
``decode_json`` refuses such input before decoding: it counts brackets outside
strings in one pass, without recursion, and a document with fewer opening
brackets than the cap is not even scanned (the common case: a JWS header has one).

``JsonLimitError`` subclasses ``msgspec.DecodeError`` (itself a ``ValueError``),
so a caller that already handles malformed JSON handles oversized JSON too.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_UPSTREAM_JSON_BYTES",
    "JsonLimitError",
    "check_json",
    "decode_json",
]

MAX_JSON_BYTES = 64 * 1024
"""Default size cap in bytes (the form bodies that carry client JSON are capped at 64 KiB)."""
MAX_UPSTREAM_JSON_BYTES = 1024 * 1024
"""Size cap for an upstream's answer (BankID completion data carries signatures: a few KiB)."""
MAX_JSON_DEPTH = 32
"""Default nesting cap: arrays and objects inside each other."""

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_OPEN = frozenset(b"[{")


class JsonLimitError(msgspec.DecodeError):
    """JSON refused before decoding: larger or more deeply nested than allowed."""


def check_json(
    data: bytes | str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> None:
    """Raise ``JsonLimitError`` when ``data`` exceeds ``max_bytes`` or ``max_depth``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonLimitError(f"JSON larger than {max_bytes} bytes")
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    depth = 0
    for byte in _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in _OPEN:
            depth += 1
            if depth > max_depth:
                raise JsonLimitError(f"JSON nested deeper than {max_depth} levels")
        else:
            depth -= 1


def decode_json(
    data: bytes | str,
    *,
    type: Any = Any,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    decoder: msgspec.json.Decoder[Any] | None = None,
) -> Any:
    """``msgspec.json.decode(data, type=type)`` after ``check_json``; ``decoder`` reuses one.

    Raises:
        msgspec.DecodeError: malformed JSON (``JsonLimitError`` when over a cap).
        msgspec.ValidationError: the JSON does not match ``type``.
    """
    check_json(data, max_bytes=max_bytes, max_depth=max_depth)
    if decoder is not None:
        return decoder.decode(data)
    return msgspec.json.decode(data, type=type)
