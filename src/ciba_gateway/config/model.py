"""The configuration model: frozen msgspec Structs decoded from YAML (DESIGN.md section 6).

Every Struct forbids unknown keys. Cross-field rules live in ``__post_init__``
and are reported with their path by the loader. Connector settings are kept
raw here (``ConnectorInstance.settings``) and decoded into the connector's own
``Config`` Struct by the loader, which knows the installed plugins.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import limits
import msgspec
from msgspec import Meta

from ciba_gateway.config import fapi

__all__ = [
    "CIBA_GRANT",
    "REFRESH_GRANT",
    "SIGNING_ALGS",
    "TLS_AUTH_METHODS",
    "AuditConfig",
    "ClientAuth",
    "ClientConfig",
    "ConnectorInstance",
    "DriverConfig",
    "GatewayConfig",
    "KeyConfig",
    "Lifetimes",
    "LoggingConfig",
    "MtlsConfig",
    "NotificationsConfig",
    "RouteConfig",
    "ServerConfig",
    "SimulatorConfig",
    "StoreConfig",
    "StoreTLSConfig",
    "SubjectConfig",
    "TenantConfig",
    "TracingConfig",
]

SIGNING_ALGS = ("ES256", "RS256", "PS256", "EdDSA")
"""Asymmetric algorithms for ID tokens, request objects and private_key_jwt."""

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
REFRESH_GRANT = "refresh_token"
GrantType = Literal["urn:openid:params:grant-type:ciba", "refresh_token"]

SigningAlg = Literal["ES256", "RS256", "PS256", "EdDSA"]
HmacAlg = Literal["HS256", "HS384", "HS512"]
Identifier = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PositiveSeconds = Annotated[int, Meta(gt=0, le=86400 * 30)]


class Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Policy shared by every config Struct: frozen, keyword-only, strict keys."""


