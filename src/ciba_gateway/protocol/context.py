"""Per-tenant and per-gateway runtime state handed to the protocol handlers.

Built once by ``app.create_app`` (the composition root) and never mutated: a
config reload builds a new ``Gateway``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ciba_gateway.config.model import ClientConfig, GatewayConfig, TenantConfig
from ciba_gateway.connector import Connector
from ciba_gateway.flow.engine import FlowEngine
from ciba_gateway.protocol.certificates import TrustedProxies, load_trust_anchors
from ciba_gateway.protocol.jose import JwksCache
from ciba_gateway.protocol.quota import StartLimiter
from ciba_gateway.store.values import Values
from ciba_gateway.tokens.keys import TenantKeys

if TYPE_CHECKING:
    from cryptography.x509.verification import Store as TrustStore

__all__ = ["Gateway", "TenantContext"]


@dataclass(frozen=True, slots=True)
class TenantContext:
    """One tenant's config, keys and connector instances, plus its endpoint URLs."""

    config: TenantConfig
    keys: TenantKeys
    connectors: Mapping[str, Connector]
    issuer: str = field(init=False)
    token_endpoint: str = field(init=False)
    backchannel_endpoint: str = field(init=False)
    userinfo_endpoint: str = field(init=False)
    jwks_uri: str = field(init=False)
    introspection_endpoint: str = field(init=False)
    revocation_endpoint: str = field(init=False)
    client_ca: TrustStore | None = field(init=False)
    """Trust anchors for ``tls_client_auth`` (``mtls.ca_file``), loaded once."""
    verified_basic: dict[str, ClientConfig] = field(init=False, default_factory=dict)
    """``client_secret_basic`` credentials that verified -> their client (``client_auth``).

    Per context, so it never outlives the config that registered the secret."""

    def __post_init__(self) -> None:
        mtls = self.config.mtls
        ca_file = mtls.ca_file if mtls is not None else None
        object.__setattr__(
            self, "client_ca", load_trust_anchors(ca_file) if ca_file is not None else None
        )
        issuer = self.config.issuer.rstrip("/")
        object.__setattr__(self, "issuer", issuer)
        object.__setattr__(self, "token_endpoint", f"{issuer}/token")
        object.__setattr__(self, "backchannel_endpoint", f"{issuer}/bc-authorize")
        object.__setattr__(self, "userinfo_endpoint", f"{issuer}/userinfo")
        object.__setattr__(self, "jwks_uri", f"{issuer}/jwks")
        object.__setattr__(self, "introspection_endpoint", f"{issuer}/introspect")
        object.__setattr__(self, "revocation_endpoint", f"{issuer}/revoke")

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def client_auth_audiences(self) -> frozenset[str]:
        """Accepted ``aud`` of client assertions: issuer, token and backchannel endpoints."""
        return frozenset({self.issuer, self.token_endpoint, self.backchannel_endpoint})


@dataclass(frozen=True, slots=True)
class Gateway:
    """Everything a protocol handler needs, for every tenant."""

    config: GatewayConfig
    tenants: Mapping[str, TenantContext]
    """By mount segment (the issuer's path without the slash)."""
    engine: FlowEngine
    jwks_cache: JwksCache
    clock: Callable[[], float]
    start_limiter: StartLimiter | None = None
    """Abuse limits on bc-authorize starts (None: no limits, for embedded tests)."""
    trusted_proxies: TrustedProxies = field(init=False)

    def __post_init__(self) -> None:
        proxies = TrustedProxies(self.config.server.trusted_proxies)
        object.__setattr__(self, "trusted_proxies", proxies)

    @property
    def store(self) -> Values:
        """The store's value space; requests change only through ``engine``."""
        return self.engine.values

    def tenant(self, mount: str) -> TenantContext | None:
        return self.tenants.get(mount)

    def connector(self, tenant_id: str, name: str) -> Connector | None:
        for tenant in self.tenants.values():
            if tenant.id == tenant_id:
                return tenant.connectors.get(name)
        return None
