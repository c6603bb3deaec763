"""CIBA ``login_hint`` parsing.

Grammar (kinds are case-insensitive; surrounding whitespace is ignored)::

    login_hint  = ssn-hint / tel-hint / email-hint / extra-hint      ; at most 320 characters
    ssn-hint    = ["sub:"] "ssn:" [country ":"] national-id
    country     = "SE" / "NO"                                          ; case-insensitive
    tel-hint    = ("tel:" / "phone:") "+" 8*15DIGIT                    ; spaces allowed, removed
    email-hint  = "email:" local "@" domain
    extra-hint  = kind ":" value       ; only kinds passed in ``extra_kinds`` (connector-declared)

A national id is read by ``ciba_gateway.connector.national_id`` (the forms, check
digits and birth-date rules of UPSTREAMS.md section 5): a Swedish number becomes 12
digits with country ``SE``, a Norwegian one stays as sent with country ``NO``.
Without a country, 10 or 12 digits (or a ``-``/``+`` separator) mean SE and 11
digits mean NO.

A ``+`` in an unencoded form body arrives as a space, so the errors for a phone
number or a 10-digit personnummer that contain a space say to send ``%2B``.

Error descriptions never repeat the identifier itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date

from ciba_gateway.connector.api import LoginHint
from ciba_gateway.connector.national_id import (
    NationalIdError,
    is_digits,
    parse_norwegian,
    parse_swedish,
)
from ciba_gateway.errors import InvalidRequestError

__all__ = [
    "KIND_ALIASES",
    "MAX_HINT_LENGTH",
    "SUPPORTED_KINDS",
    "parse_login_hint",
]

MAX_HINT_LENGTH = 320
"""Room for ``email:`` plus the longest legal address (254), refused before parsing."""
SUPPORTED_KINDS = ("email", "phone", "ssn", "sub:ssn", "tel")
"""The built-in kinds as written in a hint; ``phone`` and ``sub:ssn`` are aliases."""

KIND_ALIASES = {"phone": "tel"}
"""Kinds written another way in a hint (or a route pattern) and the kind they mean."""
_SUPPORTED_TEXT = ", ".join(SUPPORTED_KINDS)

# A host name label: 1-63 letters, digits (str.isalnum, so any script's) or hyphens, no
# hyphen at either end; [^\W_] is exactly isalnum. Two labels at least.
_LABEL = r"(?!-)(?:[^\W_]|-){1,63}(?<!-)"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


def _invalid(description: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid login_hint: {description}")


# --- parsing -----------------------------------------------------------------


def parse_login_hint(
    raw: str,
    *,
    today: date | None = None,
    extra_kinds: Collection[str] = (),
    allow_test_numbers: bool = False,
) -> LoginHint:
    """Parse and normalize a ``login_hint`` (grammar in the module docstring).

    ``today`` drives the century of 10-digit Swedish numbers and the future-date
    check; ``extra_kinds`` are connector-declared kinds passed through unchanged.

    Raises:
        InvalidRequestError: the hint is malformed or of an unsupported kind.
    """
    if len(raw) > MAX_HINT_LENGTH:
        raise _invalid(f"longer than {MAX_HINT_LENGTH} characters")
    text = raw.strip()
    kind, sep, value = text.partition(":")
    if not sep:
        raise _invalid(f"expected kind:value, supported kinds: {_SUPPORTED_TEXT}")
    kind = kind.lower()
    kind = KIND_ALIASES.get(kind, kind)
    if kind == "sub":
        sub_kind, sep, value = value.partition(":")
        if not sep or sub_kind.lower() != "ssn":
            raise _invalid("only sub:ssn:<id> is supported for sub")
        kind = "ssn"
    if kind == "ssn":
        return _parse_ssn(value, today or date.today(), allow_test_numbers)
    if kind == "tel":
        return LoginHint(kind="tel", value=_parse_e164(value))
    if kind == "email":
        return LoginHint(kind="email", value=_parse_email(value))
    if kind in extra_kinds:
        if not value or not value.isprintable():
            raise _invalid(f"the {kind} value is empty or has control characters")
        return LoginHint(kind=kind, value=value)
    supported = ", ".join(sorted((*SUPPORTED_KINDS, *extra_kinds)))
    plain = len(kind) <= 32 and kind.isascii() and kind.replace("_", "").isalpha()
    shown = f" {kind!r}" if plain else ""
    raise _invalid(f"unsupported kind{shown}, supported kinds: {supported}")


def _parse_ssn(value: str, today: date, allow_test_numbers: bool) -> LoginHint:
    country, sep, number = value.partition(":")
    if sep:
        country = country.upper()
        if country not in ("SE", "NO"):
            raise _invalid("unsupported ssn country, supported: NO, SE")
    elif is_digits(value) and len(value) == 11:
        country, number = "NO", value
    elif len(value) in (10, 11, 12, 13):
        country, number = "SE", value
    else:
        raise _invalid(
            "expected a Swedish (10 or 12 digits) or Norwegian (11 digits) personal number"
        )
    try:
        if country == "NO":
            normalized = parse_norwegian(number, today, allow_test_numbers=allow_test_numbers)
        else:
            normalized = parse_swedish(number, today)
    except NationalIdError as exc:
        raise _invalid(str(exc)) from None
    return LoginHint(kind="ssn", value=normalized, country=country)


def _parse_e164(value: str) -> str:
    if value.startswith(" "):
        raise _invalid("a phone number must start with + (send it as %2B in a form body)")
    number = value.replace(" ", "")
    digits = number[1:]
    if not number.startswith("+") or not is_digits(digits):
        raise _invalid("a phone number must be in E.164 form, like +46701234567")
    if not 8 <= len(digits) <= 15 or digits[0] == "0":
        raise _invalid("an E.164 phone number has 8 to 15 digits and no leading zero")
    return number


def _parse_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or "@" in local:
        raise _invalid("an email address has exactly one @")
    if len(value) > 254 or not local or len(local) > 64:
        raise _invalid("the email address is empty or too long")
    # isprintable() is False for every whitespace character but the ASCII space.
    if " " in value or not value.isprintable():
        raise _invalid("an email address has no spaces or control characters")
    if _DOMAIN.fullmatch(domain) is None:
        raise _invalid("the email domain is not a valid host name")
    return f"{local}@{domain.lower()}"