class ServerConfig(Base, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (``10.0.0.0/8``) of TLS-terminating proxies whose RFC 9440
    ``Client-Cert`` header is believed; the header from any other peer is refused."""
    metrics_token: str | None = None
    """When set, ``/metrics`` needs ``Authorization: Bearer <token>`` (it names tenants,
    connectors and traffic); unset (the demo's default) serves it to anyone."""

    def __post_init__(self) -> None:
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise ValueError("metrics_token must be at least 16 characters")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network"
                ) from None


class StoreTLSConfig(Base, kw_only=True):
    """TLS to Redis (``rediss://`` urls): trust anchors and an optional client certificate."""

    ca_file: str | None = None
    """PEM bundle to verify the server with (default: the system trust store)."""
    cert_file: str | None = None
    """Client certificate (PEM) when Redis requires mutual TLS."""
    key_file: str | None = None
    """The client certificate's private key (PEM)."""
    verify: bool = True
    """Verify the server's certificate and host name; false only for throwaway test setups."""

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")


class StoreConfig(Base, kw_only=True):
    """``memory://``, ``sqlite:///relative/path.db`` / ``sqlite:////abs/path.db`` or ``redis://``.

    Redis: ``redis://[user:password@]host:6379/0`` or ``rediss://...`` with ``tls``;
    see docs/deployment.md.
    """

    url: str = "sqlite:///var/ciba-gateway.db"
    retention: PositiveSeconds = 3600
    """Seconds a request is kept after it expires (answers invalid_grant / expired_token)."""
    prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")] = "ciba:"
    """Redis: prepended to every key, one per deployment sharing a server."""
    tls: StoreTLSConfig | None = None
    """Redis: TLS options for a ``rediss://`` url."""
    pool_size: Annotated[int, Meta(ge=1, le=10000)] = 64
    """Redis: most connections per process; callers beyond it wait up to ``timeout``."""
    timeout: Annotated[float, Meta(gt=0, le=60)] = 2.0
    """Redis: seconds to connect, to run one command, and to wait for a free connection."""
    retries: Annotated[int, Meta(ge=0, le=10)] = 2
    """Redis: extra attempts after a connection error (never after a timeout)."""

    def __post_init__(self) -> None:
        scheme = self.url.split(":", 1)[0]
        if scheme not in {"memory", "sqlite", "redis", "rediss"}:
            raise ValueError(
                f"store url scheme must be memory, sqlite, redis or rediss, got {scheme!r}"
            )
        if self.tls is not None and scheme != "rediss":
            raise ValueError("store.tls needs a rediss:// url")


class LoggingConfig(Base, kw_only=True):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"
    simulator_requests: bool = False
    """Log each request to the in-process simulators too (off: one line per upstream poll)."""


class TracingConfig(Base, kw_only=True):
    """OpenTelemetry traces (needs the ``otel`` extra); docs/operations.md, "Tracing"."""

    enabled: bool = False
    exporter: Literal["otlp", "console", "none"] = "otlp"
    """``otlp``: OTLP over HTTP to ``endpoint``; ``console``: spans on stdout (development);
    ``none``: no export, trace ids in the log lines only."""
    endpoint: str | None = None
    """OTLP traces URL; unset: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or localhost:4318."""
    service_name: Annotated[str, Meta(min_length=1, max_length=100)] = "ciba-gateway"
    sample_ratio: Annotated[float, Meta(ge=0, le=1)] = 1.0
    """Share of the traces the gateway starts that are kept (their spans follow)."""
    accept_traceparent: bool = False
    """Continue a caller's trace from its W3C ``traceparent`` header (and its sampling)."""
    propagate: bool = False
    """Send ``traceparent`` to upstreams and notification endpoints (third parties)."""

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            if self.exporter != "otlp":
                raise ValueError("tracing.endpoint is only used with exporter: otlp")
            if urlsplit(self.endpoint).scheme not in {"http", "https"}:
                raise ValueError("tracing.endpoint must be an http or https URL")


class KeyConfig(Base, kw_only=True):
    """A signing key of a tenant, stored as a private JWK in ``file``."""

    kid: Identifier
    alg: SigningAlg = "ES256"
    file: str
    generate: bool = False
    """Create the key file on first start when it is missing (development)."""
    state: Literal["current", "next", "retired"] = "current"


class SubjectConfig(Base, kw_only=True):
    """How ``sub`` is made from an Identity.

    ``hashed`` (default): base64url(HMAC-SHA256(salt, scheme ":" subject)), so a
    national id never becomes ``sub``. ``national_id``: ``scheme:subject`` as is.
    """

    mode: Literal["hashed", "national_id"] = "hashed"
    salt: str = ""

    def __post_init__(self) -> None:
        if self.mode == "hashed" and len(self.salt) < 16:
            raise ValueError("subject.salt must be at least 16 characters when mode is hashed")


class Lifetimes(Base, kw_only=True):
    """Seconds."""

    auth_request: PositiveSeconds = 120
    auth_request_max: PositiveSeconds = 600
    id_token: PositiveSeconds = 300
    access_token: PositiveSeconds = 600
    poll_interval: Annotated[int, Meta(ge=1, le=60)] = 5
    id_token_hint: PositiveSeconds = 86400
    """How long an issued ID token is accepted back as ``id_token_hint``."""
    refresh_token: PositiveSeconds = 86400
    """Idle limit: a refresh token unused this long expires (each use rotates it)."""
    refresh_token_max: PositiveSeconds = 86400 * 30
    """Absolute limit: no refresh token of a grant outlives this, counted from the grant."""

    def __post_init__(self) -> None:
        if self.auth_request > self.auth_request_max:
            raise ValueError("auth_request must not exceed auth_request_max")
        if self.refresh_token > self.refresh_token_max:
            raise ValueError("refresh_token must not exceed refresh_token_max")


TLS_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
"""RFC 8705 section 2: mutual-TLS client authentication."""

_TLS_SUBJECT_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)


