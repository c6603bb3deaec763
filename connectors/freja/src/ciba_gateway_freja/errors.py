"""The one place Freja eID's failures become the gateway's ``ConnectorError`` s.

``translated(log, call)`` wraps the client calls of a start (initAuthentication,
initSignature) or a result read (getOneResult, getOneSignResult) and maps what
escapes, most specific first, logging each failure once::

    FrejaError 1012, 1005 (start)              UserNotFound
    FrejaError 2000 (start)                    UpstreamRejected: wait before trying again
    FrejaError code 0, or HTTP 5xx, 408, 429   UpstreamUnavailable
    FrejaError 1100 (result)                   UpstreamRejected: the reference is unknown
    FrejaError, any other                      UpstreamRejected, with Freja's code
    httpx.HTTPStatusError 5xx, 408, 429        UpstreamUnavailable
    httpx.HTTPStatusError, any other           UpstreamRejected
    httpx.HTTPError, FrejaProtocolError        UpstreamUnavailable

A refused result read becomes ``Failed`` with the description as reason.
Cancels are best effort and translate nothing (``connector.best_effort``).
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from ciba_gateway.connector import (
    ConnectorError,
    ErrorBoundary,
    UpstreamRejected,
    UpstreamUnavailable,
    UserNotFound,
    is_transient,
    mask_text,
    unavailable_status,
)
from ciba_gateway_freja.client import FrejaError, FrejaProtocolError
from ciba_gateway_freja.wire import ERROR_MESSAGES

__all__ = ["idempotent_retryable", "not_pending", "translated"]

Call = Literal["start", "result"]
_HINT_LABELS = {
    "SSN": "personal identity number",
    "EMAIL": "email address",
    "PHONE": "phone number",
}


def idempotent_retryable(exc: BaseException) -> bool:
    """Worth another try for idempotent calls (getOneResult, cancel)."""
    return is_transient(exc) or (isinstance(exc, FrejaError) and exc.status >= 500)


def not_pending(exc: BaseException) -> bool:
    """A cancel Freja refused because it no longer knows the reference (1100)."""
    return isinstance(exc, FrejaError) and exc.code == 1100


def _describe(code: int) -> str:
    return f"{code}: {ERROR_MESSAGES.get(code, 'unknown error').rstrip('.')}"


def _refusal(exc: FrejaError, call: Call, user_info_type: str) -> ConnectorError:
    if call == "start":
        if exc.code == 1012:
            label = _HINT_LABELS.get(user_info_type, "identifier")
            return UserNotFound(f"Freja eID has no user with this {label} (1012)")
        if exc.code == 1005:
            return UserNotFound("the user has turned off this service in Freja eID (1005)")
        if exc.code == 2000:
            return UpstreamRejected(
                "Freja eID refused: the user's previous authentication was rejected for "
                "security reasons; wait before trying again (2000)"
            )
    if exc.code == 0 or unavailable_status(exc.status):
        later = "; try again later" if call == "start" else ""
        return UpstreamUnavailable(f"Freja eID failed ({_describe(exc.code)}){later}")
    if call == "start":
        return UpstreamRejected(f"Freja eID refused the request ({_describe(exc.code)})")
    if exc.code == 1100:
        return UpstreamRejected(
            "Freja eID no longer knows this authentication (1100: invalid reference)"
        )
    return UpstreamRejected(f"Freja eID refused to report the result ({_describe(exc.code)})")


def _status_refusal(status: int, call: Call) -> ConnectorError:
    if unavailable_status(status):
        later = "; try again later" if call == "start" else ""
        return UpstreamUnavailable(f"Freja eID is unavailable (HTTP {status}){later}")
    if call == "start":
        return UpstreamRejected(f"Freja eID refused the request (HTTP {status})")
    return UpstreamRejected(f"Freja eID refused to report the result (HTTP {status})")


class translated(ErrorBoundary):  # lower case: used as ``with translated(...)``
    """Raise the Freja failures of one ``call`` as ConnectorErrors (table above).

    ``user_info_type`` names the kind of identifier in a start's "no such user".
    """

    __slots__ = ("_call", "_log", "_user_info_type")

    def __init__(self, log: Any, call: Call, *, user_info_type: str = "") -> None:
        self._log = log
        self._call = call
        self._user_info_type = user_info_type

    def translate(self, exc: Exception) -> ConnectorError | None:
        call, log = self._call, self._log
        if isinstance(exc, FrejaError):
            log.warning(
                f"freja_{call}_refused",
                status=exc.status,
                error_code=exc.code,
                message=mask_text(exc.message)[:200],
            )
            return _refusal(exc, call, self._user_info_type)
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            log.warning(f"freja_{call}_refused", status=status)
            return _status_refusal(status, call)
        if isinstance(exc, httpx.HTTPError | FrejaProtocolError):
            log.warning(f"freja_{call}_failed", error=type(exc).__name__)
            later = "; try again later" if call == "start" else ""
            return UpstreamUnavailable(f"Freja eID could not be reached{later}")
        return None
