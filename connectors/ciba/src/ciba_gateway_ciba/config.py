"""The ``ciba`` connector's settings in a tenant's YAML (every field is documented in README.md)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from ciba_gateway.connector import HttpSettings

__all__ = ["ClaimMapping", "ClientAuth", "Config"]

_STANDARD_CLAIMS = (
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "birthdate",
    "gender",
    "locale",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
)

_Url = Annotated[str, Meta(pattern=r"^https?://[^\s]+$")]
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ClientAuth(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the gateway authenticates as a client of the upstream (``auth:`` in YAML)."""

    method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
    secret: str | None = None
    """The client secret (``client_secret_basic``/``_post``); write ``${ENV}`` in YAML."""
    key_file: str | None = None
    """A private JWK (JSON) file for ``private_key_jwt`` (``ciba-gateway keys generate``)."""
    alg: Literal["ES256", "ES384", "RS256", "PS256", "EdDSA"] | None = None
    """The assertion's ``alg``; None takes the key's ``alg`` member (ES256 when it has none)."""
    assertion_lifetime: Annotated[int, Meta(ge=10, le=600)] = 60
    """Seconds a client assertion is valid."""

    def __post_init__(self) -> None:
        if self.method == "private_key_jwt":
            if not self.key_file:
                raise ValueError("private_key_jwt needs key_file")
        elif not self.secret:
            raise ValueError(f"{self.method} needs secret")


class ClaimMapping(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which upstream ID-token claims make the normalized ``Identity`` (``identity:`` in YAML)."""

    scheme: Annotated[str, Meta(min_length=1, max_length=64)] = "ciba"
    """``Identity.scheme``: the subject namespace the gateway hashes into ``sub``."""
    subject: str = "sub"
    """The upstream claim whose value is the stable subject input."""
    national_id: str | None = None
    """The upstream claim holding the person's national id (fills the ``ssn`` scope)."""
    country: str | None = None
    """The upstream claim holding the national id's ISO 3166 alpha-2 country."""
    default_country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] | None = None
    """Country of the national id when the upstream does not send one."""
    acr: str | None = "acr"
    """The upstream claim copied to ``Identity.acr`` (None: always ``acr_default``)."""
    acr_default: str | None = None
    """``Identity.acr`` when the upstream sends none."""
    amr: str | None = "amr"
    """The upstream claim (a list of strings) copied to ``Identity.amr``."""
    claims: dict[str, str] = msgspec.field(
        default_factory=lambda: {name: name for name in _STANDARD_CLAIMS}
    )
    """Gateway claim name -> upstream claim name, for the standard claims passed on."""


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``ciba`` connector: one upstream CIBA provider, seen as a client of it."""

    issuer: _Url
    """The upstream's issuer; discovery is ``{issuer}/.well-known/openid-configuration``."""
    client_id: Annotated[str, Meta(min_length=1)]
    auth: ClientAuth
    delivery_mode: Literal["poll", "ping"] = "poll"
    """How the upstream delivers: the driver polls its token endpoint, or it pings us."""
    scope: tuple[str, ...] = ("openid",)
    """Scopes sent upstream; must contain ``openid``."""
    acr_values: tuple[str, ...] = ()
    """``acr_values`` sent upstream (empty: none)."""
    login_hint: dict[str, str] = msgspec.field(default_factory=lambda: {"ssn": "{value}"})
    """Hint kind -> upstream ``login_hint`` template (``{kind}``, ``{value}``, ``{country}``)."""
    binding_message: bool = True
    """Pass the request's binding_message upstream."""
    requested_expiry: bool = True
    """Send the request's remaining lifetime as ``requested_expiry``."""
    interval: Annotated[float, Meta(ge=0.5, le=60)] = 5.0
    """Seconds between polls when the upstream's answer has no ``interval`` (CIBA's default: 5)."""
    clock_skew: Annotated[int, Meta(ge=0, le=600)] = 60
    """Seconds of clock difference tolerated on the ID token's ``exp`` and ``iat``."""
    userinfo: bool = False
    """Also read the userinfo endpoint with the access token; its claims fill those the
    ID token lacks (its ``sub`` must be the ID token's)."""
    require_at_hash: bool = False
    """Refuse an ID token without ``at_hash`` (it is always checked when present)."""
    discovery_ttl: Annotated[float, Meta(ge=10)] = 3600.0
    """Seconds discovery metadata is cached (refreshed sooner when a call fails)."""
    jwks_ttl: Annotated[float, Meta(ge=10)] = 3600.0
    """Seconds the upstream JWKS is cached (re-fetched once at once on an unknown ``kid``)."""
    identity: ClaimMapping = msgspec.field(default_factory=ClaimMapping)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
            raise ValueError("issuer must be an https URL (http only for a loopback address)")
        if "openid" not in self.scope:
            raise ValueError("scope must contain openid")
        unknown = set(self.login_hint) - {"ssn", "tel", "email"}
        if unknown:
            raise ValueError(f"login_hint kinds must be ssn, tel or email, not {sorted(unknown)}")
        for kind, template in self.login_hint.items():
            try:
                template.format(kind=kind, value="x", country="SE")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"login_hint.{kind}: bad template ({exc})") from None
