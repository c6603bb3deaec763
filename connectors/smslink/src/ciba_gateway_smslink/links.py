"""One-time links: the secret in the URL, what the store keeps of it, and its CSRF token.

The token is ``secrets.token_urlsafe(32)`` (256 bits). The store only ever sees
its SHA-256 (``link:<hex>``), as NIST SP 800-63B allows for look-up secrets,
next to a per-link random secret. The approval form carries
``HMAC-SHA256(secret, "csrf:" + hash)``, so rendering the page (GET) writes
nothing and a forged POST needs both the link and the stored secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import msgspec

__all__ = [
    "LinkRecord",
    "csrf_token",
    "link_key",
    "new_link",
    "token_hash",
    "used_key",
    "valid_csrf",
    "well_formed",
]

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


class LinkRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the store keeps for an open link (under ``link:<sha256 of the token>``)."""

    ref: str
    """The gateway's request reference (never shown on the page)."""
    secret: str
    """Base64url per-link key of the CSRF token."""
    expires_at: float
    name: str | None = None
    """Display name from the directory, released as the ``name`` claim."""
    sent_to: str | None = None
    """SHA-256 hex of the number the link was texted to (checked against the request)."""


def new_link() -> tuple[str, str]:
    """A fresh token and its per-link secret (both base64url, 256 bits)."""
    return secrets.token_urlsafe(32), secrets.token_urlsafe(32)


def well_formed(token: str) -> bool:
    """True when ``token`` has the shape of one we issue (checked before any store access)."""
    return bool(_TOKEN.match(token))


def token_hash(token: str) -> str:
    """Hex SHA-256 of the token: the only form of it the store sees."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def link_key(digest: str) -> str:
    """State key of an open link."""
    return f"link:{digest}"


def used_key(digest: str) -> str:
    """State key remembering that a link was used (for the "already used" page)."""
    return f"used:{digest}"


def csrf_token(record: LinkRecord, digest: str) -> str:
    """The form token of the page of this link."""
    key = base64.urlsafe_b64decode(record.secret + "=" * (-len(record.secret) % 4))
    mac = hmac.new(key, f"csrf:{digest}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def valid_csrf(record: LinkRecord, digest: str, presented: str | None) -> bool:
    """Constant-time check of a presented form token."""
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(record, digest).encode(), presented.encode())
