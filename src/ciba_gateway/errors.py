"""Error types of the gateway; a leaf module that imports nothing from the package.

Exception tree::

    GatewayError
    +-- OAuthError                    rendered on the wire as RFC 6749 section 5.2 JSON
    |   +-- InvalidRequestError           400 invalid_request
    |   +-- InvalidScopeError             400 invalid_scope
    |   +-- ExpiredLoginHintTokenError    400 expired_login_hint_token   (CIBA Core 13)
    |   +-- UnknownUserIdError            400 unknown_user_id            (CIBA Core 13)
    |   +-- UnauthorizedClientError       400 unauthorized_client
    |   +-- MissingUserCodeError          400 missing_user_code          (CIBA Core 13)
    |   +-- InvalidUserCodeError          400 invalid_user_code          (CIBA Core 13)
    |   +-- InvalidBindingMessageError    400 invalid_binding_message    (CIBA Core 13)
    |   +-- InvalidAuthorizationDetailsError 400 invalid_authorization_details (RFC 9396 5)
    |   +-- RequestUriNotSupportedError   400 request_uri_not_supported  (OIDC Core 6.2)
    |   +-- InvalidClientError            401 invalid_client
    |   +-- AccessDeniedError             403 at bc-authorize, 400 at the token endpoint
    |   +-- AuthorizationPendingError     400 authorization_pending      (CIBA Core 11)
    |   +-- SlowDownError                 400 slow_down; 429 at bc-authorize over a start limit
    |   +-- ExpiredTokenError             400 expired_token
    |   +-- InvalidGrantError             400 invalid_grant
    |   +-- UnsupportedGrantTypeError     400 unsupported_grant_type
    |   +-- TransactionFailedError        400 transaction_failed         (CIBA Core 12)
    |   +-- InvalidTokenError             401 invalid_token              (RFC 6750, userinfo)
    |   +-- TemporarilyUnavailableError   503 temporarily_unavailable
    |   +-- ServerError                   500 server_error
    +-- ConfigError                   a configuration file is invalid (carries every problem)
    +-- StoreError                    the store failed or is unreachable
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "AuthorizationPendingError",
    "ConfigError",
    "ConfigProblem",
    "ExpiredLoginHintTokenError",
    "ExpiredTokenError",
    "GatewayError",
    "InvalidAuthorizationDetailsError",
    "InvalidBindingMessageError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "InvalidUserCodeError",
    "MissingUserCodeError",
    "OAuthError",
    "RequestUriNotSupportedError",
    "ServerError",
    "SlowDownError",
    "StoreError",
    "TemporarilyUnavailableError",
    "TransactionFailedError",
    "UnauthorizedClientError",
    "UnknownUserIdError",
    "UnsupportedGrantTypeError",
]


def _is_allowed_description_char(ch: str) -> bool:
    # RFC 6749 section 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
    code = ord(ch)
    return 0x20 <= code <= 0x7E and ch not in {'"', "\\"}


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class OAuthError(GatewayError):
    """An error that is answered to the client as an OAuth JSON body."""

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(
        self,
        description: str = "",
        *,
        headers: dict[str, str] | None = None,
        status_code: int | None = None,
    ) -> None:
        if (
            description.isascii()
            and description.isprintable()
            and '"' not in description
            and "\\" not in description
        ):
            clean = description  # all of %x20-7E but '"' and '\\': nothing to replace
        else:
            clean = "".join(ch if _is_allowed_description_char(ch) else "?" for ch in description)
        super().__init__(clean or self.error)
        self.description = clean
        self.headers = dict(headers or {})
        if status_code is not None:
            self.status_code = status_code

    def to_body(self) -> dict[str, str]:
        """The JSON body of RFC 6749 section 5.2."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class ExpiredLoginHintTokenError(OAuthError):
    error = "expired_login_hint_token"


class UnknownUserIdError(OAuthError):
    error = "unknown_user_id"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class MissingUserCodeError(OAuthError):
    error = "missing_user_code"


class InvalidUserCodeError(OAuthError):
    error = "invalid_user_code"


class InvalidBindingMessageError(OAuthError):
    error = "invalid_binding_message"


class InvalidAuthorizationDetailsError(OAuthError):
    error = "invalid_authorization_details"


class RequestUriNotSupportedError(OAuthError):
    error = "request_uri_not_supported"


class InvalidClientError(OAuthError):
    """Client authentication failed (RFC 6749 section 5.2): 401."""

    error = "invalid_client"
    status_code = 401


class AccessDeniedError(OAuthError):
    """The user or the gateway refused. 403 at bc-authorize (CIBA Core 13)."""

    error = "access_denied"
    status_code = 403


class AuthorizationPendingError(OAuthError):
    error = "authorization_pending"


class SlowDownError(OAuthError):
    error = "slow_down"


class ExpiredTokenError(OAuthError):
    error = "expired_token"


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class TransactionFailedError(OAuthError):
    """The upstream authentication failed for a reason other than the user's refusal."""

    error = "transaction_failed"


class InvalidTokenError(OAuthError):
    error = "invalid_token"
    status_code = 401


class TemporarilyUnavailableError(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class ConfigProblem(Exception):
    """One problem in a configuration file, at a path like ``tenants[0].clients[2].auth``.

    ``line`` and ``column`` (1-based) locate the path in the YAML file when known.
    """

    def __init__(
        self, path: str, message: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
        self.line = line
        self.column = column


class ConfigError(GatewayError):
    """A configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class StoreError(GatewayError):
    """The store failed or could not be reached."""
