"""Verification of the JWTs clients send: assertions, request objects and hints.

Each public function maps every failure, once, to the OAuth error its endpoint
answers; joserfc's messages and codes never reach a client (its
``ExpiredTokenError.error`` is ``"expired_token"``, which means something else in
OAuth). Common rules: ``alg`` must be in the caller's allow-list (``none`` never
is), ``crit`` headers are refused, and 60 s of clock skew is allowed on ``exp``,
``nbf`` and ``iat``.

Client keys come from ``auth.jwks`` or ``auth.jwks_uri`` through ``JwksCache``;
``client_secret_jwt`` uses the UTF-8 octets of the client secret (OIDC Core 9).

A ``login_hint_token`` is a JWT signed by the client (with its keys, or with
HS256/384/512 and its secret) that must carry ``exp`` and an RFC 9493 subject
identifier in ``sub_id``::

    {"format": "phone_number", "phone_number": "+46701234567"}
    {"format": "email", "email": "anna@example.se"}
    {"format": "ssn", "ssn": "199001011239", "country": "SE"}   # country optional

``ssn`` is this gateway's own format for a national id.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet, OctKey
from joserfc.jwt import JWTClaimsRegistry

from ciba_gateway.connector import decode_json
from ciba_gateway.errors import (
    ExpiredLoginHintTokenError,
    InvalidClientError,
    InvalidRequestError,
)
from ciba_gateway.store import namespaces
from ciba_gateway.tokens.keys import AllowListRegistry, TenantKeys, TokenVerificationError

if TYPE_CHECKING:
    from joserfc.jwk import Key
    from joserfc.jws import CompactSignature

    from ciba_gateway.config.model import ClientConfig
    from ciba_gateway.store.values import Namespace, Values

__all__ = [
    "CLOCK_SKEW",
    "HMAC_ALGS",
    "JwksCache",
    "JwksError",
    "peek_jwt",
    "verify_client_assertion",
    "verify_id_token_hint",
    "verify_login_hint_token",
    "verify_request_object",
]

CLOCK_SKEW = 60
"""Seconds of clock difference tolerated on exp, nbf and iat."""
HMAC_ALGS = ("HS256", "HS384", "HS512")
"""Algorithms of ``client_secret_jwt`` (the key is the client secret)."""
REQUEST_OBJECT_MAX_LIFETIME = 3600
MAX_JTI_LENGTH = 256
SUB_ID_FORMATS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"phone_number": ("phone_number",), "email": ("email",), "ssn": ("ssn",)}
)
"""Supported RFC 9493 ``sub_id`` formats and their required members."""

_ASYMMETRIC_KTY = frozenset({"EC", "RSA", "OKP"})
_ALG_KTY: Mapping[str, str] = MappingProxyType(
    {"ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP"}
)
_RSA_MIN_BITS = 2048


class JwksError(Exception):
    """A client's keys could not be obtained (unreachable, malformed or absent)."""


