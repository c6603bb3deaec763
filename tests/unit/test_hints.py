"""Tests for ciba_gateway.protocol.hints."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ciba_gateway.connector.api import LoginHint
from ciba_gateway.connector.national_id import is_national_id
from ciba_gateway.errors import InvalidRequestError
from ciba_gateway.protocol.hints import MAX_HINT_LENGTH, parse_login_hint

TODAY = date(2026, 5, 9)


# Independent reference implementations of the check digits (UPSTREAMS.md 5.2, 5.3).
def luhn_digit(nine: str) -> str:
    """The Swedish check digit for the 9 digits YYMMDDNNN."""
    total = 0
    for index, ch in enumerate(nine):
        product = int(ch) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


def no_check_digits(nine: str) -> str | None:
    """K1K2 for the 9 digits DDMMYYIII, or None when no valid K exists."""
    digits = [int(ch) for ch in nine]
    k1 = 11 - sum(d * w for d, w in zip(digits, (3, 7, 6, 1, 8, 9, 4, 5, 2), strict=True)) % 11
    k1 = 0 if k1 == 11 else k1
    if k1 == 10:
        return None
    digits.append(k1)
    k2 = 11 - sum(d * w for d, w in zip(digits, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
    k2 = 0 if k2 == 11 else k2
    if k2 == 10:
        return None
    return f"{k1}{k2}"


def se12(yyyymmdd: str, serial: str) -> str:
    """A 12-digit Swedish number with a correct check digit."""
    return yyyymmdd + serial + luhn_digit(yyyymmdd[2:] + serial)


def no11(ddmmyy: str) -> str:
    """A valid Norwegian number for the date, trying individual numbers from 100 upward."""
    for individual in range(100, 500):
        checks = no_check_digits(f"{ddmmyy}{individual:03d}")
        if checks is not None:
            return f"{ddmmyy}{individual:03d}{checks}"
    raise AssertionError("no valid individual number")


def parse(raw: str, **kwargs: object) -> LoginHint:
    return parse_login_hint(raw, today=TODAY, **kwargs)  # type: ignore[arg-type]


def rejects(raw: str, **kwargs: object) -> str:
    """Assert the hint is refused and return the error description."""
    with pytest.raises(InvalidRequestError) as info:
        parse(raw, **kwargs)
    assert info.value.error == "invalid_request"
    return info.value.description


class TestSwedish:
    def test_reference_examples_are_valid(self) -> None:
        """The UPSTREAMS 5.2 examples parse to themselves with country SE."""
        assert parse("ssn:199001011239") == LoginHint(
            kind="ssn", value="199001011239", country="SE"
        )
        assert parse("ssn:191212121212").value == "191212121212"

    def test_sub_ssn_prefix_is_the_same_as_ssn(self) -> None:
        """sub:ssn:<id> is an alias of ssn:<id>."""
        assert parse("sub:ssn:199001011239") == parse("ssn:199001011239")

    def test_explicit_country_and_case_insensitive_kind(self) -> None:
        """ssn:SE:<id> and upper-case kinds and countries are accepted."""
        assert parse("SSN:se:199001011239") == parse("ssn:199001011239")
        assert parse("sub:ssn:SE:199001011239").country == "SE"

    def test_bad_check_digit_is_rejected_without_echoing_the_number(self) -> None:
        """A wrong Luhn digit is refused and the description does not contain the number."""
        description = rejects("ssn:199001011238")
        assert "check digit" in description
        assert "199001011238" not in description

    def test_samordningsnummer_keeps_day_plus_sixty(self) -> None:
        """A coordination number (day + 60) is valid and normalized with the +60 day."""
        number = se12("19900161", "123")
        assert parse(f"ssn:{number}").value == number
        assert parse(f"ssn:{number[2:]}").value == number

    def test_samordningsnummer_with_impossible_day_is_rejected(self) -> None:
        """Day 92 (31 + 61) is not a real coordination-number day."""
        assert "birth date" in rejects(f"ssn:{se12('19900192', '123')}")

    def test_invalid_date_is_rejected(self) -> None:
        """A Luhn-correct number with month 13 is refused."""
        assert "birth date" in rejects(f"ssn:{se12('19901301', '123')}")

    def test_feb_29_depends_on_the_year(self) -> None:
        """Feb 29 is valid in 2000 and not in 1900."""
        assert parse(f"ssn:{se12('20000229', '123')}").value.startswith("20000229")
        assert "birth date" in rejects(f"ssn:{se12('19000229', '123')}")

    def test_future_birth_date_is_rejected(self) -> None:
        """A 12-digit number born after today is refused."""
        assert "future" in rejects(f"ssn:{se12('20300101', '123')}")

    def test_ten_digits_with_minus_is_under_a_hundred(self) -> None:
        """YYMMDD-NNNC gets the century that makes the person under 100."""
        assert parse("ssn:121212-1212").value == "201212121212"
        assert parse("ssn:900101-1239").value == "199001011239"

    def test_ten_digits_without_separator_reads_as_minus(self) -> None:
        """YYMMDDNNNC without a separator is the same as with '-'."""
        assert parse("ssn:9001011239").value == "199001011239"

    def test_ten_digits_with_plus_is_a_hundred_or_older(self) -> None:
        """The '+' separator moves the century back by 100 years."""
        assert parse("ssn:121212+1212").value == "191212121212"
        assert parse("ssn:900101+1239").value == "189001011239"

    def test_ten_digits_later_this_year_means_last_century(self) -> None:
        """A 10-digit birthday later in the current two-digit year belongs to 100 years ago."""
        number = se12("19261231", "123")
        assert parse(f"ssn:{number[2:8]}-{number[8:]}").value == number
        earlier = se12("20260101", "123")
        assert parse(f"ssn:{earlier[2:]}").value == earlier

    def test_twelve_digits_with_minus_is_accepted(self) -> None:
        """YYYYMMDD-NNNC normalizes to 12 digits."""
        assert parse("ssn:19900101-1239").value == "199001011239"

    def test_twelve_digits_with_plus_is_rejected(self) -> None:
        """The '+' separator belongs to the 10-digit form only."""
        assert "10-digit" in rejects("ssn:19900101+1239")

    def test_space_explains_percent_encoding(self) -> None:
        """A '+' that became a space in a form body gets a hint about %2B."""
        assert "%2B" in rejects("ssn:121212 1212")

    def test_wrong_length_for_sweden_is_rejected(self) -> None:
        """An explicit SE country requires 10 or 12 digits."""
        assert "10 or 12" in rejects("ssn:SE:15108695088")

    def test_non_ascii_digits_are_rejected(self) -> None:
        """Arabic-Indic digits are not ASCII digits."""
        message = rejects("ssn:" + "".join(chr(0x0660 + int(d)) for d in "199001011239"))
        assert "199001011239" not in message

    @given(
        born=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
        serial=st.integers(min_value=0, max_value=999),
        coordination=st.booleans(),
    )
    def test_generated_numbers_roundtrip(self, born: date, serial: int, coordination: bool) -> None:
        """Any real date, serial and computed Luhn digit parses in 12- and 10-digit form."""
        day = born.day + (60 if coordination else 0)
        yymmdd = f"{born.year % 100:02d}{born.month:02d}{day:02d}"
        number = f"{born.year:04d}{yymmdd[2:]}{serial:03d}"
        number += luhn_digit(number[2:])
        assert parse(f"ssn:{number}") == LoginHint(kind="ssn", value=number, country="SE")
        centenarian = (born.year + 100, born.month, born.day) <= (
            TODAY.year,
            TODAY.month,
            TODAY.day,
        )
        separator = "+" if centenarian else "-"
        assert parse(f"ssn:{number[2:8]}{separator}{number[8:]}").value == number
        assert is_national_id(number)


class TestNorwegian:
    def test_reference_example_is_valid(self) -> None:
        """15108695088 (UPSTREAMS 5.3) is a valid NO number, with or without the country."""
        expected = LoginHint(kind="ssn", value="15108695088", country="NO")
        assert parse("ssn:15108695088") == expected
        assert parse("ssn:NO:15108695088") == expected
        assert parse("sub:ssn:no:15108695088") == expected

    def test_bad_k1_is_rejected(self) -> None:
        """A wrong first check digit is refused."""
        assert "check digits" in rejects("ssn:15108695078")

    def test_bad_k2_is_rejected(self) -> None:
        """A wrong second check digit is refused."""
        assert "check digits" in rejects("ssn:15108695089")

    def test_d_number(self) -> None:
        """A D-number (day + 40) is accepted."""
        number = no11("551086")
        assert parse(f"ssn:{number}").value == number

    def test_h_number(self) -> None:
        """An H-number (month + 40) is accepted."""
        number = no11("155086")
        assert parse(f"ssn:NO:{number}").value == number

    def test_fh_number_has_no_date(self) -> None:
        """An FH-number (first digit 8 or 9) passes on its checksums alone."""
        for prefix in range(800000000, 800000100):
            checks = no_check_digits(str(prefix))
            if checks is not None:
                number = f"{prefix}{checks}"
                break
        assert parse(f"ssn:{number}").value == number

    def test_synthetic_test_identity_needs_opt_in(self) -> None:
        """Month + 80 is refused unless allow_test_numbers is set."""
        number = no11("159086")
        assert "birth date" in rejects(f"ssn:{number}")
        assert parse(f"ssn:{number}", allow_test_numbers=True).value == number

    def test_impossible_century_is_rejected(self) -> None:
        """Individual number 600 with year 45 matches no century rule."""
        checks = no_check_digits("010145600")
        number = f"010145600{checks}"
        assert checks is not None
        assert "birth date" in rejects(f"ssn:{number}")

    def test_invalid_date_is_rejected(self) -> None:
        """A checksum-correct number dated 31 April is refused."""
        assert "birth date" in rejects(f"ssn:{no11('310486')}")

    def test_norway_needs_eleven_digits(self) -> None:
        """An explicit NO country with 12 digits is refused."""
        assert "11 digits" in rejects("ssn:NO:199001011239")

    @given(
        born=st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)),
        individual=st.integers(min_value=0, max_value=499),
    )
    def test_generated_numbers_roundtrip(self, born: date, individual: int) -> None:
        """A 1900s date, an individual number below 500 and valid K1/K2 always parse."""
        nine = f"{born.day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}"
        checks = no_check_digits(nine)
        if checks is None:
            return
        number = nine + checks
        assert parse(f"ssn:{number}") == LoginHint(kind="ssn", value=number, country="NO")
        assert is_national_id(number)


class TestOtherSsnForms:
    def test_unknown_country_is_rejected(self) -> None:
        """Only SE and NO are supported countries."""
        assert "NO, SE" in rejects("ssn:DK:0101901234")

    def test_unknown_length_is_rejected(self) -> None:
        """Nine digits fit neither country."""
        assert "personal number" in rejects("ssn:123456789")

    def test_sub_needs_ssn(self) -> None:
        """sub: is only accepted as sub:ssn:."""
        assert "sub:ssn" in rejects("sub:199001011239")


class TestPhone:
    def test_e164_is_accepted(self) -> None:
        """A plain E.164 number is kept as is, kind tel."""
        assert parse("tel:+46701234567") == LoginHint(kind="tel", value="+46701234567")

    def test_spaces_are_removed_and_phone_is_an_alias(self) -> None:
        """phone: means tel: and spaces inside the number are dropped."""
        assert parse("phone:+46 70 123 45 67") == LoginHint(kind="tel", value="+46701234567")

    def test_length_bounds(self) -> None:
        """8 and 15 digits pass; 7 and 16 digits are refused."""
        assert parse("tel:+12345678").value == "+12345678"
        assert parse("tel:+123456789012345").value == "+123456789012345"
        rejects("tel:+1234567")
        rejects("tel:+1234567890123456")

    @pytest.mark.parametrize(
        "raw", ["tel:46701234567", "tel:+046701234567", "tel:+4670123456a", "tel:+", "tel:"]
    )
    def test_malformed_numbers_are_rejected(self, raw: str) -> None:
        """Missing '+', a leading zero, letters and empty values are refused."""
        assert "E.164" in rejects(raw)

    def test_space_for_plus_explains_percent_encoding(self) -> None:
        """A '+' that became a space in a form body gets a hint about %2B."""
        assert "%2B" in rejects("tel: 46701234567")


class TestEmail:
    def test_domain_is_lower_cased_and_local_part_kept(self) -> None:
        """Only the domain is case-normalized."""
        assert parse("email:Alice.Smith@Example.COM") == LoginHint(
            kind="email", value="Alice.Smith@example.com"
        )

    @pytest.mark.parametrize(
        "raw",
        [
            "email:a@b@example.com",
            "email:alice example@example.com",
            "email:alice@localhost",
            "email:@example.com",
            "email:alice@",
            "email:alice@exa..mple.com",
            "email:alice@-example.com",
            "email:alice@exa_mple.com",
            "email:alice",
            "email:" + "a" * 65 + "@example.com",
        ],
    )
    def test_malformed_addresses_are_rejected(self, raw: str) -> None:
        """Two @, spaces, dotless or malformed domains, empty or long parts are refused."""
        assert "email" in rejects(raw)

    def test_total_length_limit(self) -> None:
        """An address of 254 characters is accepted and one of 255 is refused."""
        domain = ".".join(["a" * 60] * 4) + ".se"  # 246 characters
        assert len(parse(f"email:abcdefg@{domain}").value) == 254
        assert "too long" in rejects(f"email:abcdefgh@{domain}")

    @given(
        st.one_of(
            st.text("ab.+9", min_size=1, max_size=8),
            st.text("ab \t\u00a0\u200b", min_size=1, max_size=4),
            st.just("a@b"),
        ),
        st.lists(
            st.one_of(
                st.text("aZ9é\u0660", min_size=1, max_size=64),
                st.text("aZ9-", min_size=1, max_size=4),
                st.text("a_ \t\u00a0\u200b\u2028", max_size=3),
            ),
            min_size=1,
            max_size=4,
        ).map(".".join),
    )
    @example("a b", "example.com")
    @example("a", "a" * 63 + ".se")
    @example("a", "a" * 64 + ".se")
    @example("a", "a-.se")
    @example("a", "a.\u0660b")
    @settings(max_examples=500)
    def test_domain_rule_is_the_per_character_definition(self, local: str, domain: str) -> None:
        """An address is accepted exactly when the rules, read character by character, hold."""
        value = f"{local or 'a'}@{domain}".rstrip()  # the hint is stripped as a whole
        local, _, domain = value.rpartition("@")
        labels = domain.split(".")
        expected = (
            "@" not in local
            and len(value) <= 254
            and not any(ch.isspace() or not ch.isprintable() for ch in value)
            and len(labels) >= 2
            and all(
                label
                and len(label) <= 63
                and label[0] != "-"
                and label[-1] != "-"
                and all(ch.isalnum() or ch == "-" for ch in label)
                for label in labels
            )
        )
        try:
            parse(f"email:{value}")
        except InvalidRequestError:
            accepted = False
        else:
            accepted = True
        assert accepted is expected


class TestGeneral:
    def test_unknown_kind_lists_supported_kinds(self) -> None:
        """An unsupported kind names itself and every supported kind."""
        description = rejects("username:alice")
        assert "'username'" in description
        for kind in ("email", "phone", "ssn", "sub:ssn", "tel"):
            assert kind in description

    def test_missing_kind_is_rejected(self) -> None:
        """A bare value without kind: is refused."""
        assert "kind:value" in rejects("199001011239")

    def test_length_cap(self) -> None:
        """Hints longer than the cap are refused before any parsing."""
        assert str(MAX_HINT_LENGTH) in rejects("email:" + "a" * MAX_HINT_LENGTH)

    def test_surrounding_whitespace_is_ignored(self) -> None:
        """Leading and trailing whitespace around the hint is dropped."""
        assert parse("  tel:+46701234567 ").value == "+46701234567"

    def test_extra_kinds_pass_through(self) -> None:
        """A connector-declared kind is accepted verbatim; it is refused otherwise."""
        assert parse("freja_id:AbC-123", extra_kinds={"freja_id"}) == LoginHint(
            kind="freja_id", value="AbC-123"
        )
        rejects("freja_id:AbC-123")
        rejects("freja_id:", extra_kinds={"freja_id"})

    def test_default_today_is_the_real_date(self) -> None:
        """Without today, a 10-digit number born yesterday gets this century."""
        yesterday = date.today() - timedelta(days=1)
        number = se12(yesterday.strftime("%Y%m%d"), "123")
        assert parse_login_hint(f"ssn:{number[2:]}").value == number
