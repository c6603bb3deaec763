"""Opaque access tokens and the record the store keeps for one.

A token is 32 random bytes, base64url. The store never sees it: the record is kept
under ``token_key(token)`` (hex SHA-256) and sealed (``tokens.sealing``) under a
key derived from the token. Both are one-way functions of the token, and neither
reveals the other, so a dump of the store yields neither usable tokens nor
readable claims; only the token holder can open its own entry.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import msgspec

__all__ = ["AccessRecord", "new_opaque_token", "token_key"]


def new_opaque_token() -> str:
    """A new access token: 32 random bytes, base64url without padding."""
    return secrets.token_urlsafe(32)


def token_key(token: str) -> str:
    """The store key of ``token``: hex SHA-256 (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


class AccessRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the store keeps, sealed, for one opaque access token."""

    sub: str
    client_id: str
    scope: tuple[str, ...]
    iat: int
    exp: int
    claims: dict[str, Any]
    """The userinfo claims (``sub`` included)."""
    x5t: str | None = None
    """``cnf.x5t#S256`` of the certificate the token is bound to (RFC 8705 3.1)."""
    family: str | None = None
    """The refresh-token family it was minted in; revoking the family ends it too."""
