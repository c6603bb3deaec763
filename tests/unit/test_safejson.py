"""The capped JSON decoder every outside JSON goes through."""

from __future__ import annotations

import msgspec
import pytest

from ciba_gateway.connector import JsonLimitError, check_json, decode_json


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class TestDecodeJson:
    def test_decodes_ordinary_json(self) -> None:
        """A small document decodes as msgspec would."""
        assert decode_json(b'{"a": [1, {"b": "c"}]}') == {"a": [1, {"b": "c"}]}

    def test_depth_at_the_cap_is_accepted(self) -> None:
        """Nesting exactly max_depth deep is fine."""
        assert decode_json(nested(5), max_depth=5) == [[[[[]]]]]

    def test_depth_over_the_cap_is_refused(self) -> None:
        """One level more is a JsonLimitError."""
        with pytest.raises(JsonLimitError, match="deeper than 5"):
            decode_json(nested(6), max_depth=5)

    def test_very_deep_input_is_refused_without_recursion(self) -> None:
        """Nesting 200 000 deep is refused, not a RecursionError."""
        with pytest.raises(JsonLimitError):
            decode_json(b'{"alg":"HS256","x":' + nested(100_000) + b"}", max_bytes=10**6)

    def test_many_siblings_are_not_depth(self) -> None:
        """Many arrays side by side count once each, not as depth."""
        doc = b"[" + b",".join([b"[]"] * 500) + b"]"
        assert len(decode_json(doc, max_depth=2)) == 500

    def test_brackets_inside_strings_do_not_count(self) -> None:
        """A string full of brackets (and escaped quotes) is not nesting."""
        doc = b'{"k": "' + b"[{" * 100 + b'\\" [[[", "n": [1]}'
        assert decode_json(doc, max_depth=2)["n"] == [1]

    def test_size_over_the_cap_is_refused(self) -> None:
        """A document larger than max_bytes is refused before decoding."""
        with pytest.raises(JsonLimitError, match="larger than 10 bytes"):
            decode_json(b'"' + b"a" * 20 + b'"', max_bytes=10)

    def test_str_input_is_measured_in_utf8_bytes(self) -> None:
        """A str is capped by its UTF-8 length."""
        with pytest.raises(JsonLimitError):
            check_json('"' + "\u00e5" * 6 + '"', max_bytes=10)

    def test_limit_error_is_a_decode_error(self) -> None:
        """Callers that handle malformed JSON (DecodeError, ValueError) handle this too."""
        assert issubclass(JsonLimitError, msgspec.DecodeError)
        assert issubclass(JsonLimitError, ValueError)

    def test_typed_decoding(self) -> None:
        """``type`` is passed to msgspec; a mismatch is a ValidationError."""
        assert decode_json(b"[1, 2]", type=list[int]) == [1, 2]
        with pytest.raises(msgspec.ValidationError):
            decode_json(b'["x"]', type=list[int])