class ClientAuth(Base, kw_only=True):
    """How a client authenticates at bc-authorize and the token endpoint.

    ``tls_client_auth`` (RFC 8705 2.1): a certificate chaining to the tenant's
    ``mtls.ca_file`` whose subject matches exactly one of the ``tls_client_auth_*``
    fields (names of RFC 8705 2.1.2). ``self_signed_tls_client_auth`` (2.2): a
    certificate whose public key is in the client's ``jwks`` / ``jwks_uri``.
    """

    method: Literal[
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ]
    secret: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    signing_alg: str | None = None
    """For the *_jwt methods: the one alg the client must use (default: any allowed)."""
    tls_client_auth_subject_dn: str | None = None
    """RFC 4514 string, e.g. ``CN=Acme RP,O=Acme``; compared as a distinguished name."""
    tls_client_auth_san_dns: str | None = None
    tls_client_auth_san_uri: str | None = None
    tls_client_auth_san_ip: str | None = None
    tls_client_auth_san_email: str | None = None

    def __post_init__(self) -> None:
        subjects = [f for f in _TLS_SUBJECT_FIELDS if getattr(self, f) is not None]
        if self.method == "tls_client_auth" and len(subjects) != 1:
            raise ValueError(
                "tls_client_auth needs exactly one of " + ", ".join(_TLS_SUBJECT_FIELDS)
            )
        if self.method != "tls_client_auth" and subjects:
            raise ValueError(f"{subjects[0]} is only for tls_client_auth")
        if self.method == "self_signed_tls_client_auth" and (self.jwks is None) == (
            self.jwks_uri is None
        ):
            raise ValueError("self_signed_tls_client_auth needs exactly one of jwks or jwks_uri")
        if self.method.startswith("client_secret"):
            if not self.secret:
                raise ValueError(f"{self.method} needs a secret")
            if len(self.secret) < 16:
                raise ValueError("client secrets must be at least 16 characters")
        if self.method == "private_key_jwt" and (self.jwks is None) == (self.jwks_uri is None):
            raise ValueError("private_key_jwt needs exactly one of jwks or jwks_uri")
        if self.signing_alg is not None:
            allowed = (
                ("HS256", "HS384", "HS512") if self.method == "client_secret_jwt" else SIGNING_ALGS
            )
            if self.signing_alg not in allowed:
                raise ValueError(f"signing_alg must be one of {', '.join(allowed)}")


def _check_rate(value: str | None, name: str) -> None:
    if value is None:
        return
    try:
        limits.parse(value)
    except ValueError:
        raise ValueError(
            f"{name} must be a rate like 60/minute or 5 per 10 minutes, got {value!r}"
        ) from None


class StartLimits(Base, kw_only=True):
    """Abuse limits on starting flows at bc-authorize (docs/security.md).

    Rates in ``limits`` notation (``60/minute``, ``5 per 10 minutes``); ``null``
    means no limit. Over a limit bc-authorize answers 429 ``slow_down`` with
    ``Retry-After``.
    """

    per_client: str | None = "120/minute"
    """Starts one client may make (one upstream order each)."""
    per_login_hint: str | None = "5 per 5 minutes"
    """Starts for one person (one login hint), whichever client asks."""

    def __post_init__(self) -> None:
        _check_rate(self.per_client, "per_client")
        _check_rate(self.per_login_hint, "per_login_hint")


