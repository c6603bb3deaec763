"""CIBA ``login_hint`` parsing and route matching.

Grammar (kinds are case-insensitive; surrounding whitespace is ignored)::

    login_hint  = ssn-hint / tel-hint / email-hint / extra-hint      ; at most 320 characters
    ssn-hint    = ["sub:"] "ssn:" [country ":"] national-id
    country     = "SE" / "NO"                                          ; case-insensitive
    tel-hint    = ("tel:" / "phone:") "+" 8*15DIGIT                    ; spaces allowed, removed
    email-hint  = "email:" local "@" domain
    extra-hint  = kind ":" value       ; only kinds passed in ``extra_kinds`` (connector-declared)

National ids (UPSTREAMS.md section 5):

- Swedish personnummer / samordningsnummer: ``YYYYMMDDNNNC`` or ``YYYYMMDD-NNNC``
  (12 digits), ``YYMMDDNNNC``, ``YYMMDD-NNNC`` or ``YYMMDD+NNNC`` (10 digits). The
  Luhn check digit is computed over the 10-digit form; a samordningsnummer has day
  + 60. The 10-digit form gets its century from ``today``: ``-`` (or none) means
  under 100 years old, ``+`` means 100 or older. The ``+`` separator is rejected on
  the 12-digit form, which carries its century. Normalized to 12 digits
  ``YYYYMMDDNNNC`` (day + 60 kept for a samordningsnummer), country ``SE``.
- Norwegian fødselsnummer: 11 digits ``DDMMYYIIIK1K2`` with both mod-11 checks;
  D-number (day + 40), H-number (month + 40) and FH-number (first digit 8 or 9,
  no date, checksums only) are accepted; the century comes from ``III``. With
  ``allow_test_numbers`` the synthetic test identities (month + 80) pass too.
  Country ``NO``.
- Without a country, 10 or 12 digits (or a ``-``/``+`` separator) mean SE and 11
  digits mean NO. A birth date after ``today`` is rejected.

A ``+`` in an unencoded form body arrives as a space, so the errors for a phone
number or a 10-digit personnummer that contain a space say to send ``%2B``.

Error descriptions never repeat the identifier itself.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from fnmatch import fnmatchcase

from ciba_gateway.connector.api import LoginHint
from ciba_gateway.connector.national_id import (
    is_digits,
    luhn_ok,
    no_birth_date_parts,
    no_checksums_ok,
)
from ciba_gateway.errors import InvalidRequestError

__all__ = [
    "MAX_HINT_LENGTH",
    "SUPPORTED_KINDS",
    "hint_matches",
    "parse_login_hint",
]

MAX_HINT_LENGTH = 320
"""Room for ``email:`` plus the longest legal address (254), refused before parsing."""
SUPPORTED_KINDS = ("email", "phone", "ssn", "sub:ssn", "tel")
"""The built-in kinds as written in a hint; ``phone`` and ``sub:ssn`` are aliases."""

_KIND_ALIASES = {"phone": "tel"}
_SUPPORTED_TEXT = ", ".join(SUPPORTED_KINDS)


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
    kind = _KIND_ALIASES.get(kind, kind)
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
    if country == "NO":
        normalized = _parse_no(number, today, allow_test_numbers)
    else:
        normalized = _parse_se(number, today)
    return LoginHint(kind="ssn", value=normalized, country=country)


def _parse_se(value: str, today: date) -> str:
    """A Swedish personnummer or samordningsnummer, normalized to 12 digits."""
    separator = "-"
    if len(value) in (11, 13) and value[-5] in "-+ ":
        separator = value[-5]
        value = value[:-5] + value[-4:]
    if separator == " ":
        raise _invalid("a space in a personal number (send the + separator as %2B)")
    if not is_digits(value) or len(value) not in (10, 12):
        raise _invalid("a Swedish personal number has 10 or 12 digits")
    if not luhn_ok(value[-10:]):
        raise _invalid("the check digit of the Swedish personal number is wrong")
    month, day = int(value[-8:-6]), int(value[-6:-4])
    if day > 60:
        day -= 60  # samordningsnummer
    if len(value) == 12:
        if separator == "+":
            raise _invalid("the + separator is only used with the 10-digit form")
        year = int(value[:4])
    else:
        yy = int(value[:2])
        year = today.year - (today.year - yy) % 100
        if (year, month, day) > (today.year, today.month, today.day):
            year -= 100
        if separator == "+":
            year -= 100
    _check_birth_date(year, month, day, today)
    return value if len(value) == 12 else f"{year:04d}{value[2:]}"


def _parse_no(value: str, today: date, allow_test_numbers: bool) -> str:
    """A Norwegian fødselsnummer (or D-, H-, FH-number), returned unchanged."""
    if not is_digits(value) or len(value) != 11:
        raise _invalid("a Norwegian personal number has 11 digits")
    if not no_checksums_ok(value):
        raise _invalid("the check digits of the Norwegian personal number are wrong")
    birth = no_birth_date_parts(value, allow_test_numbers)
    if birth is None:
        raise _invalid("the Norwegian personal number has no valid birth date")
    if birth:  # () is an FH-number, which carries no date
        _check_birth_date(*birth, today)
    return value


def _check_birth_date(year: int, month: int, day: int, today: date) -> None:
    try:
        born = date(year, month, day)
    except ValueError:
        raise _invalid("the personal number has no valid birth date") from None
    if born > today:
        raise _invalid("the personal number has a birth date in the future")


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
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise _invalid("an email address has no spaces or control characters")
    labels = domain.split(".")
    if len(labels) < 2 or any(
        not label
        or len(label) > 63
        or label[0] == "-"
        or label[-1] == "-"
        or not all(ch.isalnum() or ch == "-" for ch in label)
        for label in labels
    ):
        raise _invalid("the email domain is not a valid host name")
    return f"{local}@{domain.lower()}"


# --- routing -----------------------------------------------------------------


def hint_matches(pattern: str, hint: LoginHint) -> bool:
    """Whether a route's ``login_hint`` pattern selects ``hint``.

    A pattern without ``:`` is matched against the kind alone (``ssn``, ``tel``);
    otherwise it is an ``fnmatchcase`` glob on ``kind:value`` (``tel:+46*``). An
    ``ssn`` hint with a country also matches as ``ssn:<country>:<value>``, so
    ``ssn:NO:*`` selects Norwegian numbers. The aliases ``phone`` and ``sub:ssn``
    work in patterns too.
    """
    kind, sep, rest = pattern.partition(":")
    kind = _KIND_ALIASES.get(kind, kind)
    if not sep:
        return fnmatchcase(hint.kind, kind)
    if kind == "sub" and rest.startswith("ssn:"):
        kind, rest = "ssn", rest[4:]
    glob = f"{kind}:{rest}"
    if fnmatchcase(f"{hint.kind}:{hint.value}", glob):
        return True
    return hint.country is not None and fnmatchcase(
        f"{hint.kind}:{hint.country}:{hint.value}", glob
    )