class _Rejected(Exception):
    """Internal: why a JWT was refused, in words safe to show the client."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


# --- client keys ------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    keys: KeySet | None
    """None after a failed first fetch."""
    fetched_at: float
    attempted_at: float
    source: object = None


class JwksCache:
    """Client key sets: inline ``auth.jwks`` (parsed once) or fetched from ``auth.jwks_uri``.

    A fetched set is reused for ``ttl`` seconds. An unknown ``kid`` triggers one
    refetch (key rotation), at most every ``min_refetch`` seconds per URI. When a
    refresh fails, the last good set is used for up to ``max_stale`` seconds. At
    most ``max_entries`` sets are kept (least recently used go first), and a
    response larger than ``max_bytes`` is refused.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        *,
        timeout: float = 5.0,
        min_refetch: float = 30.0,
        max_stale: float = 3600.0,
        max_entries: int = 256,
        max_bytes: int = 64 * 1024,
    ) -> None:
        self._http = http
        self._ttl = ttl
        self._clock = clock
        self._timeout = httpx.Timeout(timeout)
        self._min_refetch = min_refetch
        self._max_stale = max_stale
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def keys_for(self, client: ClientConfig, *, kid: str | None = None) -> KeySet:
        """The client's verification keys; with ``kid``, refetch once if it is unknown."""
        auth = client.auth
        if auth.jwks is not None:
            return self._inline(client.client_id, auth.jwks)
        if auth.jwks_uri is None:
            raise JwksError("the client has no registered keys")
        return await self._remote(auth.jwks_uri, kid)

    def _inline(self, client_id: str, jwks: dict[str, Any]) -> KeySet:
        slot = "inline:" + client_id
        entry = self._entries.get(slot)
        if entry is not None and entry.keys is not None and entry.source is jwks:
            return entry.keys
        keys = _import_jwks(jwks)
        now = self._clock()
        self._store(slot, _Entry(keys, now, now, source=jwks))
        return keys

    async def _remote(self, uri: str, kid: str | None) -> KeySet:
        entry = self._entries.get(uri)
        if entry is not None and not self._wants_refresh(entry, kid):
            return self._usable(uri, entry)
        lock = self._locks.get(uri)
        if lock is None:
            lock = self._locks[uri] = asyncio.Lock()
        async with lock:
            entry = self._entries.get(uri)  # another task may have refreshed meanwhile
            if entry is not None and not self._wants_refresh(entry, kid):
                return self._usable(uri, entry)
            now = self._clock()
            try:
                keys = await self._download(uri)
            except JwksError:
                if entry is None:
                    # Remember the failure too, so a dead jwks_uri is not hit per request.
                    self._store(uri, _Entry(None, float("-inf"), now))
                    raise
                entry.attempted_at = now
                return self._usable(uri, entry)
            self._store(uri, _Entry(keys, now, now))
            return keys

    def _usable(self, uri: str, entry: _Entry) -> KeySet:
        if entry.keys is None or self._clock() - entry.fetched_at > self._ttl + self._max_stale:
            raise JwksError("jwks_uri could not be fetched")
        self._entries.move_to_end(uri)
        return entry.keys

    def _wants_refresh(self, entry: _Entry, kid: str | None) -> bool:
        now = self._clock()
        if now - entry.attempted_at < self._min_refetch:
            return False
        if entry.keys is None or now - entry.fetched_at >= self._ttl:
            return True
        return kid is not None and not any(key.kid == kid for key in entry.keys)

    def _store(self, slot: str, entry: _Entry) -> None:
        self._entries[slot] = entry
        self._entries.move_to_end(slot)
        while len(self._entries) > self._max_entries:
            old, _ = self._entries.popitem(last=False)
            lock = self._locks.get(old)
            if lock is not None and not lock.locked():
                del self._locks[old]

    async def _download(self, uri: str) -> KeySet:
        try:
            async with self._http.stream(
                "GET",
                uri,
                headers={"Accept": "application/json, application/jwk-set+json"},
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksError(f"jwks_uri answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise JwksError("jwks_uri response is too large")
        except httpx.HTTPError as exc:
            raise JwksError(f"jwks_uri could not be fetched ({type(exc).__name__})") from exc
        try:
            data = decode_json(bytes(body), max_bytes=self._max_bytes)
        except msgspec.DecodeError:
            raise JwksError("jwks_uri did not return JSON") from None
        return _import_jwks(data)


def _import_jwks(data: Any) -> KeySet:
    """Signature keys of a JWK Set; symmetric, encryption-only and unknown keys are dropped."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError("not a JWK Set")
    usable = [
        k
        for k in data["keys"]
        if isinstance(k, dict) and k.get("kty") in _ASYMMETRIC_KTY and k.get("use", "sig") == "sig"
    ]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError, KeyError):
        raise JwksError("the JWK Set has no usable signature key") from None


def _key_fits(key: Key, alg: str) -> bool:
    if key.alg not in (None, alg):
        return False
    kty = _ALG_KTY.get(alg, "RSA" if alg[:2] in {"RS", "PS"} else None)
    if key.key_type != kty:
        return False
    return kty != "RSA" or key.raw_value.key_size >= _RSA_MIN_BITS


# --- shared verification steps ----------------------------------------------


def peek_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a JWS **without** verifying it (to find the client).

    Both are decoded with the size and depth caps of ``decode_json``, so a JWS that
    passes here is safe to hand to joserfc (whose ``json.loads`` recurses).
    """
    try:
        header_b64, payload_b64, _ = token.split(".")
        header = decode_json(_b64decode(header_b64))
        claims = decode_json(_b64decode(payload_b64))
    except (ValueError, TypeError) as exc:
        raise ValueError("not a compact JWS") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a compact JWS")
    return header, claims


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _parse(token: str, what: str) -> CompactSignature:
    try:
        peek_jwt(token)
        return jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError) as exc:
        raise _Rejected(f"{what} is not a signed JWT") from exc


async def _verify_signature(
    token: str,
    *,
    what: str,
    client: ClientConfig,
    algs: Collection[str],
    keys: JwksCache,
) -> dict[str, Any]:
    """Check form, alg and signature against the client's keys; return the claims."""
    obj = _parse(token, what)
    header = obj.headers()
    alg = header.get("alg")
    if not isinstance(alg, str) or alg == "none":
        raise _Rejected(f"{what} must be signed")
    if alg not in algs:
        raise _Rejected(f"{what} is signed with alg {alg[:16]}, which is not allowed here")
    if "crit" in header:
        raise _Rejected(f"{what} has critical header parameters, which are not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _Rejected(f"{what} has an invalid kid")
    candidates: list[Key]
    if alg in HMAC_ALGS:
        if not client.auth.secret:
            raise _Rejected(f"{what} uses a client secret, but the client has none")
        candidates = [OctKey.import_key(client.auth.secret)]
    else:
        try:
            keyset = await keys.keys_for(client, kid=kid)
        except JwksError as exc:
            raise _Rejected(f"the client's keys could not be obtained: {exc}") from None
        candidates = [k for k in keyset.keys if (kid is None or k.kid == kid) and _key_fits(k, alg)]
        if not candidates:
            raise _Rejected(f"no key of the client matches the {what}'s kid and alg")
    registry = AllowListRegistry(algorithms=[alg], strict_check_header=False)
    for key in candidates:
        try:
            if jws.validate_compact(obj, key, registry=registry):
                break
        except JoseError:
            continue
    else:
        raise _Rejected(f"{what} signature is invalid")
    try:
        claims = decode_json(obj.payload)
    except msgspec.DecodeError:
        raise _Rejected(f"{what} payload is not JSON") from None
    if not isinstance(claims, dict):
        raise _Rejected(f"{what} payload is not a JSON object")
    return claims


_CLAIM_REASONS = {
    "aud": "is not addressed to this server (aud)",
    "iss": "has the wrong issuer (iss)",
    "sub": "has the wrong subject (sub)",
    "nbf": "is not valid yet (nbf)",
    "iat": "has an invalid issue time (iat)",
}


def _check_claims(claims: dict[str, Any], what: str, now: float, **options: Any) -> None:
    """joserfc's registered-claim checks, with its errors turned into our words."""
    registry = JWTClaimsRegistry(now=int(now), leeway=CLOCK_SKEW, **options)
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _Rejected(f"{what} has expired", expired=True) from None
    except MissingClaimError as exc:
        names = ", ".join(exc.claim.split(","))
        raise _Rejected(f"{what} lacks required claims: {names}") from None
    except InvalidClaimError as exc:
        reason = _CLAIM_REASONS.get(exc.claim, f"has an invalid {exc.claim} claim")
        raise _Rejected(f"{what} {reason}") from None


async def _use_jti(claims: dict[str, Any], what: str, seen: Namespace, now: float) -> None:
    jti = claims["jti"]
    if not jti or len(jti) > MAX_JTI_LENGTH:
        raise _Rejected(f"{what} has an invalid jti")
    ttl = max(float(claims["exp"]) - now + CLOCK_SKEW, 1.0)
    if not await seen.remember(jti, ttl):
        raise _Rejected(f"{what} has been used before (jti)")


# --- public checks ----------------------------------------------------------


async def verify_client_assertion(
    assertion: str,
    *,
    client: ClientConfig,
    audiences: Collection[str],
    allowed_algs: Collection[str],
    keys: JwksCache,
    values: Values,
    now: float,
    tenant_id: str,
    max_lifetime: float = 300,
) -> None:
    """Authenticate ``client`` by a JWT assertion (RFC 7523 section 3, OIDC Core 9).

    ``client_secret_jwt`` accepts HS256/384/512; ``private_key_jwt`` accepts
    ``allowed_algs``; ``auth.signing_alg`` narrows either to one alg. ``exp`` may be
    at most ``max_lifetime`` seconds ahead, bounding how long its ``jti`` is kept.
    The ``jti`` replay cache is keyed by ``tenant_id`` and client id together.

    Raises:
        InvalidClientError: on any failure.
    """
    what = "client assertion"
    method = client.auth.method
    if method == "client_secret_jwt":
        algs: Collection[str] = HMAC_ALGS
    elif method == "private_key_jwt":
        algs = allowed_algs
    else:
        raise InvalidClientError("the client is not registered for JWT client authentication")
    if client.auth.signing_alg is not None:
        algs = (client.auth.signing_alg,) if client.auth.signing_alg in algs else ()
    try:
        claims = await _verify_signature(assertion, what=what, client=client, algs=algs, keys=keys)
        _check_claims(
            claims,
            what,
            now,
            iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "values": list(audiences)},
            exp={"essential": True},
            jti={"essential": True},
        )
        if claims["exp"] - now > max_lifetime + CLOCK_SKEW:
            raise _Rejected(f"{what} expires too far ahead (at most {int(max_lifetime)} s)")
        seen = values.namespace(namespaces.client_assertions(tenant_id, client.client_id))
        await _use_jti(claims, what, seen, now)
    except _Rejected as exc:
        raise InvalidClientError(exc.reason) from None


async def verify_request_object(
    request_jwt: str,
    *,
    client: ClientConfig,
    issuer: str,
    allowed_algs: Collection[str],
    keys: JwksCache,
    values: Values,
    now: float,
    tenant_id: str,
) -> dict[str, Any]:
    """The claims of a signed authentication request (CIBA Core 7.1.1).

    Signed with the client's key (``client.request_signing_alg`` when set); ``aud``
    names the issuer; ``iss`` is the client; ``exp``, ``iat``, ``nbf`` and ``jti``
    are required; ``exp - nbf`` is at most 60 minutes; ``jti`` is single use (per
    tenant and client).

    Raises:
        InvalidRequestError: on any failure.
    """
    what = "request object"
    algs = [a for a in allowed_algs if a not in HMAC_ALGS]
    if client.request_signing_alg is not None:
        algs = [a for a in algs if a == client.request_signing_alg]
    try:
        claims = await _verify_signature(
            request_jwt, what=what, client=client, algs=algs, keys=keys
        )
        _check_claims(
            claims,
            what,
            now,
            iss={"essential": True, "value": client.client_id},
            aud={"essential": True, "values": [issuer]},
            exp={"essential": True},
            iat={"essential": True},
            nbf={"essential": True},
            jti={"essential": True},
        )
        if claims["exp"] - claims["nbf"] > REQUEST_OBJECT_MAX_LIFETIME:
            raise _Rejected(f"{what} lifetime (exp - nbf) exceeds 60 minutes")
        if claims.get("client_id", client.client_id) != client.client_id:
            raise _Rejected(f"{what} client_id does not match the authenticated client")
        seen = values.namespace(namespaces.request_objects(tenant_id, client.client_id))
        await _use_jti(claims, what, seen, now)
    except _Rejected as exc:
        raise InvalidRequestError(exc.reason) from None
    return claims


async def verify_login_hint_token(
    token: str,
    *,
    client: ClientConfig,
    keys: JwksCache,
    allowed_algs: Collection[str],
    now: float,
) -> dict[str, Any]:
    """The claims of a client-signed ``login_hint_token`` with a valid ``sub_id``.

    Accepted signatures: ``allowed_algs`` with the client's keys (when it has
    keys) and HS256/384/512 with its secret (when it has one). ``exp`` is required,
    ``iss`` (if present) must be the client, and ``sub_id`` must use one of the
    formats of the module docstring.

    Raises:
        ExpiredLoginHintTokenError: the token has expired.
        InvalidRequestError: any other failure.
    """
    what = "login_hint_token"
    auth = client.auth
    algs: list[str] = []
    if auth.jwks is not None or auth.jwks_uri is not None:
        algs.extend(a for a in allowed_algs if a not in HMAC_ALGS)
    if auth.secret:
        algs.extend(HMAC_ALGS)
    try:
        claims = await _verify_signature(token, what=what, client=client, algs=algs, keys=keys)
        _check_claims(
            claims,
            what,
            now,
            iss={"value": client.client_id},
            exp={"essential": True},
        )
        _check_sub_id(claims.get("sub_id"))
    except _Rejected as exc:
        if exc.expired:
            raise ExpiredLoginHintTokenError(exc.reason) from None
        raise InvalidRequestError(exc.reason) from None
    return claims


def _check_sub_id(sub_id: Any) -> None:
    if not isinstance(sub_id, dict):
        raise _Rejected("login_hint_token must carry a sub_id object")
    fmt = sub_id.get("format")
    members = SUB_ID_FORMATS.get(fmt) if isinstance(fmt, str) else None
    if members is None:
        raise _Rejected("login_hint_token sub_id has an unsupported format")
    for name in members:
        value = sub_id.get(name)
        if not isinstance(value, str) or not value:
            raise _Rejected(f"login_hint_token sub_id lacks {name}")
    country = sub_id.get("country")
    if country is not None and not (isinstance(country, str) and len(country) == 2):
        raise _Rejected("login_hint_token sub_id country must be an ISO 3166 alpha-2 code")


def verify_id_token_hint(
    token: str,
    *,
    keys: TenantKeys,
    audience_client_id: str,
    issuer: str,
    now: float,
    max_age: float,
) -> dict[str, Any]:
    """The claims of an ID token this tenant issued to the client, used as a hint.

    CIBA Core 7.1 allows a previously issued token, so ``exp`` is not enforced;
    ``iat`` must be at most ``max_age`` seconds old instead.

    Raises:
        InvalidRequestError: on any failure.
    """
    try:
        claims = keys.verify(token)
    except TokenVerificationError:
        raise InvalidRequestError("id_token_hint is not an ID token of this issuer") from None
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    iat = claims.get("iat")
    if claims.get("iss") != issuer:
        raise InvalidRequestError("id_token_hint was issued by another issuer")
    if audience_client_id not in audiences:
        raise InvalidRequestError("id_token_hint was not issued to this client")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidRequestError("id_token_hint has no subject")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise InvalidRequestError("id_token_hint has no valid iat")
    if iat > now + CLOCK_SKEW or now - iat > max_age:
        raise InvalidRequestError("id_token_hint is too old to be used as a hint")
    return claims
