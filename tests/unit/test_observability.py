"""Tests for ciba_gateway.observability."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ciba_gateway.connector.api import LoginHint
from ciba_gateway.observability import (
    REDACTED,
    SECRET_KEYS,
    Redactor,
    auth_req_ref,
    configure_logging,
    redact,
)

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImRlbW8tMSJ9"
    ".eyJzdWIiOiIxOTkwMDEwMTEyMzkiLCJhdWQiOiJjYWxsY2VudGVyIn0"
    ".MEUCIQDx3bS0aVg5n3S-8yU1e_u0Qm1l9lQ"
)


def run(**event: Any) -> dict[str, Any]:
    """Pass an event dict through the redaction processor (and the memoising one: same result)."""
    redacted = redact(None, "info", dict(event))
    memo = Redactor()
    assert memo(None, "info", dict(event)) == redacted  # learning
    assert memo(None, "info", dict(event)) == redacted  # from its memo
    return redacted


def test_memo_never_passes_a_value_under_a_key_that_hides_it() -> None:
    """A string remembered as clean under an ordinary key is still hidden under secret keys."""
    memo = Redactor()
    value = "abc-123-plain"
    assert memo(None, "info", {"note": value, "auth_req_id": value})["note"] == value
    for _ in range(2):  # once to see the keys, once with every key and value seen
        again = memo(None, "info", {"note": value, "client_secret": value, "auth_req_id": value})
        assert again == {
            "note": value,
            "client_secret": REDACTED,
            "auth_req_id": auth_req_ref(value),
        }


def test_memo_inside_nested_events_keeps_secret_and_masked_keys() -> None:
    """Strings remembered as clean are still hidden under nested secret or masked keys."""
    memo = Redactor()
    value = "bob@example.com"
    plain = "abc-123-plain"
    for _ in range(3):  # learning, then every key and value seen
        event = {
            "note": plain,
            "audit": {
                "tenant": plain,
                "client_secret": plain,
                "inner": {"auth_req_id": plain, "login_hint": f"email:{value}", "who": value},
                "list": [plain, value, {"password": plain}],
            },
        }
        assert memo(None, "info", dict(event)) == redact(None, "info", dict(event))
        assert memo(None, "info", dict(event))["audit"] == {
            "tenant": plain,
            "client_secret": REDACTED,
            "inner": {
                "auth_req_id": auth_req_ref(plain),
                "login_hint": "email:b***@example.com",
                "who": "b***@example.com",
            },
            "list": [plain, "b***@example.com", {"password": REDACTED}],
        }


def test_memo_stays_bounded() -> None:
    """Unique strings (ids, references) do not grow the memo without limit."""
    memo = Redactor()
    for i in range(3 * Redactor._MAX_ENTRIES):
        assert memo(None, "info", {"ref": f"r{i}"}) == {"ref": f"r{i}"}
    assert len(memo._clean) <= Redactor._MAX_ENTRIES
    assert memo(None, "info", {"who": "bob@example.com"})["who"] == "b***@example.com"


class TestSecretKeys:
    @pytest.mark.parametrize("key", sorted(SECRET_KEYS))
    def test_every_secret_key_is_redacted(self, key: str) -> None:
        """Each listed key has its value replaced."""
        assert run(**{key: "s3cr3t-value"})[key] == REDACTED

    def test_required_keys_are_listed(self) -> None:
        """The keys the design names are all in SECRET_KEYS."""
        required = {
            "client_secret",
            "client_assertion",
            "password",
            "secret",
            "access_token",
            "id_token",
            "refresh_token",
            "client_notification_token",
            "authorization",
            "login_hint_token",
            "id_token_hint",
            "request",
            "code",
            "user_code",
        }
        assert required <= SECRET_KEYS

    @pytest.mark.parametrize(
        "key", ["Authorization", "X-Api-Password", "bearer_token", "db_secret"]
    )
    def test_case_dash_and_suffix_variants(self, key: str) -> None:
        """Header spellings and *_token / *_secret / *password keys are redacted."""
        assert run(**{key: "value"})[key] == REDACTED

    def test_non_string_secret_values_are_redacted(self) -> None:
        """A secret key redacts dicts and numbers too, and leaves None as None."""
        out = run(request={"iss": "x"}, code=123456, password=None)
        assert out == {"request": REDACTED, "code": REDACTED, "password": None}

    def test_ordinary_keys_survive(self) -> None:
        """Keys that are not secret keep their values."""
        out = run(event="token issued", client_id="callcenter", grant_type="urn:x", n=3)
        assert out == {
            "event": "token issued",
            "client_id": "callcenter",
            "grant_type": "urn:x",
            "n": 3,
        }


class TestSpecialKeys:
    def test_login_hint_string_is_masked(self) -> None:
        """login_hint is masked with mask_hint."""
        assert run(login_hint="tel:+46701234567")["login_hint"] == "tel:+46*******67"
        assert run(login_hint="ssn:199001011239")["login_hint"] == "ssn:19900101****"

    def test_login_hint_struct_is_masked_anywhere(self) -> None:
        """A LoginHint object is masked even under another key or nested."""
        hint = LoginHint(kind="email", value="alice@example.com")
        out = run(login_hint=hint, routed={"hints": [hint]})
        assert out["login_hint"] == "email:a***@example.com"
        assert out["routed"] == {"hints": ["email:a***@example.com"]}

    def test_auth_req_id_becomes_a_reference(self) -> None:
        """auth_req_id is replaced by its short hash."""
        assert run(auth_req_id="abc")["auth_req_id"] == auth_req_ref("abc")


class TestScrubbing:
    def test_swedish_number_in_a_message(self) -> None:
        """A valid personnummer inside text keeps only its birth date."""
        out = run(event="upstream refused 199001011239 (alreadyInProgress)")
        assert out["event"] == "upstream refused 19900101**** (alreadyInProgress)"

    def test_ten_digit_forms_in_a_message(self) -> None:
        """10-digit numbers with a separator keep the separator and six digits."""
        assert run(event="pnr 900101-1239.")["event"] == "pnr 900101-****."
        assert run(event="pnr 121212+1212")["event"] == "pnr 121212+****"

    def test_norwegian_number_in_a_message(self) -> None:
        """A valid fødselsnummer keeps only DDMMYY."""
        assert run(event="fnr=15108695088")["event"] == "fnr=151086*****"

    def test_invalid_numbers_are_left_alone(self) -> None:
        """Digit runs failing the check digits are not personal numbers."""
        text = "order 199001011238 and 15108695089 and 1234567890123"
        assert run(event=text)["event"] == text

    def test_phone_number_in_a_message(self) -> None:
        """E.164 numbers keep country code and the last two digits."""
        assert run(event="sms to +46701234567 sent")["event"] == "sms to +46*******67 sent"
        assert run(event="call +46 70 123 45 67")["event"] == "call +46*******67"

    def test_jwt_in_a_message(self) -> None:
        """Three base64url segments starting with eyJ become [jwt]."""
        assert run(event=f"bad assertion {JWT} from rp")["event"] == "bad assertion [jwt] from rp"
        assert run(header=f"Bearer {JWT}")["header"] == "Bearer [jwt]"

    def test_jwe_in_a_message(self) -> None:
        """Five-segment JWE compact serializations are replaced whole."""
        jwe = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn"
        assert run(event=f"x {jwe} y")["event"] == "x [jwt] y"

    def test_hosts_and_versions_are_not_jwts(self) -> None:
        """Dotted names without a JOSE header are kept."""
        text = "GET https://api.example.com/v1.2.3 from 10.0.0.1"
        assert run(event=text)["event"] == text

    def test_nested_dicts_and_lists(self) -> None:
        """Redaction and scrubbing apply at every depth."""
        out = run(
            headers={"Authorization": "Bearer x", "Accept": "application/json"},
            items=[{"password": "p"}, "199001011239", ("+46701234567",)],
        )
        assert out["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
        assert out["items"] == [{"password": REDACTED}, "19900101****", ["+46*******67"]]

    def test_integer_personal_number(self) -> None:
        """A personal number logged as an int is masked; other ints stay ints."""
        out = run(pnr=199001011239, duration_ms=1234567890123)
        assert out == {"pnr": "19900101****", "duration_ms": 1234567890123}

    def test_other_structs_are_converted_and_scrubbed(self) -> None:
        """A msgspec Struct is turned into builtins and scrubbed."""
        from ciba_gateway.connector.api import Identity

        identity = Identity(scheme="se-pnr", subject="199001011239", auth_time=1)
        assert run(identity=identity)["identity"]["subject"] == "19900101****"

    def test_self_reference_is_cut(self) -> None:
        """A cyclic structure does not recurse forever."""
        loop: list[Any] = []
        loop.append(loop)
        out = run(loop=loop)
        depth = 0
        node = out["loop"]
        while isinstance(node, list):
            node = node[0]
            depth += 1
        assert node == "[too deep]"
        assert depth > 5


class TestAuthReqRef:
    def test_is_twelve_hex_and_stable(self) -> None:
        """The reference is 12 lowercase hex digits, the same for the same input."""
        ref = auth_req_ref("2Xo9nVZ1d0R1kz6bUjP0wQ")
        assert len(ref) == 12
        assert int(ref, 16) >= 0
        assert ref == ref.lower()
        assert ref == auth_req_ref("2Xo9nVZ1d0R1kz6bUjP0wQ")

    def test_differs_per_id_and_hides_it(self) -> None:
        """Different ids give different references that do not contain the id."""
        assert auth_req_ref("a" * 22) != auth_req_ref("b" * 22)
        assert "a" * 12 not in auth_req_ref("a" * 22)


@pytest.fixture
def structlog_reset() -> Iterator[None]:
    """Restore structlog's defaults and clear context after the test."""
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


