"""Verification of the upstream's ID token before anything is issued.

Checks, in order (OIDC Core 3.1.3.7, CIBA Core 10.1.1): a compact JWS with an
allowed asymmetric ``alg``; the signature against the upstream JWKS (one
re-fetch on an unknown ``kid``); ``iss`` equal to the upstream's issuer; ``aud``
containing our client_id, with ``azp`` required when there are several
audiences and equal to our client_id whenever present; ``exp`` in the future and
``iat`` not in the future, both with ``clock_skew``; the CIBA
``urn:openid:params:jwt:claim:auth_req_id`` claim, when present, equal to the
upstream auth_req_id; ``at_hash``, when present (or required), matching the
access token.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from ciba_gateway.connector import check_json

__all__ = ["ALLOWED_ALGS", "InvalidIdToken", "at_hash", "verify_id_token"]

ALLOWED_ALGS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)
"""Asymmetric algorithms only: never ``none``, never an HMAC over a shared secret."""

AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id"

_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


class InvalidIdToken(Exception):
    """The upstream's ID token failed a check; the message names which."""


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core 3.1.3.6: base64url of the left half of the ``alg``'s hash (EdDSA: SHA-512)."""
    hasher = hashlib.sha512 if alg == "EdDSA" else _HASHES[alg[-3:]]
    digest = hasher(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


async def verify_id_token(
    token: str,
    *,
    keys: Callable[[str | None], Awaitable[KeySet]],
    issuer: str,
    client_id: str,
    algorithms: tuple[str, ...],
    now: float,
    skew: int,
    auth_req_id: str,
    access_token: str,
    require_at_hash: bool = False,
) -> dict[str, Any]:
    """The verified claims of ``token``; raise ``InvalidIdToken`` naming the failed check."""
    allowed = [alg for alg in algorithms if alg in ALLOWED_ALGS] or ["RS256"]
    try:
        # joserfc's json.loads recurses: cap the segments' size and depth first.
        head, _, rest = token.partition(".")
        for segment in (head, rest.partition(".")[0]):
            check_json(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        header = extract_compact(token.encode()).protected
    except (JoseError, ValueError, TypeError):
        raise InvalidIdToken("the ID token is not a compact JWS") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in allowed:
        raise InvalidIdToken(f"the ID token's alg {alg!r} is not allowed")
    keyset = await keys(kid if isinstance(kid, str) else None)
    try:
        claims = dict(jwt.decode(token, keyset, algorithms=allowed).claims)
    except (JoseError, ValueError, TypeError):
        raise InvalidIdToken("the ID token's signature does not verify") from None
    _check_claims(claims, issuer=issuer, client_id=client_id, now=now, skew=skew)
    bound = claims.get(AUTH_REQ_ID_CLAIM)
    if bound is not None and bound != auth_req_id:
        raise InvalidIdToken("the ID token is bound to another auth_req_id")
    expected_hash = claims.get("at_hash")
    if expected_hash is None and require_at_hash:
        raise InvalidIdToken("the ID token has no at_hash")
    if expected_hash is not None and expected_hash != at_hash(access_token, str(alg)):
        raise InvalidIdToken("the ID token's at_hash does not match the access token")
    return claims


def _check_claims(
    claims: dict[str, Any], *, issuer: str, client_id: str, now: float, skew: int
) -> None:
    if claims.get("iss") != issuer:
        raise InvalidIdToken("the ID token's iss is not the upstream's issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise InvalidIdToken("the ID token is not meant for this client (aud)")
    azp = claims.get("azp")
    if (len(audiences) > 1 and azp is None) or (azp is not None and azp != client_id):
        raise InvalidIdToken("the ID token's azp is not this client")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + skew <= now:
        raise InvalidIdToken("the ID token has expired (exp)")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat - skew > now:
        raise InvalidIdToken("the ID token was issued in the future (iat)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidIdToken("the ID token has no sub")
