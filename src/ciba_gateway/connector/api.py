"""The connector plugin API: what a connector receives, returns and raises.

A connector drives one upstream authentication scheme. The gateway calls
``start`` once per backchannel request, then ``poll`` from its background driver
until a terminal outcome, and ``cancel`` when the request expires first. A
connector whose upstream calls back (a web page the user opens) resolves the
request itself through ``ConnectorDeps.resolve``.

Errors a connector raises (never an OAuth error)::

    ConnectorError
    +-- UserNotFound           the upstream does not know the user -> unknown_user_id
    +-- InvalidHint            the login hint is unusable for it   -> invalid_request
    +-- UserBusy               the user has an order in progress   -> invalid_request
    +-- InvalidAuthorizationDetails    bad content in an accepted type
                                           -> invalid_authorization_details
    +-- UpstreamRejected       the upstream refused the request   -> access_denied (start),
                                                                      transaction_failed (poll)
    +-- UpstreamUnavailable    timeout, 5xx, connection reset     -> temporarily_unavailable
                                                                      (start), retried (poll)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import msgspec

__all__ = [
    "IDENTITY_MISMATCH",
    "Approved",
    "BaseConnector",
    "CallbackRequest",
    "CallbackResponse",
    "CallbackRoute",
    "Connector",
    "ConnectorDeps",
    "ConnectorError",
    "ConnectorState",
    "Denied",
    "Evidence",
    "Expired",
    "Failed",
    "Identity",
    "InvalidAuthorizationDetails",
    "InvalidHint",
    "LoginHint",
    "Outcome",
    "Pending",
    "PollResult",
    "StartRequest",
    "Started",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "UserBusy",
    "UserNotFound",
    "identity_mismatch",
]


# --- errors -----------------------------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises; ``description`` is safe to show a client."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class UserNotFound(ConnectorError):
    """The upstream has no such user (e.g. no BankID for this personal number)."""


class InvalidHint(ConnectorError):
    """The login hint is not usable by this connector."""


class UserBusy(ConnectorError):
    """The upstream refused because the user already has an order in progress."""


class InvalidAuthorizationDetails(ConnectorError):
    """An authorization_details entry of an accepted type has content the connector refuses."""


class UpstreamRejected(ConnectorError):
    """The upstream refused the request for a reason that retrying will not fix."""


class UpstreamUnavailable(ConnectorError):
    """The upstream could not be reached or failed (timeout, 5xx, connection reset)."""


# --- values passed in -------------------------------------------------------


class LoginHint(msgspec.Struct, frozen=True, kw_only=True):
    """A validated, normalized login hint.

    ``kind`` is ``ssn``, ``tel``, ``email`` or another kind a connector declares;
    ``value`` is normalized (12-digit personnummer, E.164 phone, lower-case email);
    ``country`` is the ISO 3166 alpha-2 country of an ``ssn`` hint when known.
    """

    kind: str
    value: str
    country: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class StartRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a connector may use to start an upstream authentication."""

    ref: str
    """Opaque reference of the gateway's request; pass it to ``ConnectorDeps.resolve``."""
    tenant_id: str
    client_id: str
    client_name: str
    login_hint: LoginHint
    scope: tuple[str, ...]
    acr_values: tuple[str, ...] = ()
    binding_message: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    expires_at: float = 0.0
    end_user_ip: str = "127.0.0.1"


# --- values returned --------------------------------------------------------


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """What the person approved upstream and the upstream's proof of it.

    ``kind`` names the proof (``bankid-signature``, ``freja-signature``,
    ``smslink-page``); ``text_sha256`` is the hex SHA-256 of the exact UTF-8 text
    shown; ``details_digest`` the ``connector.details.digest`` the proof binds;
    ``checks`` the verifications that passed. ``proof`` holds the upstream's raw
    evidence (BankID ``signature`` and ``ocspResponse``, Freja's signed result). It
    carries personal data: the gateway writes it to the audit evidence file only,
    never to a log line.
    """

    kind: str
    text_sha256: str
    details_digest: str | None = None
    checks: tuple[str, ...] = ()
    proof: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Evidence(kind={self.kind!r}, checks={self.checks!r}, proof=[{len(self.proof)}])"


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """A normalized authenticated person.

    ``scheme`` + ``subject`` are the stable subject input the gateway hashes into
    ``sub`` (e.g. ``se-pnr`` + ``199001011239``). ``claims`` holds standard OIDC
    claims (name, given_name, family_name, birthdate, email, email_verified,
    phone_number, phone_number_verified) and scheme claims under documented names.
    ``national_id`` / ``country`` fill the ``ssn`` scope's claims when known.
    """

    scheme: str
    subject: str
    claims: dict[str, Any] = msgspec.field(default_factory=dict)
    national_id: str | None = None
    country: str | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: int = msgspec.field(default_factory=lambda: int(time.time()))
    evidence: Evidence | None = None
    """Set by a connector that had the person sign the approval text (transaction approval)."""


class Started(msgspec.Struct, frozen=True, kw_only=True):
    """The upstream accepted the request.

    ``session`` is the connector's own JSON-serializable state, handed back to
    ``poll`` and ``cancel``. ``poll_after`` is seconds until the first poll, or
    None when the upstream calls back and the driver must not poll.
    """

    session: dict[str, Any]
    poll_after: float | None = 2.0


class Pending(msgspec.Struct, frozen=True, kw_only=True, tag="pending"):
    """Not decided yet; poll again after ``poll_after`` seconds."""

    hint: str | None = None
    poll_after: float = 2.0
    session: dict[str, Any] | None = None
    """Replacement session state, when the connector needs to remember progress."""