@pytest.mark.usefixtures("structlog_reset")
class TestConfigureLogging:
    def test_json_lines_are_redacted(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The configured JSON pipeline emits one redacted line with level and UTC timestamp."""
        configure_logging("json", "info")
        structlog.contextvars.bind_contextvars(client_id="callcenter", client_secret="hunter2")
        structlog.get_logger().info(
            "bc-authorize for 199001011239",
            login_hint="tel:+46701234567",
            id_token=JWT,
        )
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        line = json.loads(lines[0])
        assert line["event"] == "bc-authorize for 19900101****"
        assert line["login_hint"] == "tel:+46*******67"
        assert line["id_token"] == REDACTED
        assert line["client_secret"] == REDACTED
        assert line["client_id"] == "callcenter"
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")
        for leaked in ("hunter2", "199001011239", "46701234567", JWT[:20]):
            assert leaked not in lines[0]

    def test_timestamp_is_utc_now_with_microseconds(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each line's timestamp is the UTC time it was logged, ISO 8601 with microseconds."""
        configure_logging("json", "info")
        before = dt.datetime.now(dt.UTC)
        for _ in range(3):
            structlog.get_logger().info("tick")
        after = dt.datetime.now(dt.UTC)
        stamps = [json.loads(x)["timestamp"] for x in capsys.readouterr().out.splitlines()]
        assert len(stamps) == 3
        for stamp in stamps:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
            when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
            assert before - dt.timedelta(microseconds=1) <= when <= after
        assert stamps == sorted(stamps)

    def test_level_filters(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Events below the configured level are dropped."""
        configure_logging("json", "WARNING")
        log = structlog.get_logger()
        log.info("quiet")
        log.warning("loud")
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [x["event"] for x in lines] == ["loud"]

    def test_exceptions_are_structured_and_scrubbed(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An exception's message is scrubbed and no local variables are printed."""
        configure_logging("json", "info")
        password = "local-secret-value"
        try:
            raise RuntimeError(f"user 199001011239 unknown ({len(password)})")
        except RuntimeError:
            structlog.get_logger().exception("lookup failed")
        out = capsys.readouterr().out
        line = json.loads(out)
        assert line["exception"][0]["exc_value"] == "user 19900101**** unknown (18)"
        assert "local-secret-value" not in out
        assert "199001011239" not in out

    def test_console_format_is_redacted(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The console renderer also receives redacted values."""
        configure_logging("console", "debug")
        structlog.get_logger().debug(
            "start", client_secret="hunter2", login_hint="ssn:199001011239"
        )
        out = capsys.readouterr().out
        assert "start" in out
        assert "hunter2" not in out
        assert "199001011239" not in out
        assert "19900101****" in out

    @pytest.mark.parametrize(("fmt", "level"), [("xml", "info"), ("json", "chatty")])
    def test_bad_arguments_raise(self, fmt: str, level: str) -> None:
        """Unknown formats and level names are refused."""
        with pytest.raises(ValueError, match="unknown"):
            configure_logging(fmt, level)  # type: ignore[arg-type]


@pytest.mark.usefixtures("structlog_reset")
class TestLineWriting:
    def test_access_line_keeps_its_keys_in_order(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An access line is written with its keys in call order, then level and timestamp."""
        configure_logging("json", "info")
        structlog.get_logger("ciba_gateway.access").info(
            "request",
            method="POST",
            endpoint="token",
            status=400,
            duration_ms=0.42,
            tenant="es",
            client_id="callcenter",
            exc_info=False,
        )
        out = capsys.readouterr().out
        assert out.endswith("}\n")
        line = json.loads(out)
        assert list(line) == [
            "method",
            "endpoint",
            "status",
            "duration_ms",
            "tenant",
            "client_id",
            "event",
            "level",
            "timestamp",
        ]
        assert line["status"] == 400
        assert line["duration_ms"] == 0.42
        assert line["client_id"] == "callcenter"

    def test_numbers_under_secret_keys_stay_redacted_on_every_line(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Numbers pass the memo's fast path only under ordinary keys, however often seen."""
        configure_logging("json", "info")
        log = structlog.get_logger()
        for _ in range(3):
            log.info("n", code=123456, user_code=1.5, n=123456, pnr=199001011239)
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert len(lines) == 3
        for line in lines:
            assert line["code"] == REDACTED
            assert line["user_code"] == REDACTED
            assert line["n"] == 123456
            assert line["pnr"] == "19900101****"

    def test_text_written_before_a_line_stays_before_it(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Unflushed text on stdout is written before the next log line, not after it."""
        configure_logging("json", "info")
        sys.stdout.write("banner\n")  # not flushed
        structlog.get_logger().info("first")
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "banner"
        assert json.loads(out[1])["event"] == "first"

    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_each_line_reaches_the_file_when_the_call_returns(
        self, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing waits in a user-space buffer: another reader sees the line at once."""
        path = tmp_path / "out.log"
        with path.open("w", encoding="utf-8") as stream:
            monkeypatch.setattr(sys, "stdout", stream)
            configure_logging(fmt, "info")  # type: ignore[arg-type]
            structlog.get_logger().info("durable", who="bob@example.com")
            written = path.read_text(encoding="utf-8")  # before any close or flush here
        assert written.count("\n") == 1
        assert "durable" in written
        assert "b***@example.com" in written
        assert "bob@example.com" not in written
