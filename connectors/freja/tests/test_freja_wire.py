"""The body encoding shared by connector and simulator: ``<name>=<base64(JSON)>``."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from ciba_gateway_freja.wire import (
    AuthRefRequest,
    BodyError,
    InitAuthRequest,
    decode_body,
    decode_ssn_user_info,
    encode_body,
    encode_ssn_user_info,
    level_rank,
)


def test_encode_body_matches_the_documented_wire_example() -> None:
    """An EMAIL init encodes exactly like UPSTREAMS.md's wire example (compact JSON, padded)."""
    body = encode_body(
        "initAuthentication", InitAuthRequest(user_info_type="EMAIL", user_info="a@b.se")
    )

    assert body == b"initAuthRequest=eyJ1c2VySW5mb1R5cGUiOiJFTUFJTCIsInVzZXJJbmZvIjoiYUBiLnNlIn0="


def test_encode_body_appends_relying_party_id() -> None:
    """relyingPartyId is a separate, percent-encoded parameter, not part of the JSON."""
    body = encode_body("cancel", AuthRefRequest(auth_ref="x"), relying_party_id="rp 1&2")

    assert body.startswith(b"cancelAuthRequest=")
    assert body.endswith(b"&relyingPartyId=rp%201%262")


def test_ssn_user_info_round_trips() -> None:
    """SSN userInfo is base64 of {"country","ssn"} in that key order, and decodes back."""
    encoded = encode_ssn_user_info("SE", "199001011239")

    assert encoded == "eyJjb3VudHJ5IjoiU0UiLCJzc24iOiIxOTkwMDEwMTEyMzkifQ=="
    assert decode_ssn_user_info(encoded) == ("SE", "199001011239")


@pytest.mark.parametrize(
    "value",
    ["not base64!", base64.b64encode(b"[1]").decode(), base64.b64encode(b'{"a":1}').decode()],
)
def test_malformed_ssn_user_info_is_refused(value: str) -> None:
    """SSN userInfo that is not base64 of exactly {"country","ssn"} raises ValueError."""
    with pytest.raises(ValueError):
        decode_ssn_user_info(value)


DATA = base64.b64encode(b'{"authRef":"a+b/c"}').decode()  # contains + and /


@pytest.mark.parametrize(
    "raw",
    [
        f"getOneAuthResultRequest={DATA}".encode(),
        f"getOneAuthResultRequest={quote(DATA, safe='')}".encode(),
        f"getOneAuthResultRequest={DATA.rstrip('=')}".encode(),
        f"getOneAuthResultRequest={DATA}\r\n".encode(),
        f"getOneAuthResultRequest={DATA}&relyingPartyId=rp%201".encode(),
    ],
    ids=["plain", "percent-encoded", "unpadded", "trailing-newline", "with-relying-party"],
)
def test_decode_body_is_lenient(raw: bytes) -> None:
    """Percent-encoding, missing padding, trailing whitespace and extra params are tolerated."""
    parsed = decode_body(raw)

    assert parsed.parameter == "getOneAuthResultRequest"
    assert parsed.json == b'{"authRef":"a+b/c"}'
    assert parsed.relying_party_id in (None, "rp 1")


@pytest.mark.parametrize("raw", [b"", b"no-equals-sign", b"=abc", b"x=***", b"\xff\xfe=1"])
def test_decode_body_refuses_garbage(raw: bytes) -> None:
    """A body without name=base64 raises BodyError."""
    with pytest.raises(BodyError):
        decode_body(raw)


def test_levels_are_ordered() -> None:
    """BASIC < EXTENDED < PLUS; anything else ranks below BASIC."""
    assert level_rank("BASIC") < level_rank("EXTENDED") < level_rank("PLUS")
    assert level_rank("INFERRED") == level_rank(None) == -1