class Approved(msgspec.Struct, frozen=True, kw_only=True, tag="approved"):
    """The person authenticated."""

    identity: Identity


class Denied(msgspec.Struct, frozen=True, kw_only=True, tag="denied"):
    """The person refused (maps to access_denied)."""

    reason: str = "the user declined"


class Expired(msgspec.Struct, frozen=True, kw_only=True, tag="expired"):
    """The upstream order expired before a decision (maps to expired_token)."""

    reason: str = "the authentication request expired"


class Failed(msgspec.Struct, frozen=True, kw_only=True, tag="failed"):
    """The upstream authentication failed (maps to transaction_failed)."""

    reason: str = "the authentication failed"


Outcome = Approved | Denied | Expired | Failed
"""A terminal result."""

PollResult = Pending | Approved | Denied | Expired | Failed
"""What ``poll`` returns."""

IDENTITY_MISMATCH = "identity_mismatch"
"""Log event of an approval by someone other than the person the request named."""


def identity_mismatch(log: Any, **fields: Any) -> Failed:
    """Log the security event of a mismatched identity; return the outcome to report.

    Every connector compares the identity its upstream returns with the login hint
    it started with, and on a mismatch returns this ``Failed`` (the client gets
    ``transaction_failed``), never an ``Approved``. ``fields`` must not hold PII:
    name what was compared (``check="personal_number"``), not the values.
    """
    log.warning(IDENTITY_MISMATCH, security_event=True, **fields)
    return Failed(reason="the person who authenticated is not the person the request named")


# --- callbacks (pages and webhooks a connector serves) ----------------------


class CallbackRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A framework-neutral HTTP request for a connector callback."""

    method: str
    path_params: dict[str, str]
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    """Lower-case header names."""
    body: bytes = b""
    client_ip: str = ""


class CallbackResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A framework-neutral HTTP response from a connector callback."""

    status: int = 200
    body: bytes | str = b""
    media_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class CallbackRoute(msgspec.Struct, frozen=True, kw_only=True):
    """A route the gateway mounts under ``{issuer}/{connector name}/``.

    ``path`` uses ``{name}`` placeholders (``/link/{token}``); ``handler`` is awaited
    with a ``CallbackRequest``.
    """

    path: str
    methods: tuple[str, ...]
    handler: Callable[[CallbackRequest], Awaitable[CallbackResponse]]


# --- services the gateway gives a connector ---------------------------------


@runtime_checkable
class ConnectorState(Protocol):
    """A small key-value store, scoped to one connector instance of one tenant."""

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent or expired."""

    async def take(self, key: str) -> bytes | None:
        """Atomically read and delete ``key`` (single use)."""

    async def incr(self, key: str, ttl: float) -> int:
        """Atomically add one to a counter that expires ``ttl`` seconds after creation."""


class ConnectorDeps(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway hands to a connector when it constructs it."""

    tenant_id: str
    instance_name: str
    """The connector's name in the tenant config (``connectors: {bankid: ...}``)."""
    base_url: str
    """Public URL under which this connector's callback routes are mounted."""
    state: ConnectorState
    resolve: Callable[[str, Outcome], Awaitable[bool]]
    """Settle a request by its ``StartRequest.ref``; False when it was no longer pending."""
    lookup: Callable[[str], Awaitable[StartRequest | None]]
    """The StartRequest of a still-pending request by ``ref``, or None."""
    clock: Callable[[], float] = time.time


# --- the connector itself ---------------------------------------------------


@runtime_checkable
class Connector(Protocol):
    """What a connector class must provide.

    Class attributes: ``Config`` (a msgspec Struct decoded from the tenant's YAML),
    ``login_hint_kinds`` (the hint kinds it serves) and
    ``authorization_details_types`` (RFC 9396 types it accepts). The gateway
    constructs it as ``cls(config, deps)`` once per tenant and closes it with
    ``aclose``.
    """

    Config: ClassVar[type[msgspec.Struct]]
    login_hint_kinds: ClassVar[frozenset[str]]
    authorization_details_types: ClassVar[frozenset[str]]

    async def start(self, request: StartRequest) -> Started:
        """Start the upstream authentication; raise a ConnectorError to refuse."""

    async def poll(self, session: dict[str, Any]) -> PollResult:
        """Ask the upstream for progress; raise UpstreamUnavailable to be retried later."""

    async def cancel(self, session: dict[str, Any]) -> None:
        """Cancel the upstream order (best effort; errors are logged, not raised)."""

    def routes(self) -> Sequence[CallbackRoute]:
        """Callback routes to mount for this instance (often none)."""

    async def aclose(self) -> None:
        """Release resources (HTTP clients)."""


class BaseConnector:
    """Convenience base: no routes, no user codes, nothing to close."""

    login_hint_kinds: ClassVar[frozenset[str]] = frozenset()
    authorization_details_types: ClassVar[frozenset[str]] = frozenset()

    def routes(self) -> Sequence[CallbackRoute]:
        return ()

    async def cancel(self, session: dict[str, Any]) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def verify_user_code(self, hint: LoginHint, user_code: str) -> bool | None:
        """Check a CIBA user_code for this user; None means the connector cannot."""
        return None


def config_summary(config: msgspec.Struct) -> Mapping[str, Any]:
    """A connector config as builtins, for logs and reports (secrets are the caller's job)."""
    return msgspec.to_builtins(config)
