"""Data only the holder of a secret can open: AES-256-GCM under a key derived from it.

Access and refresh tokens seal their store records under the token itself, so the
store, which never sees the token, cannot open them; push responses and subject
hints seal under key material of their own. The key is HKDF-SHA256 of that
secret (no salt, a fixed ``info``). A blob is a version byte, a random 96-bit
nonce and the ciphertext with its tag; the version byte is also the associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "seal", "unseal"]

_SEAL_VERSION = b"\x01"
_SEAL_INFO = b"ciba-gateway/sealed-claims/v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16


class SealError(ValueError):
    """A sealed blob cannot be opened with this token (wrong token or tampered)."""


def _sealing_key(token: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO)
    return AESGCM(hkdf.derive(token.encode("utf-8", "surrogatepass")))


def seal(token: str, data: bytes) -> bytes:
    """Encrypt ``data`` so that only the holder of ``token`` can open it (AES-256-GCM)."""
    nonce = os.urandom(_NONCE_BYTES)
    return _SEAL_VERSION + nonce + _sealing_key(token).encrypt(nonce, data, _SEAL_VERSION)


def unseal(token: str, blob: bytes) -> bytes:
    """Open a ``seal``-ed blob; raises SealError for a wrong token or a damaged blob."""
    if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES or blob[:1] != _SEAL_VERSION:
        raise SealError("not a sealed value")
    nonce = blob[1 : 1 + _NONCE_BYTES]
    try:
        return _sealing_key(token).decrypt(nonce, blob[1 + _NONCE_BYTES :], _SEAL_VERSION)
    except InvalidTag:
        raise SealError("the value cannot be opened with this token") from None
