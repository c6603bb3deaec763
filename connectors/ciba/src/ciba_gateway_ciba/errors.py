"""The one place the upstream CIBA provider's failures become the gateway's ``ConnectorError`` s.

``translated(log, call)`` wraps the provider calls of a start, a token request
or the verification of an approval, and maps what escapes, logging it once::

    httpx.HTTPError (start, token)        UpstreamUnavailable: not reached
    UpstreamProtocolError (start)         UpstreamUnavailable: not reached
    UpstreamProtocolError (token)         UpstreamRejected: it answered badly
    httpx.HTTPError (verify)              UpstreamRejected: keys or userinfo not fetched
                                          (the grant is consumed: no second chance)
    InvalidIdToken, MappingError,
    UpstreamProtocolError (verify)        UpstreamRejected: the answer failed verification

``started`` reads the answer to a start: an OAuth error answer is ``UserNotFound``
(``unknown_user_id``), ``InvalidHint`` (``invalid_binding_message``),
``UpstreamUnavailable`` (``unavailable``) or ``UpstreamRejected``. A token
request's error answers are the CIBA protocol (pending, slow_down, denied, ...):
the connector maps them, using ``unavailable`` and ``safe_code`` from here. A
rejected token request or verification becomes ``Failed`` with the description.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from ciba_gateway.connector import (
    ConnectorError,
    ErrorBoundary,
    InvalidHint,
    UpstreamRejected,
    UpstreamUnavailable,
    UserNotFound,
    mask_text,
)
from ciba_gateway_ciba.identity import MappingError
from ciba_gateway_ciba.idtoken import InvalidIdToken
from ciba_gateway_ciba.wire import (
    Answer,
    BackchannelAnswer,
    UpstreamProtocolError,
    decode,
    error_of,
)

__all__ = ["safe_code", "started", "translated", "unavailable"]

Call = Literal["start", "token", "verify"]
_UNAVAILABLE = frozenset({"temporarily_unavailable", "server_error", "slow_down"})


def safe_code(text: str | None) -> str:
    """An upstream error code fit for a client-visible description."""
    return "".join(ch for ch in (text or "") if ch.isalnum() or ch in "_-.")[:40] or "unknown"


def unavailable(status: int, error: str) -> bool:
    """Worth trying again later: a server fault, throttling, or an endpoint that moved.

    A 404 also drops the cached discovery (client.py), so the retry reads it again.
    """
    return status >= 500 or status in (404, 429) or error in _UNAVAILABLE


def started(log: Any, answer: Answer) -> BackchannelAnswer:
    """The upstream's answer to a backchannel request, or the ConnectorError it stands for."""
    if answer.status != 200:
        error = error_of(answer)
        code = safe_code(error.error)
        log.warning(
            "ciba_start_refused",
            status=answer.status,
            error=code,
            description=mask_text(error.error_description or "")[:200],
        )
        if error.error == "unknown_user_id":
            raise UserNotFound("the upstream provider does not know this user")
        if error.error == "invalid_binding_message":
            raise InvalidHint("the upstream provider refused the binding_message")
        if unavailable(answer.status, error.error):
            raise UpstreamUnavailable(f"the upstream provider is unavailable ({code})")
        raise UpstreamRejected(f"the upstream provider refused the request ({code})")
    try:
        return decode(answer.body, BackchannelAnswer)
    except UpstreamProtocolError as exc:
        raise UpstreamUnavailable("the upstream provider answered malformed JSON") from exc


class translated(ErrorBoundary):  # lower case: used as ``with translated(...)``
    """Raise the upstream failures of one ``call`` as ConnectorErrors (table above)."""

    __slots__ = ("_call", "_log")

    def __init__(self, log: Any, call: Call) -> None:
        self._log = log
        self._call = call

    def translate(self, exc: Exception) -> ConnectorError | None:
        call, log = self._call, self._log
        if call == "verify":
            if isinstance(exc, InvalidIdToken | MappingError | UpstreamProtocolError):
                log.warning("ciba_id_token_refused", reason=str(exc))
                return UpstreamRejected(f"the upstream's answer failed verification: {exc}")
            if isinstance(exc, httpx.HTTPError):
                log.warning("ciba_jwks_or_userinfo_failed", error=type(exc).__name__)
                return UpstreamRejected("the upstream's keys or userinfo could not be fetched")
            return None
        if isinstance(exc, UpstreamProtocolError) and call == "token":
            return UpstreamRejected(f"the upstream token endpoint answered badly ({exc})")
        if isinstance(exc, httpx.HTTPError | UpstreamProtocolError):
            log.warning(f"ciba_{call}_failed", error=type(exc).__name__)
            if call == "token":
                return UpstreamUnavailable("the upstream token endpoint could not be reached")
            return UpstreamUnavailable("the upstream provider could not be reached")
        return None
