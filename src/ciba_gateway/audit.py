"""The audit trail: one structured event per decision, the record a bank keeps (docs/audit.md).

The flow engine calls ``AuditTrail.record`` once for every request it settles
(approved, denied, failed, expired), after the compare-and-set that made the
decision won, so each decision is recorded exactly once whatever the number of
workers. The event names who asked (tenant, client), through which connector, for
whom (the login hint masked as in logs), what (the types and the digest of the
``authorization_details``, never their content), the outcome and its times.

Sinks (``audit.sink``): ``file`` appends one JSON line per event (``O_APPEND``, one
``write`` per line, so several workers can share the file); ``log`` writes the
event to the log stream as ``audit_decision`` with ``logger: ciba_gateway.audit``;
``none`` keeps nothing. The upstream's signature evidence holds personal data (a
BankID signature names the person), so it never enters an audit event or a log
line: the event carries its SHA-256 only, and the evidence itself is appended to
``audit.evidence_file`` when one is configured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import Any

import msgspec
import structlog

from ciba_gateway.config.model import AuditConfig
from ciba_gateway.connector import Evidence
from ciba_gateway.connector.details import digest
from ciba_gateway.connector.masking import mask_hint
from ciba_gateway.flow.model import AuthRequest
from ciba_gateway.observability import auth_req_ref

__all__ = ["AuditTrail", "decision_event", "evidence_record", "file_problem"]

EVENT = "audit_decision"
log = structlog.get_logger("ciba_gateway.audit")


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def _evidence_sha256(evidence: Evidence) -> str:
    return hashlib.sha256(msgspec.json.encode(evidence.proof, order="sorted")).hexdigest()


def decision_event(request: AuthRequest) -> dict[str, Any]:
    """The audit event of a settled request: PII only in masked form."""
    details = request.authorization_details
    identity = request.identity
    evidence = identity.evidence if identity is not None else None
    return {
        "event": EVENT,
        "version": 1,
        "tenant": request.tenant_id,
        "client": request.client_id,
        "connector": request.connector,
        "request": auth_req_ref(request.auth_req_id),
        "subject": mask_hint(request.login_hint),
        "outcome": str(request.status),
        "error": request.error,
        "acr": identity.acr if identity is not None else None,
        "details_types": sorted({str(d.get("type")) for d in details}),
        "details_digest": digest(details) if details else None,
        "evidence": None
        if evidence is None
        else {
            "kind": evidence.kind,
            "checks": list(evidence.checks),
            "text_sha256": evidence.text_sha256,
            "details_digest": evidence.details_digest,
            "sha256": _evidence_sha256(evidence),
        },
        "created_at": _iso(request.created_at),
        "decided_at": _iso(request.decided_at),
        "expires_at": _iso(request.expires_at),
    }


def evidence_record(request: AuthRequest, evidence: Evidence) -> dict[str, Any]:
    """A line of the evidence file: the proof itself, tied to its audit event."""
    return {
        "request": auth_req_ref(request.auth_req_id),
        "tenant": request.tenant_id,
        "decided_at": _iso(request.decided_at),
        "sha256": _evidence_sha256(evidence),
        "evidence": msgspec.to_builtins(evidence),
    }


class AuditTrail:
    """Writes decision events to the configured sink; build once, ``close`` at shutdown."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self._fd = _open(config.file) if config.sink == "file" and config.file else None
        self._evidence_fd = _open(config.evidence_file) if config.evidence_file else None

    def record(self, request: AuthRequest) -> None:
        """Write the event of one decision (and its evidence, if any and configured)."""
        if self.config.sink == "none":
            return
        event = decision_event(request)
        if self._fd is not None:
            _append(self._fd, event)
        else:
            log.info(EVENT, logger="ciba_gateway.audit", audit=_for_log(event))
        identity = request.identity
        if self._evidence_fd is not None and identity is not None and identity.evidence:
            _append(self._evidence_fd, evidence_record(request, identity.evidence))

    def close(self) -> None:
        """Close the files."""
        for fd in (self._fd, self._evidence_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._evidence_fd = None


def file_problem(path: str) -> str | None:
    """Why the audit trail could not append to ``path`` (None when it can)."""
    if os.path.isdir(path):
        return f"{path} is a directory, not a file to append to"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else f"cannot write {path}"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: directory {parent} is not writable"
    return None


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _append(fd: int, data: dict[str, Any]) -> None:
    os.write(fd, msgspec.json.encode(data) + b"\n")


def _for_log(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the log sink writes it: ``request`` is named ``request_ref``.

    The log redactor removes every value under a key named ``request`` (the signed
    request object's parameter), so under that name the reference would read
    ``[redacted]``; a 12-hex digest of the auth_req_id is not a secret.
    """
    return {("request_ref" if key == "request" else key): value for key, value in event.items()}