class ClientConfig(Base, kw_only=True):
    """A relying party of a tenant."""

    client_id: Identifier
    name: str = ""
    """Display name shown to the user (binding pages, BankID text)."""
    auth: ClientAuth
    delivery_mode: Literal["poll", "ping", "push"] = "poll"
    notification_endpoint: str | None = None
    """CIBA's backchannel_client_notification_endpoint (ping and push)."""
    scopes: tuple[str, ...] = ("openid",)
    user_code_required: bool = False
    request_signing_alg: SigningAlg | None = None
    """When set, bc-authorize must come as a signed request object with this alg."""
    default_acr_values: tuple[str, ...] = ()
    tls_client_certificate_bound_access_tokens: bool = False
    """RFC 8705 section 3: bind access tokens to the client's TLS certificate."""
    authorization_details_types: tuple[Identifier, ...] = ()
    """RFC 9396 types this client may send; any other type is invalid_authorization_details."""
    start_limits: StartLimits | None = None
    """Replaces the tenant's ``start_limits`` for this client (both rates)."""
    notification_ca_file: str | None = None
    """PEM trust anchors for this client's https notification endpoint (replaces the
    tenant's ``notification_ca_file``); unset: the tenant's, else the system store."""
    profile: Literal["default", "fapi-ciba"] | None = None
    """``fapi-ciba``: this client follows FAPI-CIBA (default: the tenant's profile)."""
    grant_types: tuple[GrantType, ...] = (CIBA_GRANT,)
    """RFC 7591 ``grant_types``. ``[]`` registers a resource server that only
    introspects and revokes tokens (``unauthorized_client`` at bc-authorize and the
    CIBA grant)."""
    access_token_format: Literal["opaque", "jwt"] = "opaque"  # noqa: S105 (a format, not a secret)
    """``jwt``: access tokens are RFC 9068 JWTs (``typ: at+jwt``, signed with the tenant's
    current key) that resource servers validate against the tenant's JWKS; ``opaque``:
    random strings only introspection and userinfo can read."""
    access_token_audience: tuple[str, ...] = ()
    """``aud`` of this client's JWT access tokens (the resource servers); unset: the
    tenant's userinfo endpoint."""

    def __post_init__(self) -> None:
        if len(set(self.grant_types)) != len(self.grant_types):
            raise ValueError("grant_types must not repeat")
        if REFRESH_GRANT in self.grant_types and CIBA_GRANT not in self.grant_types:
            raise ValueError("the refresh_token grant needs the CIBA grant")
        if self.tls_client_certificate_bound_access_tokens and self.delivery_mode == "push":
            # Pushed tokens are minted by the driver, with no TLS connection to bind to.
            raise ValueError("push mode cannot deliver certificate-bound access tokens")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        if self.delivery_mode != "poll" and not self.notification_endpoint:
            raise ValueError(f"delivery_mode {self.delivery_mode} needs notification_endpoint")
        if self.request_signing_alg and self.auth.jwks is None and self.auth.jwks_uri is None:
            raise ValueError("request_signing_alg needs client keys (auth.jwks or auth.jwks_uri)")
        if self.access_token_audience and self.access_token_format != "jwt":  # noqa: S105
            raise ValueError("access_token_audience needs access_token_format: jwt")

    @property
    def display_name(self) -> str:
        return self.name or self.client_id

    @property
    def uses_ciba(self) -> bool:
        """False for a resource-server client (no CIBA grant)."""
        return CIBA_GRANT in self.grant_types


class RouteConfig(Base, kw_only=True):
    """One routing rule; the first rule that matches a request wins.

    ``acr``: matches when the request's acr_values name it. ``login_hint``: a
    hint kind (``ssn``) or a glob on the hint (``tel:+46*``). A rule without
    ``acr`` serves requests whatever their acr_values.
    """

    connector: Identifier
    acr: str | None = None
    login_hint: str | None = None

    def __post_init__(self) -> None:
        if self.acr is None and self.login_hint is None:
            raise ValueError("a route needs acr, login_hint or both")


class ConnectorInstance(Base, kw_only=True):
    """A connector instance of a tenant: its plugin ``type`` and its own settings."""

    type: Identifier
    settings: Any = None
    """The plugin's ``Config`` Struct, decoded by the loader."""


class SimulatorConfig(Base, kw_only=True):
    """An upstream simulator to mount in-process at ``mount`` (demo, tests).

    Each is its own distribution (``ciba-gateway-freja-sim``...), never part of a
    production install; a ``type`` that is not installed is a configuration error."""

    type: Identifier
    mount: Annotated[str, Meta(pattern=r"^/[A-Za-z0-9_/.-]+$")]
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class DriverConfig(Base, kw_only=True):
    """The background driver that polls upstreams and delivers notifications."""

    lease_seconds: Annotated[float, Meta(ge=1, le=600)] = 15.0
    """How long a driver owns a leased request; a dead replica's work is taken over after it."""
    tick: Annotated[float, Meta(gt=0, le=10)] = 0.05
    """Seconds between looks for due work when there is none.

    Short, so each poll starts close to its due time and leases come in small
    batches (10k BankID orders collected every 2 s: p99 interval 2.44 s with
    0.2, 2.10 s with 0.05); an idle worker then asks the store 20 times a second."""


