"""Swedish and Norwegian personal identity numbers: check digits and birth dates.

The rules are in UPSTREAMS.md section 5. A Swedish personnummer or
samordningsnummer (day + 60) carries a Luhn check digit over its 10-digit form
``YYMMDDNNNC``; a Norwegian fødselsnummer ``DDMMYYIIIK1K2`` carries two mod-11
check digits, and its D-number (day + 40), H-number (month + 40), FH-number
(first digit 8 or 9, no date) and synthetic test (month + 80) variants are known.

Shared by the hint grammar (``ciba_gateway.protocol.hints``), the log masking
(``ciba_gateway.connector.masking``) and connectors.
"""

from __future__ import annotations

from datetime import date

__all__ = ["is_digits", "is_national_id", "luhn_ok", "no_birth_date_parts", "no_checksums_ok"]

_NO_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_NO_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


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


def no_checksums_ok(digits11: str) -> bool:
    """Whether both mod-11 check digits of an 11-digit Norwegian number are right."""
    k1 = _mod11_digit(digits11[:9], _NO_K1_WEIGHTS)
    k2 = _mod11_digit(digits11[:10], _NO_K2_WEIGHTS)
    return k1 == int(digits11[9]) and k2 == int(digits11[10])


def no_birth_date_parts(
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
        if not no_checksums_ok(digits):
            return False
        birth = no_birth_date_parts(digits, allow_test_numbers=True)
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
