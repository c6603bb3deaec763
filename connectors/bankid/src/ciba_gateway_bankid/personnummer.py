"""Swedish personal identity numbers (personnummer / samordningsnummer), 12-digit form.

The rules (UPSTREAMS.md section 5.2): ``YYYYMMDDNNNC``; a samordningsnummer has
day + 60; ``C`` is a Luhn check digit over the 10-digit form ``YYMMDDNNN``. The
gateway's ``national_id`` reads every form of login hint; this module holds what
the BankID wire format (always 12 digits) needs.
"""

from __future__ import annotations

import datetime as dt
import re

from ciba_gateway.connector import luhn_ok

__all__ = ["birthdate", "check_digit", "is_valid"]

_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def check_digit(nine: str) -> int:
    """The Luhn check digit of the nine digits ``YYMMDDNNN``."""
    total = 0
    for index, char in enumerate(nine):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def birthdate(pnr: str) -> dt.date | None:
    """The date of birth encoded in a 12-digit number (day - 60 for a samordningsnummer)."""
    if not _TWELVE_DIGITS.fullmatch(pnr):
        return None
    year, month, day = int(pnr[0:4]), int(pnr[4:6]), int(pnr[6:8])
    if day > 60:
        day -= 60
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def is_valid(pnr: str) -> bool:
    """True for 12 digits with a real date and a correct check digit."""
    return birthdate(pnr) is not None and luhn_ok(pnr[2:])