class NotificationsConfig(Base, kw_only=True):
    """Ping/push delivery (CIBA Core 10.2, 10.3): timeouts and retry bounds."""

    timeout: Annotated[float, Meta(gt=0, le=60)] = 5.0
    max_attempts: Annotated[int, Meta(ge=1, le=50)] = 6
    initial_wait: Annotated[float, Meta(gt=0, le=600)] = 1.0
    max_wait: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    on_expiry: bool = True
    """Notify ping/push clients when a request's lifetime runs out with no outcome (a ping,
    or a push of ``expired_token``); CIBA Core allows it without requiring it."""


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _check_notification_endpoint(client: ClientConfig, allow_http_loopback: bool) -> None:
    if client.notification_endpoint is None:
        return
    parts = urlsplit(client.notification_endpoint)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS and allow_http_loopback:
        return
    raise ValueError(
        f"client {client.client_id}: notification_endpoint must be an https URL "
        "(http only for loopback when allow_http_loopback_notifications is true)"
    )


class MtlsConfig(Base, kw_only=True):
    """A tenant's mutual-TLS settings (RFC 8705); present when the tenant uses mTLS."""

    ca_file: str | None = None
    """PEM trust anchors for ``tls_client_auth`` certificates."""
    endpoint_base: str | None = None
    """The tenant's base URL on a host that asks for client certificates; advertised
    as ``mtls_endpoint_aliases`` (RFC 8705 section 5) when set."""

    def __post_init__(self) -> None:
        if self.endpoint_base is not None:
            parts = urlsplit(self.endpoint_base)
            if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
                raise ValueError("mtls.endpoint_base must be an absolute https URL")


def _check_mtls_client(client: ClientConfig, mtls: MtlsConfig | None) -> None:
    uses_tls = client.auth.method in TLS_AUTH_METHODS
    if (uses_tls or client.tls_client_certificate_bound_access_tokens) and mtls is None:
        raise ValueError(f"client {client.client_id}: mutual TLS needs the tenant's mtls settings")
    if client.auth.method == "tls_client_auth" and mtls is not None and mtls.ca_file is None:
        raise ValueError(f"client {client.client_id}: tls_client_auth needs mtls.ca_file")


class TenantConfig(Base, kw_only=True):
    """One tenant: its issuer, keys, clients, connectors and routes."""

    id: Identifier
    issuer: str
    keys: tuple[KeyConfig, ...]
    subject: SubjectConfig
    lifetimes: Lifetimes = Lifetimes()
    connectors: dict[str, ConnectorInstance] = msgspec.field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = ()
    clients: tuple[ClientConfig, ...] = ()
    binding_message_max_length: Annotated[int, Meta(ge=1, le=255)] = 64
    signing_algs: tuple[SigningAlg, ...] = SIGNING_ALGS
    """Algs accepted for request objects, private_key_jwt and login_hint_token."""
    allow_http_loopback_notifications: bool = False
    mtls: MtlsConfig | None = None
    profile: Literal["default", "fapi-ciba"] = "default"
    """``fapi-ciba``: every client of the tenant follows FAPI-CIBA unless it says otherwise
    (docs/protocol.md, "FAPI-CIBA"); check-config refuses what cannot satisfy it."""
    start_limits: StartLimits = StartLimits()
    """Abuse limits on bc-authorize starts per client and per login hint."""
    notification_ca_file: str | None = None
    """PEM trust anchors for the https notification endpoints of this tenant's clients
    (a private CA); unset: the system trust store. Read at startup."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("issuer must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("issuer must not have a query or fragment")
        if not re.fullmatch(r"/[A-Za-z0-9_.-]+", parts.path or ""):
            raise ValueError("issuer must have exactly one path segment (the tenant's mount)")
        if not any(k.state == "current" for k in self.keys):
            raise ValueError("keys need exactly one key in state current")
        if sum(k.state == "current" for k in self.keys) != 1:
            raise ValueError("keys need exactly one key in state current")
        if len({k.kid for k in self.keys}) != len(self.keys):
            raise ValueError("key kids must be unique")
        if len({c.client_id for c in self.clients}) != len(self.clients):
            raise ValueError("client_ids must be unique within a tenant")
        for client in self.clients:
            _check_notification_endpoint(client, self.allow_http_loopback_notifications)
            _check_mtls_client(client, self.mtls)
        for i, route in enumerate(self.routes):
            if route.connector not in self.connectors:
                raise ValueError(
                    f"routes[{i}].connector: {route.connector!r} is not one of this tenant's"
                    " connectors"
                )
        found = fapi.problems(self)
        if found:
            raise ValueError("profile fapi-ciba: " + "; ".join(found))

    @property
    def mount(self) -> str:
        """The issuer's path, e.g. ``/demo``."""
        return urlsplit(self.issuer).path

    def client(self, client_id: str) -> ClientConfig | None:
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None

    @property
    def current_key(self) -> KeyConfig:
        return next(k for k in self.keys if k.state == "current")


