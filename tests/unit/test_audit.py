"""The audit trail's sinks: log stream, JSON lines file, evidence kept apart from both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from msgspec.structs import replace

from ciba_gateway.audit import AuditTrail, decision_event
from ciba_gateway.config.model import AuditConfig
from ciba_gateway.connector import Evidence, Identity, LoginHint, load_registry
from ciba_gateway.errors import ConfigError
from ciba_gateway.flow.model import AuthRequest, Status
from ciba_gateway.observability import auth_req_ref, configure_logging, redact
from ciba_gateway.preflight import check_config
from tests.example_config import EXAMPLE_SECRETS, example_with_its_files

SIGNATURE = "PD94bWwgdmVyc2lvbj0iMS4wIj8+PHVzZXI+MTk5MDAxMDExMjM5PC91c2VyPg=="


def approved() -> AuthRequest:
    evidence = Evidence(
        kind="bankid-signature",
        text_sha256="ab" * 32,
        details_digest="sha-256:xyz",
        checks=("signed_text", "signed_digest"),
        proof={"signature": SIGNATURE, "ocspResponse": "MIIHdgoBAKCC"},
    )
    return AuthRequest(
        auth_req_id="secret-auth-req-id-0123456789",
        tenant_id="t1",
        client_id="c1",
        scope=("openid",),
        login_hint=LoginHint(kind="ssn", value="199001011239", country="SE"),
        connector="bankid",
        created_at=1_700_000_000.0,
        expires_at=1_700_000_120.0,
        decided_at=1_700_000_010.5,
        interval=5,
        status=Status.APPROVED,
        authorization_details=({"type": "approval", "title": "Pay Karl Karlsson"},),
        identity=Identity(
            scheme="se-pnr",
            subject="199001011239",
            national_id="199001011239",
            claims={"name": "Karl Karlsson"},
            acr="urn:grn:authn:se:bankid",
            evidence=evidence,
        ),
    )


def test_event_has_every_field_and_no_personal_data() -> None:
    """The event names who, what (as digest), outcome and times; nothing identifying."""
    event = decision_event(approved())
    assert set(event) == {
        "event", "version", "tenant", "client", "connector", "request", "subject",
        "outcome", "error", "acr", "details_types", "details_digest", "evidence",
        "created_at", "decided_at", "expires_at",
    }  # fmt: skip
    assert event["subject"] == "ssn:19900101****"
    assert event["decided_at"] == "2023-11-14T22:13:30.500+00:00"
    assert event["evidence"]["checks"] == ["signed_text", "signed_digest"]
    text = json.dumps(event)
    for secret in ("199001011239", "Karl", "secret-auth-req-id", SIGNATURE, "MIIHdgoBAKCC"):
        assert secret not in text


def test_file_sink_appends_lines_and_evidence_goes_to_its_own_file(tmp_path: Path) -> None:
    """file sink: one JSON line per decision; the proof lands only in the evidence file."""
    trail = AuditTrail(
        AuditConfig(sink="file", file=str(tmp_path / "a.jsonl"), evidence_file=str(tmp_path / "e"))
    )
    request = approved()
    trail.record(request)
    trail.record(replace(request, status=Status.DENIED, identity=None, error="access_denied"))
    trail.close()

    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == ["approved", "denied"]
    assert SIGNATURE not in "".join(lines)
    evidence = [json.loads(line) for line in (tmp_path / "e").read_text().splitlines()]
    assert len(evidence) == 1
    assert evidence[0]["evidence"]["proof"]["signature"] == SIGNATURE
    assert evidence[0]["sha256"] == json.loads(lines[0])["evidence"]["sha256"]


def test_log_sink_writes_the_event_under_its_own_logger() -> None:
    """log sink: one audit_decision event tagged with logger ciba_gateway.audit, no proof."""
    trail = AuditTrail(AuditConfig(sink="log"))
    with structlog.testing.capture_logs() as logs:
        trail.record(approved())
    assert len(logs) == 1
    assert logs[0]["event"] == "audit_decision"
    assert logs[0]["logger"] == "ciba_gateway.audit"
    assert logs[0]["audit"]["outcome"] == "approved"
    assert SIGNATURE not in json.dumps(logs[0])


def test_log_sink_line_keeps_the_request_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """Rendered as JSON by the real logging chain, the line has the 12-hex reference."""
    configure_logging("json", "info")
    request = approved()
    AuditTrail(AuditConfig(sink="log")).record(request)
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "audit_decision" in x]
    assert line["audit"]["request_ref"] == auth_req_ref(request.auth_req_id)
    assert "request" not in line["audit"]
    assert list(line["audit"])[:6] == ["event", "version", "tenant", "client", "connector",
                                       "request_ref"]  # fmt: skip


def test_none_sink_records_nothing(tmp_path: Path) -> None:
    """sink none writes no event and no evidence."""
    trail = AuditTrail(AuditConfig(sink="none", evidence_file=str(tmp_path / "e")))
    with structlog.testing.capture_logs() as logs:
        trail.record(approved())
    trail.close()
    assert logs == []
    assert (tmp_path / "e").read_text() == ""


def test_check_config_reports_audit_files_it_cannot_append_to(tmp_path: Path) -> None:
    """A missing directory or a directory in place of the file: problems with their path."""
    path = example_with_its_files(tmp_path)
    audit = (
        f"audit: {{sink: file, file: {tmp_path}/no/such/dir/a.jsonl, evidence_file: {tmp_path}}}\n"
    )
    path.write_text(audit + path.read_text())
    try:
        check_config(path, registry=load_registry(), env=EXAMPLE_SECRETS)
    except ConfigError as exc:
        problems = {p.path: p.message for p in exc.problems}
    else:
        raise AssertionError("check_config accepted unwritable audit files")
    assert set(problems) == {"audit.file", "audit.evidence_file"}
    assert "does not exist" in problems["audit.file"]
    assert "is a directory" in problems["audit.evidence_file"]


def test_evidence_never_survives_the_log_redaction() -> None:
    """Even an Identity logged by mistake loses its evidence in the redaction processor."""
    identity = approved().identity
    event = redact(None, "info", {"event": "oops", "identity": identity})
    assert SIGNATURE not in json.dumps(event)
    assert event["identity"]["evidence"] == "[redacted]"
