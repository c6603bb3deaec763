"""The one place BankID's failures become the gateway's ``ConnectorError`` s.

``translated(log, call)`` wraps the client calls of a start or a collect and
maps what escapes, most specific first, logging each failure once::

    BankIDError alreadyInProgress (start)   UserBusy
    BankIDError 5xx, 408, 429               UpstreamUnavailable
    BankIDError invalidParameters (collect) UpstreamRejected: the order is gone
    BankIDError, any other                  UpstreamRejected, with BankID's errorCode
    BankIDProtocolError (collect)           MalformedAnswer (an UpstreamUnavailable)
    BankIDProtocolError (start)             UpstreamUnavailable
    httpx.HTTPError                         UpstreamUnavailable

A refused collect becomes ``Failed`` with the description as reason; the
connector counts malformed collects (``MAX_MALFORMED_COLLECTS``). Cancels are
best effort and translate nothing (``connector.best_effort``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx

from ciba_gateway.connector import (
    ConnectorError,
    ErrorBoundary,
    UpstreamRejected,
    UpstreamUnavailable,
    UserBusy,
    mask_text,
    never_sent,
    unavailable_status,
)
from ciba_gateway_bankid.client import BankIDError, BankIDProtocolError

__all__ = ["MalformedAnswer", "not_pending", "safe_code", "start_retryable", "translated"]

Call = Literal["start", "collect"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class MalformedAnswer(UpstreamUnavailable):
    """A 2xx answer that is not the documented JSON (wrong content type, unreadable)."""


def safe_code(code: str) -> str:
    """An upstream code fit for a client-visible description."""
    return _UNSAFE.sub("", code)[:40] or "unknown"


def start_retryable(exc: BaseException) -> bool:
    """True when a start call surely did not create an order, so sending it again is safe.

    A read timeout or a dropped connection may come after BankID created the
    order; starting again would prompt the user twice, so those are never retried.
    BankID documents 503 ``maintenance`` as "not handled; try again".
    """
    if never_sent(exc):
        return True
    return isinstance(exc, BankIDError) and exc.status == 503 and exc.error_code == "maintenance"


def not_pending(exc: BaseException) -> bool:
    """A cancel BankID refused because the order is no longer pending (nothing to cancel)."""
    return isinstance(exc, BankIDError) and exc.error_code == "invalidparameters"


def _refusal(exc: BankIDError, call: Call) -> ConnectorError:
    code = safe_code(exc.raw_error_code) if exc.raw_error_code else str(exc.status)
    if call == "start":
        if exc.error_code == "alreadyinprogress":
            return UserBusy(
                "an identification or signing for this personal number is already in progress"
            )
        if unavailable_status(exc.status):
            return UpstreamUnavailable(f"BankID is unavailable ({code}); try again later")
        return UpstreamRejected(f"BankID refused the request ({code})")
    if unavailable_status(exc.status):
        return UpstreamUnavailable(f"BankID collect failed ({exc.status})")
    if exc.error_code == "invalidparameters":
        return UpstreamRejected("the BankID order no longer exists (invalidParameters)")
    return UpstreamRejected(f"BankID refused to report on the order ({code})")


class translated(ErrorBoundary):  # lower case: used as ``with translated(...)``
    """Raise the BankID failures of one ``call`` as ConnectorErrors (table above).

    ``context`` (e.g. ``order_ref``) is added to the failure's log event.
    """

    __slots__ = ("_call", "_context", "_log")

    def __init__(self, log: Any, call: Call, **context: Any) -> None:
        self._log = log
        self._call = call
        self._context = context

    def translate(self, exc: Exception) -> ConnectorError | None:
        call, log, context = self._call, self._log, self._context
        if isinstance(exc, BankIDError):
            log.warning(
                f"bankid_{call}_refused",
                **context,
                status=exc.status,
                error_code=exc.raw_error_code,
                details=mask_text(exc.details),
            )
            return _refusal(exc, call)
        if isinstance(exc, BankIDProtocolError) and call == "collect":
            return MalformedAnswer(str(exc))
        if isinstance(exc, BankIDProtocolError | httpx.HTTPError):
            log.warning(f"bankid_{call}_failed", **context, error=type(exc).__name__)
            suffix = "; try again later" if call == "start" else ""
            return UpstreamUnavailable(f"BankID could not be reached{suffix}")
        return None