class AuditConfig(Base, kw_only=True):
    """Where the audit trail goes: one JSON event per decision (docs/audit.md).

    ``sink: file`` appends JSON lines to ``file``; ``log`` writes them to the log
    stream under the logger ``ciba_gateway.audit``; ``none`` keeps no trail.
    ``evidence_file`` (optional) receives the upstream signature evidence, which
    holds personal data and never goes to a log.
    """

    sink: Literal["none", "log", "file"] = "log"
    file: str | None = None
    evidence_file: str | None = None

    def __post_init__(self) -> None:
        if self.sink == "file" and not self.file:
            raise ValueError("audit.sink file needs audit.file")


def _check_renewal(driver: DriverConfig, store: StoreConfig) -> None:
    """The driver must be able to renew a lease before it ends (flow/driver.py).

    A lease is renewed once half of it is left, looked at every ``driver.tick``;
    the renewal is one store call (on Redis bounded by ``store.timeout``). Both
    must fit in that half, or a long poll or delivery could lose its lease to
    another replica while it runs. A poll's own worst case (``http.timeout`` x
    tries + backoff) may be longer than the lease: the renewals cover it.
    """
    half = driver.lease_seconds / 2
    store_call = store.timeout if store.url.startswith(("redis://", "rediss://")) else 0.0
    if driver.tick + store_call >= half:
        what = f"driver.tick ({driver.tick} s)"
        if store_call:
            what += f" + store.timeout ({store.timeout} s)"
        raise ValueError(
            f"{what} must be shorter than half of driver.lease_seconds "
            f"({driver.lease_seconds} s): the driver renews a lease in that half"
        )


class GatewayConfig(Base, kw_only=True):
    """The whole configuration file."""

    tenants: tuple[TenantConfig, ...]
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    logging: LoggingConfig = LoggingConfig()
    simulators: tuple[SimulatorConfig, ...] = ()
    notifications: NotificationsConfig = NotificationsConfig()
    driver: DriverConfig = DriverConfig()
    audit: AuditConfig = AuditConfig()
    tracing: TracingConfig = TracingConfig()

    def __post_init__(self) -> None:
        if not self.tenants:
            raise ValueError("at least one tenant is needed")
        ids = [t.id for t in self.tenants]
        if len(set(ids)) != len(ids):
            raise ValueError("tenant ids must be unique")
        mounts = [t.mount for t in self.tenants]
        if len(set(mounts)) != len(mounts):
            raise ValueError("tenant issuers must have distinct paths")
        if self.notifications.timeout >= self.driver.lease_seconds:
            # A delivery still waiting for its answer when the lease ends could be
            # sent again by another replica: the lease must outlast one attempt.
            raise ValueError(
                f"notifications.timeout ({self.notifications.timeout} s) must be shorter "
                f"than driver.lease_seconds ({self.driver.lease_seconds} s)"
            )
        _check_renewal(self.driver, self.store)
