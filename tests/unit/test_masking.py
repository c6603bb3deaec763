"""Tests for ciba_gateway.connector.masking: one rule per kind of personal data."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ciba_gateway.connector import (
    LoginHint,
    mask_email,
    mask_hint,
    mask_national_id,
    mask_phone,
    mask_text,
)
from ciba_gateway.connector.national_id import is_national_id


def _luhn(nine: str) -> str:
    # An independent reference implementation (UPSTREAMS.md 5.2).
    total = sum(
        int(ch) * 2 // 10 + int(ch) * 2 % 10 if index % 2 == 0 else int(ch)
        for index, ch in enumerate(nine)
    )
    return str((10 - total % 10) % 10)


def _no_checks(nine: str) -> str | None:
    # An independent reference implementation (UPSTREAMS.md 5.3).
    digits = [int(ch) for ch in nine]
    checks = ""
    for weights in ((3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)):
        k = 11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        k = 0 if k == 11 else k
        if k == 10:
            return None
        digits.append(k)
        checks += str(k)
    return checks


@st.composite
def swedish(draw: st.DrawFn) -> str:
    """A valid 12-digit Swedish number, sometimes a samordningsnummer."""
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)))
    day = born.day + (60 if draw(st.booleans()) else 0)
    serial = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    nine = f"{born:%y%m}{day:02d}{serial}"
    return f"{born:%Y}{nine[2:]}{_luhn(nine)}"


@st.composite
def norwegian(draw: st.DrawFn) -> str:
    """A valid 11-digit Norwegian number born in the 1900s."""
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)))
    individual = draw(st.integers(min_value=0, max_value=499))
    nine = f"{born:%d%m%y}{individual:03d}"
    checks = _no_checks(nine)
    if checks is None:
        return draw(st.nothing())
    return nine + checks


phones = st.builds(
    lambda cc, rest: f"+{cc}{rest}",
    st.sampled_from(["1", "46", "47", "358", "354"]),
    st.from_regex(r"[1-9][0-9]{6,10}", fullmatch=True),
)
emails = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.from_regex(r"[a-z][a-z0-9._+-]{1,20}", fullmatch=True),
    st.sampled_from(["example.com", "mail.example.se", "x.no"]),
)
# Around a number: nothing that is a digit, so the number stands alone in the text.
around = st.text(alphabet="abc XYZ:=,.()[]/\"'\n", max_size=12)


class TestNationalId:
    def test_keeps_the_birth_date_part(self) -> None:
        """12 digits keep 8, 10 and 11 keep 6, separators stay in place."""
        assert mask_national_id("199001011239") == "19900101****"
        assert mask_national_id("9001011239") == "900101****"
        assert mask_national_id("900101-1239") == "900101-****"
        assert mask_national_id("15108695088") == "151086*****"

    @given(number=st.one_of(swedish(), norwegian()))
    def test_masked_form_never_holds_the_number(self, number: str) -> None:
        """No masked personal number contains the full number or its last four digits."""
        assert is_national_id(number)
        masked = mask_national_id(number)
        assert number not in masked
        assert masked.endswith("****")


class TestPhone:
    def test_keeps_country_code_and_last_two(self) -> None:
        """The country code has 1-3 digits (E.164); short numbers keep nothing."""
        assert mask_phone("+46701234567") == "+46*******67"
        assert mask_phone("+12025550123") == "+1********23"
        assert mask_phone("+358401234567") == "+358*******67"
        assert mask_phone("+12345") == "+*****"

    @given(number=phones)
    def test_masked_form_never_holds_the_number(self, number: str) -> None:
        """The masked number has as many digits as the number, most of them starred."""
        masked = mask_phone(number)
        assert number not in masked
        assert len(masked) == len(number)
        assert masked.count("*") >= len(number) - 6


class TestEmail:
    def test_keeps_first_character_and_domain(self) -> None:
        assert mask_email("alice@example.com") == "a***@example.com"

    @given(address=emails)
    def test_masked_form_never_holds_the_local_part(self, address: str) -> None:
        local = address.partition("@")[0]
        assert f"{local}@" not in mask_email(address)


class TestHint:
    def test_parsed_hints(self) -> None:
        """Each kind masks its value by its kind's rule; other kinds show no value."""
        assert mask_hint(LoginHint(kind="ssn", value="199001011239", country="SE")) == (
            "ssn:19900101****"
        )
        assert mask_hint(LoginHint(kind="ssn", value="15108695088")) == "ssn:151086*****"
        assert mask_hint(LoginHint(kind="tel", value="+46701234567")) == "tel:+46*******67"
        assert mask_hint(LoginHint(kind="email", value="alice@example.com")) == (
            "email:a***@example.com"
        )
        assert mask_hint(LoginHint(kind="freja_id", value="abc")) == "freja_id:***"

    def test_raw_strings_are_read_like_the_grammar(self) -> None:
        """Aliases and a country prefix are understood in a raw hint."""
        assert mask_hint("sub:ssn:900101-1239") == "ssn:900101-****"
        assert mask_hint("ssn:SE:199001011239") == "ssn:19900101****"
        assert mask_hint("SSN:no:15108695088") == "ssn:151086*****"
        assert mask_hint("phone:+46 70 123 45 67") == "tel:+46*******67"
        assert mask_hint(" email:alice@example.com ") == "email:a***@example.com"

    def test_unreadable_strings_reveal_nothing(self) -> None:
        """A value its kind cannot read keeps only the kind; an unknown kind keeps nothing."""
        assert mask_hint("ssn:199001011238") == "ssn:***"  # wrong check digit
        assert mask_hint("tel:0701234567") == "tel:***"
        assert mask_hint("email:not-an-address") == "email:***"
        assert mask_hint("199001011238") == "***"
        assert mask_hint("secret:199001011239") == "***"
        assert mask_hint("sub:tel:+46701234567") == "***"

    @given(number=st.one_of(swedish(), norwegian(), phones), kind=st.sampled_from(["ssn", "tel"]))
    def test_never_holds_the_number(self, number: str, kind: str) -> None:
        """Whatever kind a number is sent under, its mask does not contain it."""
        assert number not in mask_hint(f"{kind}:{number}")


class TestText:
    def test_masks_every_kind_in_free_text(self) -> None:
        text = "order for 199001011239 (tel +46 70 123 45 67, alice@example.com) failed"
        assert mask_text(text) == (
            "order for 19900101**** (tel +46*******67, a***@example.com) failed"
        )

    @pytest.mark.parametrize(
        "text",
        [
            "order 1234567890123 took 20 ms",  # 13 digits: no personal number
            "2026-12-03T17:00:00Z",
            "1700000000",  # a Unix time, not a valid date in a personal number
            "redis://localhost:6379/0",
            "short",
        ],
    )
    def test_leaves_other_text_alone(self, text: str) -> None:
        """References, timestamps and host names stay readable."""
        assert mask_text(text) == text

    def test_a_number_in_a_separator_form(self) -> None:
        born = date.today() - timedelta(days=365 * 30)
        nine = f"{born:%y%m%d}123"
        number = f"{nine[:6]}-{nine[6:]}{_luhn(nine)}"
        assert mask_text(f"pnr {number}") == f"pnr {number[:7]}****"

    @given(
        number=st.one_of(swedish(), norwegian(), phones, emails),
        before=around,
        after=around,
    )
    def test_never_holds_the_full_identifier(self, number: str, before: str, after: str) -> None:
        """Masked free text never contains a personal number, phone number or address."""
        masked = mask_text(f"{before} {number} {after}")
        identifier = number.partition("@")[0] + "@" if "@" in number else number
        assert identifier not in masked
