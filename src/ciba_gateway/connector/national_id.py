"""Swedish and Norwegian personal identity numbers: forms, check digits, birth dates.

The rules (UPSTREAMS.md section 5):

- Swedish personnummer / samordningsnummer: ``YYYYMMDDNNNC`` or ``YYYYMMDD-NNNC``
  (12 digits), ``YYMMDDNNNC``, ``YYMMDD-NNNC`` or ``YYMMDD+NNNC`` (10 digits). The
  Luhn check digit is computed over the 10-digit form; a samordningsnummer has day
  + 60. The 10-digit form gets its century from ``today``: ``-`` (or none) means
  under 100 years old, ``+`` means 100 or older. The ``+`` separator is rejected on
  the 12-digit form, which carries its century. Normalized to 12 digits
  ``YYYYMMDDNNNC`` (day + 60 kept for a samordningsnummer).
- Norwegian fødselsnummer: 11 digits ``DDMMYYIIIK1K2`` with both mod-11 checks;
  D-number (day + 40), H-number (month + 40) and FH-number (first digit 8 or 9,
  no date, checksums only) are accepted; the century comes from ``III``. With
  ``allow_test_numbers`` the synthetic test identities (month + 80) pass too.
- A birth date after ``today`` is rejected.

A ``+`` in an unencoded form body arrives as a space, so the error for a
10-digit number with a space says to send ``%2B``. Error messages never repeat
the number itself.

Shared by the hint grammar (``ciba_gateway.protocol.hints``), the log masking
(``ciba_gateway.connector.masking``) and connectors.
"""

from __future__ import annotations

from datetime import date

__all__ = [
    "NationalIdError",
    "is_digits",
    "is_national_id",
    "luhn_ok",
    "parse_norwegian",
    "parse_swedish",
]

_NO_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_NO_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


class NationalIdError(ValueError):
    """A number that is not a valid personal number; the message says why, without it."""


def is_digits(value: str) -> bool:
    """ASCII digits only (``str.isdigit`` alone accepts ``"²"`` or Arabic-Indic numerals)."""
    return value.isascii() and value.isdigit()


def luhn_ok(digits10: str) -> bool:
    """Whether the 10-digit Swedish form ``YYMMDDNNNC`` has a correct Luhn check digit."""
    total = 0
    for index, ch in enumerate(digits10):
        product = int(ch) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return total % 10 == 0


def _mod11_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    k = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if k == 11:
        return 0
    return None if k == 10 else k


def _no_checksums_ok(digits11: str) -> bool:
    """Whether both mod-11 check digits of an 11-digit Norwegian number are right."""
    k1 = _mod11_digit(digits11[:9], _NO_K1_WEIGHTS)
    k2 = _mod11_digit(digits11[:10], _NO_K2_WEIGHTS)
    return k1 == int(digits11[9]) and k2 == int(digits11[10])


def _no_birth_date_parts(
    digits11: str, allow_test_numbers: bool
) -> tuple[int, int, int] | tuple[()] | None:
    """(year, month, day), () for an FH-number without a date, or None when impossible.

    The date is not checked to exist; the century comes from the individual
    number ``III``.
    """
    if digits11[0] in "89":
        return ()
    day, month, yy = int(digits11[0:2]), int(digits11[2:4]), int(digits11[4:6])
    individual = int(digits11[6:9])
    if day > 40:
        day -= 40  # D-number
    if month > 80 and allow_test_numbers:
        month -= 80  # synthetic test identity
    elif month > 40:
        month -= 40  # H-number
    if individual < 500:
        century = 1900
    elif individual < 750 and yy >= 54:
        century = 1800
    elif yy < 40:
        century = 2000
    elif individual >= 900:
        century = 1900
    else:
        return None
    return century + yy, month, day


def _date_exists(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def is_national_id(digits: str) -> bool:
    """Whether a digit string is a plausible SE (10/12) or NO (11) personal number.

    Used to scrub logs, so it errs towards yes: a 10-digit Swedish number passes if
    its date exists in the 1900s or 2000s, and Norwegian test identities pass.
    """
    if not is_digits(digits):
        return False
    if len(digits) == 11:
        if not _no_checksums_ok(digits):
            return False
        birth = _no_birth_date_parts(digits, allow_test_numbers=True)
        return birth == () or (birth is not None and _date_exists(*birth))
    if len(digits) not in (10, 12) or not luhn_ok(digits[-10:]):
        return False
    month, day = int(digits[-8:-6]), int(digits[-6:-4])
    if day > 60:
        day -= 60
    if len(digits) == 12:
        return _date_exists(int(digits[:4]), month, day)
    yy = int(digits[:2])
    return _date_exists(1900 + yy, month, day) or _date_exists(2000 + yy, month, day)


def parse_swedish(value: str, today: date) -> str:
    """A Swedish personnummer or samordningsnummer, normalized to 12 digits.

    Raises:
        NationalIdError: not a valid Swedish number on ``today``.
    """
    separator = "-"
    if len(value) in (11, 13) and value[-5] in "-+ ":
        separator = value[-5]
        value = value[:-5] + value[-4:]
    if separator == " ":
        raise NationalIdError("a space in a personal number (send the + separator as %2B)")
    if not is_digits(value) or len(value) not in (10, 12):
        raise NationalIdError("a Swedish personal number has 10 or 12 digits")
    if not luhn_ok(value[-10:]):
        raise NationalIdError("the check digit of the Swedish personal number is wrong")
    month, day = int(value[-8:-6]), int(value[-6:-4])
    if day > 60:
        day -= 60  # samordningsnummer
    if len(value) == 12:
        if separator == "+":
            raise NationalIdError("the + separator is only used with the 10-digit form")
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


def parse_norwegian(value: str, today: date, *, allow_test_numbers: bool = False) -> str:
    """A Norwegian fødselsnummer (or D-, H-, FH-number), returned unchanged.

    Raises:
        NationalIdError: not a valid Norwegian number on ``today``.
    """
    if not is_digits(value) or len(value) != 11:
        raise NationalIdError("a Norwegian personal number has 11 digits")
    if not _no_checksums_ok(value):
        raise NationalIdError("the check digits of the Norwegian personal number are wrong")
    birth = _no_birth_date_parts(value, allow_test_numbers)
    if birth is None:
        raise NationalIdError("the Norwegian personal number has no valid birth date")
    if birth:  # () is an FH-number, which carries no date
        _check_birth_date(*birth, today)
    return value


def _check_birth_date(year: int, month: int, day: int, today: date) -> None:
    try:
        born = date(year, month, day)
    except ValueError:
        raise NationalIdError("the personal number has no valid birth date") from None
    if born > today:
        raise NationalIdError("the personal number has a birth date in the future")
