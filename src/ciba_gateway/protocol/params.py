"""Form parameters of the backchannel and token endpoints.

Rules (RFC 6749 sections 3.1, 3.2 and 4.1.3 / CIBA Core 7.1 and 10.1):

- The body must be ``application/x-www-form-urlencoded``; a ``charset`` parameter is
  allowed and must be UTF-8. Other media type parameters are ignored.
- Bodies larger than 64 KiB or with more than 256 fields are refused.
- A parameter sent without a value is treated as omitted (so ``a=&a=1`` is not a
  duplicate).
- A parameter sent more than once with a value is an ``invalid_request``, even if
  the values agree.
- A parameter without a name (``=value``) is malformed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from urllib.parse import unquote_plus

from ciba_gateway.errors import InvalidRequestError

__all__ = ["FORM_CONTENT_TYPE", "MAX_BODY_BYTES", "MAX_FIELDS", "parse_form", "require"]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 256
_UTF8_NAMES = frozenset({"utf-8", "utf8"})
_CACHED_LENGTH = 64


def _check_content_type(content_type: str | None) -> None:
    if content_type is None:
        raise InvalidRequestError(f"the request body must be {FORM_CONTENT_TYPE}")
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != FORM_CONTENT_TYPE:
        raise InvalidRequestError(f"the request body must be {FORM_CONTENT_TYPE}")
    if not parameters:
        return
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            _UTF8_NAMES
        ):
            raise InvalidRequestError("the request body must be encoded as UTF-8")


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """Decode a form body into a dict of non-empty parameters.

    Raises:
        InvalidRequestError: wrong content type or charset, body too large, not
            UTF-8, a nameless field, or a parameter included more than once.
    """
    _check_content_type(content_type)
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequestError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not body:
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the request body is not valid UTF-8") from None
    # The rules of urllib's parse_qsl (separator "&", blank values dropped, a field
    # without "=" ignored), without its generality: this runs on every token poll.
    if text.count("&") >= MAX_FIELDS:
        raise InvalidRequestError(f"the request body has more than {MAX_FIELDS} parameters")
    params: dict[str, str] = {}
    for field in text.split("&"):
        name, eq, value = field.partition("=")
        if not eq or not value:
            # Blank values are dropped here, so "a=&a=1" is one parameter, not a duplicate.
            continue
        try:
            if "%" in name or "+" in name:
                name = _unquote(name)
            if "%" in value or "+" in value:
                value = _unquote(value)
        except UnicodeDecodeError:
            raise InvalidRequestError("the request body is not valid UTF-8") from None
        if not name:
            raise InvalidRequestError("the request body has a parameter without a name")
        if name in params:
            raise InvalidRequestError(f"parameter included more than once: {name[:64]}")
        params[name] = value
    return params


@functools.lru_cache(maxsize=256)
def _unquote_cached(text: str) -> str:
    return unquote_plus(text, errors="strict")


def _unquote(text: str) -> str:
    # Short values repeat on every request (grant_type, scope): decode them once.
    if len(text) <= _CACHED_LENGTH:
        return _unquote_cached(text)
    return unquote_plus(text, errors="strict")


def require(params: Mapping[str, str], name: str) -> str:
    """The value of a required parameter.

    Raises:
        InvalidRequestError: the parameter is absent (or was sent empty).
    """
    value = params.get(name)
    if not value:
        raise InvalidRequestError(f"missing parameter: {name}")
    return value
