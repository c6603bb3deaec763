"""Masking of personal data for logs, audit events and pages: one rule per kind.

=================  ==========================================  ======================
kind               rule                                        example
=================  ==========================================  ======================
national id        keep the birth-date part, star the rest;    ``19900101****``,
                   12 digits keep 8, 10 and 11 digits keep 6;  ``900101-****``,
                   a ``-``/``+`` separator stays in place      ``151086*****``
phone number       keep ``+``, the E.164 country code (1-3     ``+46*******67``,
                   digits) and the last two digits             ``+1********23``
email address      keep the first character and the domain     ``a***@example.com``
login hint         ``kind:`` and the rule of its kind; other   ``tel:+46*******67``,
                   kinds and unreadable hints show no value    ``freja_id:***``
free text          every email address, E.164 number and       ``call +46*******67``
                   plausible SE/NO personal number in it
=================  ==========================================  ======================

In free text a number counts as a phone number when it starts with ``+`` and has
8 to 15 digits (single spaces or dashes allowed between them), and as a personal
number when a run of 10-12 digits (``-``/``+`` before the last four allowed)
passes ``is_national_id``. Other digit runs (order references, timestamps) are
left alone so logs stay useful; what a connector logs of an upstream's text is
masked by the same rule, since upstreams only echo the identifiers the gateway
validated and sent them.

No masked form contains the full identifier.
"""

from __future__ import annotations

import re

from ciba_gateway.connector.api import LoginHint
from ciba_gateway.connector.national_id import is_digits, is_national_id

__all__ = ["mask_email", "mask_hint", "mask_national_id", "mask_phone", "mask_text"]

# E.164 country codes of one and two digits; every other code has three (ITU-T E.164 annex).
_CC1 = frozenset("17")
_CC2 = frozenset(
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98".split()
)
_ATEXT = "A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_EMAIL = re.compile(rf"(?<![{_ATEXT}])[{_ATEXT}]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NUMBER = re.compile(
    r"(?P<tel>\+[1-9](?:[ -]?[0-9]){7,14}(?![0-9]))"
    r"|(?P<pnr>(?<![0-9])(?:[0-9]{6}|[0-9]{8})[-+]?[0-9]{4}(?![0-9])|(?<![0-9])[0-9]{11}(?![0-9]))"
)
_MIN_TEXT = 6  # nothing shorter holds an address or a number worth masking
_HINT_KINDS = {"ssn": "ssn", "tel": "tel", "phone": "tel", "email": "email"}


def mask_national_id(number: str) -> str:
    """A personal number with only its birth-date part kept (``19900101****``)."""
    keep = 8 if sum(ch.isdigit() for ch in number) == 12 else 6
    out: list[str] = []
    for ch in number:
        if ch.isdigit():
            out.append(ch if keep > 0 else "*")
            keep -= 1
        else:
            out.append(ch)
    return "".join(out)


def mask_phone(number: str) -> str:
    """A phone number with ``+``, the country code and the last two digits kept."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) < 6:
        return "+" + "*" * len(digits)
    if digits[0] in _CC1:
        cc = 1
    elif digits[:2] in _CC2:
        cc = 2
    else:
        cc = 3
    return f"+{digits[:cc]}{'*' * (len(digits) - cc - 2)}{digits[-2:]}"


def mask_email(address: str) -> str:
    """An email address with the first character of its local part and the domain kept."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_hint(hint: LoginHint | str) -> str:
    """A login hint fit for a log: ``ssn:19900101****``, ``email:a***@example.com``.

    A raw string is read as the built-in grammar reads it (``phone:`` and
    ``sub:ssn:`` are aliases, an ``ssn`` may name its country) without being
    validated: a value its kind's rule cannot recognise gives ``kind:***``, and
    a string of no known kind gives ``***``.
    """
    if isinstance(hint, LoginHint):
        if hint.kind == "ssn":
            return f"ssn:{mask_national_id(hint.value)}"
        if hint.kind == "tel":
            return f"tel:{mask_phone(hint.value)}"
        if hint.kind == "email":
            return f"email:{mask_email(hint.value)}"
        return f"{hint.kind}:***"
    kind, sep, value = hint.strip().partition(":")
    kind = kind.lower()
    if kind == "sub":
        kind, sep, value = value.partition(":")
        kind = "ssn" if kind.lower() == "ssn" else ""
    kind = _HINT_KINDS.get(kind.lower(), "")
    if not sep or not kind:
        return "***"
    return f"{kind}:{_mask_value(kind, value) or '***'}"


def _mask_value(kind: str, value: str) -> str | None:
    """The masked value of a built-in kind, or None when the kind's rule cannot read it."""
    if kind == "ssn":
        country, sep, number = value.partition(":")
        if sep and country.upper() in ("SE", "NO"):
            value = number
        plain = value.replace("-", "").replace("+", "")
        return mask_national_id(value) if is_national_id(plain) else None
    if kind == "tel":
        number = value.replace(" ", "")
        readable = number[:1] == "+" and is_digits(number[1:]) and 8 <= len(number) - 1 <= 15
        return mask_phone(number) if readable else None
    readable = value.count("@") == 1 and _EMAIL.fullmatch(value) is not None
    return mask_email(value) if readable else None


def _mask_number(match: re.Match[str]) -> str:
    text = match.group()
    if match.lastgroup == "tel":
        return mask_phone(text)
    if is_national_id(text.replace("-", "").replace("+", "")):
        return mask_national_id(text)
    return text


def mask_text(text: str) -> str:
    """Free text with every email address, phone number and personal number in it masked."""
    if len(text) < _MIN_TEXT:
        return text
    if "@" in text:
        text = _EMAIL.sub(lambda match: mask_email(match.group()), text)
    return _NUMBER.sub(_mask_number, text)
