"""ID tokens (OIDC Core 2) and the hash rule of ``at_hash``/``rt_hash``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ciba_gateway.tokens.claims import claims_for_scopes

if TYPE_CHECKING:
    from ciba_gateway.connector.api import Identity
    from ciba_gateway.tokens.keys import TenantKeys

__all__ = ["mint_id_token", "token_hash"]

_RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr"})

# OIDC Core 3.1.3.6 / 3.3.2.11: the hash of the ID token's alg. EdDSA over Ed25519
# uses SHA-512, as OpenID's errata note for EdDSA says.
_TOKEN_HASHES: Mapping[str, str] = MappingProxyType(
    {
        "HS256": "sha256",
        "RS256": "sha256",
        "PS256": "sha256",
        "ES256": "sha256",
        "HS384": "sha384",
        "RS384": "sha384",
        "PS384": "sha384",
        "ES384": "sha384",
        "HS512": "sha512",
        "RS512": "sha512",
        "PS512": "sha512",
        "ES512": "sha512",
        "EdDSA": "sha512",
    }
)


def mint_id_token(
    keys: TenantKeys,
    *,
    issuer: str,
    audience: str,
    sub: str,
    identity: Identity,
    scopes: Iterable[str],
    lifetime: int,
    now: float,
    acr_fallback: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A signed ID token (OIDC Core 2) with the claims ``scopes`` release.

    ``extra`` adds claims such as ``at_hash`` or CIBA's
    ``urn:openid:params:jwt:claim:auth_req_id``; it may not replace the core claims.
    """
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "exp": iat + int(lifetime),
        "iat": iat,
        "auth_time": int(identity.auth_time),
    }
    acr = identity.acr or acr_fallback
    if acr:
        claims["acr"] = acr
    if identity.amr:
        claims["amr"] = list(identity.amr)
    claims.update(claims_for_scopes(identity, scopes))
    if extra:
        clash = _RESERVED_CLAIMS.intersection(extra)
        if clash:
            raise ValueError(f"extra claims may not replace {', '.join(sorted(clash))}")
        claims.update(extra)
    return keys.sign(claims)


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``rt_hash`` of ``value`` for an ID token signed with ``alg``.

    base64url of the left half of the hash that matches ``alg`` (OIDC Core 3.1.3.6).
    """
    name = _TOKEN_HASHES.get(alg)
    if name is None:
        raise ValueError(f"no token hash defined for alg {alg!r}")
    digest = hashlib.new(name, value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
