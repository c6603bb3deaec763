"""Tests for ciba_gateway.protocol.params."""

from __future__ import annotations

import pytest

from ciba_gateway.errors import InvalidRequestError
from ciba_gateway.protocol.params import MAX_BODY_BYTES, MAX_FIELDS, parse_form, require

FORM = "application/x-www-form-urlencoded"


def rejects(body: bytes, content_type: str | None = FORM) -> str:
    """Assert the form is refused with invalid_request and return the description."""
    with pytest.raises(InvalidRequestError) as info:
        parse_form(body, content_type)
    assert info.value.error == "invalid_request"
    return info.value.description


class TestParseForm:
    def test_decodes_percent_and_plus(self) -> None:
        """Percent-escapes and '+' as space are decoded."""
        body = b"scope=openid+profile&login_hint=tel%3A%2B46701234567&binding_message=%C3%A5"
        assert parse_form(body, FORM) == {
            "scope": "openid profile",
            "login_hint": "tel:+46701234567",
            "binding_message": "\u00e5",
        }

    def test_empty_body_is_empty_dict(self) -> None:
        """No body means no parameters."""
        assert parse_form(b"", FORM) == {}

    @pytest.mark.parametrize(
        "content_type",
        [
            "application/x-www-form-urlencoded; charset=UTF-8",
            'Application/X-WWW-Form-Urlencoded;charset="utf-8"',
            "application/x-www-form-urlencoded; foo=bar",
        ],
    )
    def test_accepted_content_types(self, content_type: str) -> None:
        """The media type is case-insensitive and a UTF-8 charset is allowed."""
        assert parse_form(b"a=1", content_type) == {"a": "1"}

    @pytest.mark.parametrize(
        "content_type", [None, "application/json", "text/plain", "multipart/form-data"]
    )
    def test_wrong_content_type_is_rejected(self, content_type: str | None) -> None:
        """Anything but a form body is refused."""
        assert FORM in rejects(b"a=1", content_type)

    def test_other_charset_is_rejected(self) -> None:
        """Only UTF-8 is accepted."""
        assert "UTF-8" in rejects(b"a=1", f"{FORM}; charset=iso-8859-1")

    def test_duplicate_parameter_is_rejected_by_name(self) -> None:
        """RFC 6749 3.2: a parameter sent twice is refused, naming the parameter."""
        assert "scope" in rejects(b"scope=openid&login_hint=x&scope=openid")

    def test_duplicate_with_different_values_is_rejected(self) -> None:
        """Conflicting duplicates are refused too."""
        assert "grant_type" in rejects(b"grant_type=a&grant_type=b")

    def test_empty_values_are_dropped(self) -> None:
        """RFC 6749 3.1: a parameter without a value is treated as omitted."""
        assert parse_form(b"a=&b=2&c", FORM) == {"b": "2"}

    def test_empty_duplicate_is_not_a_duplicate(self) -> None:
        """An omitted (empty) copy does not count as a second occurrence."""
        assert parse_form(b"a=&a=1", FORM) == {"a": "1"}

    def test_nameless_parameter_is_rejected(self) -> None:
        """'=value' is malformed."""
        assert "without a name" in rejects(b"=x&a=1")

    def test_body_at_the_limit_is_accepted(self) -> None:
        """Exactly 64 KiB is allowed."""
        body = b"a=" + b"x" * (MAX_BODY_BYTES - 2)
        assert len(parse_form(body, FORM)["a"]) == MAX_BODY_BYTES - 2

    def test_oversize_body_is_rejected(self) -> None:
        """One byte over 64 KiB is refused."""
        assert "larger" in rejects(b"a=" + b"x" * (MAX_BODY_BYTES - 1))

    def test_too_many_fields_are_rejected(self) -> None:
        """More than MAX_FIELDS parameters are refused."""
        body = "&".join(f"p{i}=1" for i in range(MAX_FIELDS + 1)).encode()
        assert "parameters" in rejects(body)

    @pytest.mark.parametrize("body", [b"a=\xff", b"a=%ff", b"a=%C3"])
    def test_invalid_utf8_is_rejected(self, body: bytes) -> None:
        """Raw and percent-encoded bytes that are not UTF-8 are refused."""
        assert "UTF-8" in rejects(body)


class TestRequire:
    def test_present_value_is_returned(self) -> None:
        """A present parameter's value is returned."""
        assert require({"scope": "openid"}, "scope") == "openid"

    @pytest.mark.parametrize("params", [{}, {"scope": ""}])
    def test_missing_parameter_is_named(self, params: dict[str, str]) -> None:
        """Absent or empty parameters raise invalid_request naming the parameter."""
        with pytest.raises(InvalidRequestError) as info:
            require(params, "scope")
        assert info.value.description == "missing parameter: scope"
